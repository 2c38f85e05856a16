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
	"github.com/pgveil/pgveil/rules"
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
// a CancelRequest that reaches instance B, as it would behind a load
// balancer. Keys of no session, of an unknown peer, or already forwarded
// once go nowhere, and the log never shows the key.
func TestCancelThroughPeer(t *testing.T) {
	if proxy.MaxPeerID != rules.MaxPeerID {
		t.Fatalf("proxy.MaxPeerID %d != rules.MaxPeerID %d", proxy.MaxPeerID, rules.MaxPeerID)
	}
	lnA, lnB := listenLocal(t), listenLocal(t)
	peers := map[int]string{1: lnA.Addr().String(), 2: lnB.Addr().String()}
	a, b := startPeer(t, lnA, 1, peers), startPeer(t, lnB, 2, peers)
	c, admin := a.connect(t, "postgres"), a.connect(t, "postgres")
	checkKeyLayout(t, c.PgConn(), 1)
	checkKeyLayout(t, admin.PgConn(), 1)
	checkKeyLayout(t, b.connect(t, "postgres").PgConn(), 2)
	done := sleepInBackground(t, admin, c, "through a peer")
	start := time.Now()
	rawCancel(t, b.addr, c.PgConn().PID(), c.PgConn().SecretKey())
	select {
	case err := <-done:
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want query_canceled, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the query was not cancelled within 10s of a cancel request to the other instance")
	}
	t.Logf("cancelled through the peer in %v", time.Since(start))
	if b.cancels("forwarded") != 1 || a.cancels("sent") != 1 {
		t.Fatalf("B forwarded %v, A sent %v; want 1 and 1", b.cancels("forwarded"), a.cancels("sent"))
	}

	for pid, want := range map[uint32]string{
		2<<16 | 12345:         "cancel request ignored: unknown key peer_id=2",
		77<<16 | 12345:        "cancel request ignored: unknown peer peer_id=77",
		1<<30 | 1<<16 | 12345: "cancel request ignored: unknown key, already forwarded once peer_id=1",
	} {
		rawCancel(t, b.addr, pid, []byte{0xfe, 0xed, 0xfa, 0xce})
		if !b.log.has(want) {
			t.Errorf("pid %#x: the log lacks %q (and nothing more: no key):\n%s", pid, want, b.log)
		}
	}
	if b.cancels("ignored") != 3 {
		t.Errorf("B ignored %v cancel requests, want 3", b.cancels("ignored"))
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("connection unusable after the cancel: %v", err)
	}
}

// TestCancelForwardedOnce: an instance whose peers list sends a key back
// to itself forwards it once, then drops it: no loop.
func TestCancelForwardedOnce(t *testing.T) {
	ln := listenLocal(t)
	p := startPeer(t, ln, 3, map[int]string{1: ln.Addr().String()})
	rawCancel(t, p.addr, 1<<16|7, []byte{1, 2, 3, 4})
	eventually(t, "the forwarded request to be dropped", func() bool { return p.cancels("ignored") == 1 })
	if p.cancels("forwarded") != 1 {
		t.Fatalf("forwarded %v times, want 1", p.cancels("forwarded"))
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

// checkKeyLayout checks that a key carries peer id want, leaves the sign
// and forwarded bits clear and keeps a secret of at least 4 bytes.
func checkKeyLayout(t *testing.T, c *pgconn.PgConn, want int) {
	t.Helper()
	pid := c.PID()
	if got := int(pid>>16) & proxy.MaxPeerID; got != want || pid>>30 != 0 || len(c.SecretKey()) < 4 {
		t.Fatalf("key %#x (secret %d bytes) does not carry peer id %d", pid, len(c.SecretKey()), want)
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
