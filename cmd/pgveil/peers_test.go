package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// instance is a pgveil serve process (serveUntil) in the test process.
type instance struct {
	id                    int
	listen, metrics, path string
	logs                  syncBuffer
}

// newInstances picks addresses for n peered instances, ids 1..n.
func newInstances(t *testing.T, n int) []*instance {
	var list []*instance
	for id := 1; id <= n; id++ {
		list = append(list, &instance{id: id, listen: freeAddr(t), metrics: freeAddr(t),
			path: filepath.Join(t.TempDir(), "pgveil.yaml")})
	}
	return list
}

// writeConfig writes the instance's configuration with these peers.
func (in *instance) writeConfig(t *testing.T, peers []*instance) {
	cfg := fmt.Sprintf("listen: %s\nupstream: %s\nmetrics_listen: %s\npeer_id: %d\npeers:\n", in.listen, db.Addr(), in.metrics, in.id)
	for _, p := range peers {
		cfg += fmt.Sprintf("  %d: %s\n", p.id, p.listen)
	}
	if err := os.WriteFile(in.path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the instance until the test ends, and waits until it accepts.
func (in *instance) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(&in.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	go func() { done <- serveUntil(ctx, in.path, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("instance %d: %v", in.id, err)
		}
	})
	waitAccepts(t, in.listen)
}

// cancels is the instance's pgveil_cancel_requests_total for result, read
// from its metrics endpoint.
func (in *instance) cancels(t *testing.T, result string) int {
	return in.metric(t, `pgveil_cancel_requests_total{result="`+result+`"}`)
}

// metric reads one sample (name and labels as /metrics prints them) from
// the instance's metrics endpoint; 0 when absent.
func (in *instance) metric(t *testing.T, sample string) int {
	resp, err := http.Get("http://" + in.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func waitAccepts(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startHAProxy runs Debian's HAProxy in the foreground, balancing TCP
// connections round robin over the instances. It returns the frontend's
// address.
func startHAProxy(t *testing.T, instances []*instance) string {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		bin = "/usr/sbin/haproxy"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("haproxy not found on PATH or in /usr/sbin; install it with: apt-get install -y haproxy")
		}
	}
	front := freeAddr(t)
	cfg := fmt.Sprintf(`global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 5m
    timeout server 5m
frontend pg
    bind %s
    default_backend pgveil
backend pgveil
    balance roundrobin
`, front)
	for _, in := range instances {
		cfg += fmt.Sprintf("    server pgveil%d %s\n", in.id, in.listen)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output:\n%s", out.String())
		}
	})
	waitAccepts(t, front)
	return front
}

// sleepUntilCancelled runs a long query on c, calls cancel once the server
// runs it, and checks that the query ends with query_canceled (57014) well
// before it would have ended by itself.
func sleepUntilCancelled(t *testing.T, admin, c *pgx.Conn, tag string, cancel func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(30) -- "+tag)
		done <- err
	}()
	finished := false
	defer func() {
		if !finished { // on failure: end Exec, so that nothing races with closing c
			c.PgConn().Conn().Close()
			<-done
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; n != 1; {
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active'", "%-- "+tag).Scan(&n)
		if time.Now().After(deadline) {
			t.Fatalf("%s: the query never started", tag)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cancel(); err != nil {
		t.Fatalf("%s: cancel request: %v", tag, err)
	}
	select {
	case err := <-done:
		finished = true
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("%s: want query_canceled, got %v", tag, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the query was not cancelled within 10s", tag)
	}
}

// landedOn connects and tells which instance accepted the connection: the
// one whose count of client connections grew.
func landedOn(ctx context.Context, t *testing.T, dsn string, instances []*instance) (*pgx.Conn, int) {
	t.Helper()
	before := map[int]int{}
	for _, in := range instances {
		before[in.id] = in.metric(t, "pgveil_client_connections_total")
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range instances {
		if in.metric(t, "pgveil_client_connections_total") > before[in.id] {
			return c, in.id
		}
	}
	t.Fatal("no instance counted the new connection")
	return nil, 0
}

// TestPeersBehindHAProxy: two peered instances behind HAProxy (round
// robin). pgx sends each cancel request through HAProxy, on a new
// connection: with round robin it lands on the other instance than its
// query's, which forwards it to its peer. Every cancel must work.
func TestPeersBehindHAProxy(t *testing.T) {
	instances := newInstances(t, 2)
	for _, in := range instances {
		in.writeConfig(t, instances)
		in.start(t)
	}
	front := startHAProxy(t, instances)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	dsn := "postgres://postgres@" + front + "/postgres?sslmode=disable"
	landed := map[int]int{}
	for round := range 6 {
		if round%2 == 1 {
			// One more connection turns the round robin by one, so that
			// the next query lands on the other instance.
			extra, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer extra.Close(ctx)
		}
		c, id := landedOn(ctx, t, dsn, instances)
		landed[id]++
		sleepUntilCancelled(t, admin, c, fmt.Sprintf("round %d", round), func() error { return c.PgConn().CancelRequest(ctx) })
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("round %d: connection unusable after the cancel: %v", round, err)
		}
		c.Close(ctx)
	}
	a, b := instances[0], instances[1]
	t.Logf("queries per instance %v; forwarded: by 1 %d, by 2 %d; sent: by 1 %d, by 2 %d", landed,
		a.cancels(t, "forwarded"), b.cancels(t, "forwarded"), a.cancels(t, "sent"), b.cancels(t, "sent"))
	if landed[1] == 0 || landed[2] == 0 {
		t.Errorf("HAProxy spread the queries as %v; want both instances", landed)
	}
	if a.cancels(t, "forwarded") == 0 || b.cancels(t, "forwarded") == 0 {
		t.Errorf("want each instance to have forwarded a cancel request to the other")
	}
}

// TestPeersReload: a SIGHUP makes an instance use its new peers list.
func TestPeersReload(t *testing.T) {
	instances := newInstances(t, 2)
	a, b := instances[0], instances[1]
	a.writeConfig(t, instances)
	b.writeConfig(t, []*instance{b}) // does not know a yet
	a.start(t)
	b.start(t)
	ctx := testCtx(t)
	admin, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	// A connection to a whose cancel requests go to b.
	cfg, err := pgx.ParseConfig("postgres://postgres@" + a.listen + "/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	var toB atomic.Bool
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if toB.Load() {
			addr = b.listen
		}
		return dial(ctx, network, addr)
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	toB.Store(true)
	sleepUntilCancelled(t, admin, c, "after reload", func() error {
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			return err
		}
		waitLog(t, &b.logs, `cancel request ignored: unknown key"`)
		b.writeConfig(t, instances)
		srvReload(t)
		waitLog(t, &b.logs, "configuration reloaded")
		return c.PgConn().CancelRequest(ctx)
	})
}
