package proxy_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// fuzzRole is the unprivileged role the live fuzz target logs in as, so
// that bytes which happen to form valid SQL can do no harm; its sessions
// have a statement timeout so that none can hold the run.
const fuzzRole = "fuzz_user"

var fuzzRoleOnce sync.Once

// FuzzLiveSession sends arbitrary bytes after a valid startup to a proxy in
// front of the test cluster. Only that session may end: a bystander
// session on the same proxy must go on answering, and the proxy must be
// left with only the bystander's session.
func FuzzLiveSession(f *testing.F) {
	fuzzRoleOnce.Do(func() {
		err := db.Exec(testCtx(f), "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '"+fuzzRole+"') THEN CREATE ROLE "+fuzzRole+" LOGIN; END IF; END$$")
		if err != nil {
			f.Fatal(err)
		}
	})
	p := startProxy(f, nil)
	bystander := p.connect(f, "postgres")
	for _, seed := range [][]byte{
		{'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0},
		{'Q', 0, 0, 0, 2},
		{'Q', 0, 0, 0x7f, 0xff, 'S'},
		{'P', 0, 0, 0, 8, 0, 'x', 0, 0, 'S', 0, 0, 0, 4},
		{'B', 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0},
		{'d', 0, 0, 0, 5, 'x', 'c', 0, 0, 0, 4},
		{0, 0, 0, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := liveStartup(t, p.addr)
		conn.Write(data)
		conn.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Fatalf("session did not end cleanly after its input ended: %v", err)
		}
		var one int
		if err := bystander.QueryRow(testCtx(t), "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("bystander session broken: %d, %v", one, err)
		}
		eventually(t, "the fuzzed session to be gone", func() bool { return p.srv.Sessions() == 1 })
	})
}

// liveStartup logs fuzzRole in on a raw socket and reads to ReadyForQuery.
func liveStartup(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, _ := rawStartupWith(t, addr, map[string]string{"user": fuzzRole, "database": "postgres", "options": "-c statement_timeout=2000"})
	return conn
}
