package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rules"
)

// db is the package's throwaway PostgreSQL cluster.
var db *pgtest.Cluster

// Roles the tests log in as, with the authentication method pg_hba gives them.
const (
	scramUser = "scram_user"
	md5User   = "md5_user"
	password  = "s3cret pass"
)

func TestMain(m *testing.M) {
	opts := pgtest.Options{
		HBA: []string{
			"host all " + scramUser + " 127.0.0.1/32 scram-sha-256",
			"host all " + md5User + " 127.0.0.1/32 md5",
		},
		Settings: map[string]string{"max_connections": "300"},
	}
	os.Exit(pgtest.RunMain(m, opts, setupDB, &db))
}

func setupDB(c *pgtest.Cluster) error {
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE ROLE " + scramUser + " LOGIN PASSWORD '" + password + "'",
		"SET password_encryption = 'md5'; CREATE ROLE " + md5User + " LOGIN PASSWORD '" + password + "'",
		"CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), created timestamptz, tags text[], data jsonb, raw bytea)",
		"INSERT INTO items SELECT g, 'item ' || g, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 hour', ARRAY['a','b'], jsonb_build_object('n', g), '\\xdeadbeef' FROM generate_series(1, 1000) g",
		"GRANT ALL ON items TO PUBLIC",
	} {
		if err := c.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// testProxy is a proxy server running in the test process.
type testProxy struct {
	srv  *proxy.Server
	addr string
	done chan error
}

// startProxy starts a proxy in front of the test cluster. It is shut down
// when the test ends.
func startProxy(t testing.TB, tweak func(*proxy.Options)) *testProxy {
	t.Helper()
	opts := baseOptions()
	if tweak != nil {
		tweak(&opts)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return serveProxy(t, listenLocal(t), proxy.New(opts, log, nil))
}

// baseOptions are the options of a test proxy in front of the test cluster.
func baseOptions() proxy.Options {
	return proxy.Options{
		Upstream:        db.Addr(),
		MaxMessageSize:  rules.DefaultMaxMessageSize,
		ShutdownTimeout: 10 * time.Second,
	}
}

// listenLocal listens on a free port of 127.0.0.1.
func listenLocal(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveProxy runs srv on ln until the test ends.
func serveProxy(t testing.TB, ln net.Listener, srv *proxy.Server) *testProxy {
	p := &testProxy{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { p.done <- p.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-p.done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return p
}

// dsn is a connection URL through the proxy.
func (p *testProxy) dsn(user, pass string, extra ...string) string {
	u := url.URL{Scheme: "postgres", Host: p.addr, Path: "/postgres"}
	if pass != "" {
		u.User = url.UserPassword(user, pass)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{"sslmode": {"disable"}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// connect opens a pgx connection through the proxy, closed when the test ends.
func (p *testProxy) connect(t testing.TB, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn(user, ""))
	if err != nil {
		t.Fatalf("connect through proxy as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// ctx returns a context bounded by a deadline for one test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
