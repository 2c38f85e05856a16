package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/proxy"
)

// peer is one instance of a peered group in the test process.
type peer struct {
	*testProxy
	reg *prometheus.Registry
	log *logRecorder
}

// startPeer serves a proxy with peering; ln's address must be peers[id]
// for the others to reach it.
func startPeer(t *testing.T, ln net.Listener, id int, peers map[int]string) *peer {
	opts := baseOptions()
	opts.PeerID, opts.Peers = id, peers
	p := &peer{reg: prometheus.NewRegistry(), log: &logRecorder{}}
	p.testProxy = serveProxy(t, ln, proxy.New(opts, slog.New(p.log), proxy.NewMetrics(p.reg)))
	return p
}

// cancels is the instance's count of cancel requests with this result.
func (p *peer) cancels(result string) float64 {
	mfs, _ := p.reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "pgveil_cancel_requests_total" && m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestCancelThroughPeer: a client of instance A has its query cancelled by
// a CancelRequest that reaches instance C, as it would behind a load
// balancer. C does not know the key and passes it to A and B; A sends it
// to the server, B ignores it, and nobody passes it on again. Keys of no
// session go nowhere, and the log never shows the key.
func TestCancelThroughPeer(t *testing.T) {
	lnA, lnB, lnC := listenLocal(t), listenLocal(t), listenLocal(t)
	peers := map[int]string{1: lnA.Addr().String(), 2: lnB.Addr().String(), 3: lnC.Addr().String()}
	a, b, c := startPeer(t, lnA, 1, peers), startPeer(t, lnB, 2, peers), startPeer(t, lnC, 3, peers)
	conn, admin := a.connect(t, "postgres"), a.connect(t, "postgres")
	checkServerPID(t, conn)
	checkServerPID(t, b.connect(t, "postgres"))
	done := sleepInBackground(t, admin, conn, "through a peer")
	start := time.Now()
	rawCancel(t, c.addr, conn.PgConn().PID(), conn.PgConn().SecretKey())
	select {
	case err := <-done:
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want query_canceled, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the query was not cancelled within 10s of a cancel request to another instance")
	}
	t.Logf("cancelled through the peer in %v", time.Since(start))
	if c.cancels("forwarded") != 1 || a.cancels("sent") != 1 || b.cancels("ignored") != 1 {
		t.Fatalf("C forwarded %v, A sent %v, B ignored %v; want 1, 1 and 1",
			c.cancels("forwarded"), a.cancels("sent"), b.cancels("ignored"))
	}
	if !b.log.has("cancel request ignored: unknown key, forwarded by a peer") {
		t.Errorf("B's log lacks the ignored forwarded key (and nothing more: no key):\n%s", b.log)
	}

	// The session's process id with a wrong secret: C forwards it, A and B
	// ignore it; and a request marked forwarded is not passed on.
	rawCancel(t, c.addr, conn.PgConn().PID(), []byte{0xfe, 0xed, 0xfa, 0xce})
	rawCancel(t, c.addr, forwarded|conn.PgConn().PID(), []byte{0xfe, 0xed, 0xfa, 0xce})
	if c.cancels("forwarded") != 2 || c.cancels("ignored") != 1 || a.cancels("ignored") != 1 || b.cancels("ignored") != 2 {
		t.Errorf("C forwarded %v and ignored %v, A ignored %v, B ignored %v; want 2, 1, 1 and 2",
			c.cancels("forwarded"), c.cancels("ignored"), a.cancels("ignored"), b.cancels("ignored"))
	}
	if a.cancels("sent") != 1 {
		t.Errorf("A sent %v cancel requests to the server, want 1 (a wrong secret must go nowhere)", a.cancels("sent"))
	}
	if err := conn.Ping(context.Background()); err != nil {
		t.Fatalf("connection unusable after the cancel: %v", err)
	}
}

// forwarded is the bit an instance sets in the process id of a cancel
// request it passes to its peers.
const forwarded = 1 << 31

// TestCancelForwardedOnce: an instance whose peers list sends a key back
// to itself forwards it once, then drops it: no loop.
func TestCancelForwardedOnce(t *testing.T) {
	ln := listenLocal(t)
	p := startPeer(t, ln, 3, map[int]string{1: ln.Addr().String()})
	rawCancel(t, p.addr, 12345, []byte{1, 2, 3, 4})
	eventually(t, "the forwarded request to be dropped", func() bool { return p.cancels("ignored") == 1 })
	if p.cancels("forwarded") != 1 {
		t.Fatalf("forwarded %v times, want 1", p.cancels("forwarded"))
	}
}

// TestCancelPeerDown: when no peer can be reached the request counts as
// failed, and the instance goes on serving.
func TestCancelPeerDown(t *testing.T) {
	gone := listenLocal(t)
	addr := gone.Addr().String()
	gone.Close()
	ln := listenLocal(t)
	p := startPeer(t, ln, 1, map[int]string{1: ln.Addr().String(), 2: addr})
	rawCancel(t, p.addr, 12345, []byte{1, 2, 3, 4})
	if p.cancels("failed") != 1 || p.cancels("forwarded") != 0 {
		t.Fatalf("failed %v, forwarded %v; want 1 and 0", p.cancels("failed"), p.cancels("forwarded"))
	}
	if err := p.connect(t, "postgres").Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sleepInBackground runs a 30 s sleep tagged with a comment on c, and
// returns once the server runs it. The channel gets the query's error.
func sleepInBackground(t *testing.T, admin, c *pgx.Conn, tag string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(30) -- "+tag)
		done <- err
	}()
	eventually(t, "the sleeping query to start", func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active'", "%-- "+tag).Scan(&n)
		return n == 1
	})
	return done
}

// checkServerPID checks that the key the client got carries the server's
// process id, and a secret of at least 4 bytes.
func checkServerPID(t *testing.T, c *pgx.Conn) {
	t.Helper()
	var pid uint32
	if err := c.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if got := c.PgConn().PID(); got != pid || len(c.PgConn().SecretKey()) < 4 {
		t.Fatalf("key %d (secret %d bytes); want the server's process id %d", got, len(c.PgConn().SecretKey()), pid)
	}
}

// rawCancel sends a CancelRequest to addr and waits for the proxy to close
// the connection, which it does once it has passed the request on.
func rawCancel(t *testing.T, addr string, pid uint32, secret []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pkt, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("want the proxy to close the cancel connection, got %v", err)
	}
}

// logRecorder is a slog.Handler that keeps every record as text, at every
// level.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool { line += fmt.Sprintf(" %s=%v", a.Key, a.Value); return true })
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	return nil
}

// has reports whether line was logged, exactly.
func (r *logRecorder) has(line string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.lines, line)
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}
