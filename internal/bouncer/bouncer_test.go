package bouncer

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
)

func TestIni(t *testing.T) {
	c := Config{Listen: "127.0.0.1:6433", PoolMode: Transaction,
		Databases: []Database{{Name: "masked", Addr: "127.0.0.1:6432", DBName: "app", User: "support"}, {Name: "*", Addr: "10.0.0.1:5432"}},
		Users:     []User{{Name: `we"ird`, Password: "pw"}}, HBA: []string{"host all all 127.0.0.1/32 trust"}}
	ini := c.Ini("/d")
	for _, want := range []string{"masked = host=127.0.0.1 port=6432 dbname=app user=support\n", "* = host=10.0.0.1 port=5432\n",
		"listen_port = 6433\n", "pool_mode = transaction\n", "auth_type = hba\n", "auth_hba_file = /d/hba.conf\n", "auth_file = /d/userlist.txt\n"} {
		if !strings.Contains(ini, want) {
			t.Errorf("ini lacks %q:\n%s", want, ini)
		}
	}
	if got := c.Userlist(); got != `"we""ird" "pw"`+"\n" {
		t.Errorf("userlist %q", got)
	}
	if ini := (Config{Listen: "127.0.0.1:1"}).Ini("/d"); !strings.Contains(ini, "auth_type = trust\n") || !strings.Contains(ini, "pool_mode = session\n") {
		t.Errorf("defaults:\n%s", ini)
	}
}

// TestStart runs PgBouncer in front of a throwaway PostgreSQL, queries
// through it, and checks that a broken configuration fails with
// PgBouncer's own words.
func TestStart(t *testing.T) {
	c, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	b, err := Start(Config{Listen: freeAddr(t), PoolMode: Transaction, Databases: []Database{{Name: "*", Addr: c.Addr()}},
		Users: []User{{Name: "postgres"}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@"+b.Addr+"/postgres?sslmode=disable&default_query_exec_mode=exec")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.Log())
	}
	var mode string
	if err := conn.QueryRow(ctx, "SELECT 'through pgbouncer'").Scan(&mode); err != nil || mode != "through pgbouncer" {
		t.Fatalf("%q %v", mode, err)
	}
	conn.Close(ctx)
	if err := b.Stop(); err != nil {
		t.Error(err)
	}
	_, err = Start(Config{Listen: freeAddr(t), PoolMode: "bogus", Databases: []Database{{Name: "*", Addr: c.Addr()}}}, "")
	if err == nil || !strings.Contains(err.Error(), "pool_mode") {
		t.Fatalf("bad pool mode: %v", err)
	}
}

func freeAddr(t *testing.T) string {
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
