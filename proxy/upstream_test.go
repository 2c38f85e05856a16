package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestUpstreamThatDoesNotAnswer stops the server's postmaster (SIGSTOP):
// the kernel still accepts TCP connections on its port, but nothing
// answers a startup packet, as when a server hangs. A new session through
// the proxy must fail with FATAL 08001 naming the upstream well before a
// client's usual 10 s connect timeout, not wait as long as the client
// does with no word; a session opened before keeps working; and new
// sessions succeed once the server answers again.
func TestUpstreamThatDoesNotAnswer(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	open := p.connect(t, "postgres")
	resume, err := db.PauseServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(resume)

	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	c, err := pgx.Connect(cctx, p.dsn("postgres", ""))
	took := time.Since(start)
	if err == nil {
		c.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Severity != "FATAL" || pgErr.Code != "08001" || !strings.Contains(pgErr.Message, db.Addr()) {
		t.Fatalf("a session while the server does not answer: want FATAL 08001 naming %s, got %v after %s", db.Addr(), err, took.Round(time.Millisecond))
	}
	if took > 8*time.Second {
		t.Fatalf("the refusal took %s: a client with a 10 s connect timeout would hardly see it", took.Round(time.Millisecond))
	}
	if err := open.Ping(ctx); err != nil {
		t.Fatalf("a session opened before the server hung: %v", err)
	}

	resume()
	eventually(t, "a new session once the server answers again", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, p.dsn("postgres", ""))
		if err != nil {
			return false
		}
		c.Close(ctx)
		return true
	})
}
