package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestSimpleAndExtendedQueries(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			c := p.connect(t, "postgres")
			var (
				id      int
				name    string
				price   float64
				created time.Time
				tags    []string
				data    map[string]any
				raw     []byte
			)
			err := c.QueryRow(ctx, "SELECT id, name, price::float8, created, tags, data, raw FROM items WHERE id = $1", mode, 42).
				Scan(&id, &name, &price, &created, &tags, &data, &raw)
			if err != nil {
				t.Fatal(err)
			}
			want := time.Date(2024, 1, 2, 18, 0, 0, 0, time.UTC)
			if id != 42 || name != "item 42" || price != 63 || !created.Equal(want) ||
				strings.Join(tags, ",") != "a,b" || data["n"] != float64(42) || !bytes.Equal(raw, []byte{0xde, 0xad, 0xbe, 0xef}) {
				t.Fatalf("got %v %q %v %v %v %v %x", id, name, price, created, tags, data, raw)
			}
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM items", mode).Scan(&n); err != nil || n != 1000 {
				t.Fatalf("count = %d, %v", n, err)
			}
		})
	}
}

func TestErrorRecovery(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	_, err := c.Exec(ctx, "SELECT 1/0")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("want division_by_zero, got %v", err)
	}
	// Extended protocol: an error in a pipelined batch skips to Sync.
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT * FROM no_such_table")
	b.Queue("SELECT 3")
	err = c.SendBatch(ctx, b).Close()
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("want undefined_table, got %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("connection unusable after errors: %v", err)
	}
	// A failed transaction block stays failed until ROLLBACK, as in PostgreSQL.
	tx, _ := c.Begin(ctx)
	tx.Exec(ctx, "SELECT 1/0")
	if _, err := tx.Exec(ctx, "SELECT 1"); !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
		t.Fatalf("want in_failed_sql_transaction, got %v", err)
	}
	tx.Rollback(ctx)
}

func TestPipelinedBatch(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	b := &pgx.Batch{}
	for i := 1; i <= 500; i++ {
		b.Queue("SELECT name FROM items WHERE id = $1", i)
	}
	br := c.SendBatch(ctx, b)
	for i := 1; i <= 500; i++ {
		var name string
		if err := br.QueryRow().Scan(&name); err != nil || name != fmt.Sprintf("item %d", i) {
			t.Fatalf("row %d: %q %v", i, name, err)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	// Raw pipeline mode: many messages before one Sync.
	pipe := c.PgConn().StartPipeline(ctx)
	for i := 0; i < 50; i++ {
		pipe.SendQueryParams("SELECT $1::int * 2", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil)
	}
	if err := pipe.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		res, err := pipe.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		rr := res.(*pgconn.ResultReader).Read()
		if rr.Err != nil || string(rr.Rows[0][0]) != fmt.Sprint(i*2) {
			t.Fatalf("pipelined %d: %v %q", i, rr.Err, rr.Rows)
		}
	}
	if err := pipe.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCopyBothWays(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	if _, err := c.Exec(ctx, "CREATE TEMP TABLE copied (id int, label text)"); err != nil {
		t.Fatal(err)
	}
	const rows = 100_000
	n, err := c.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "label"},
		pgx.CopyFromSlice(rows, func(i int) ([]any, error) { return []any{i, fmt.Sprintf("row %d", i)}, nil }))
	if err != nil || n != rows {
		t.Fatalf("copy from: %d %v", n, err)
	}
	var buf bytes.Buffer
	tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY copied TO STDOUT")
	if err != nil || tag.RowsAffected() != rows {
		t.Fatalf("copy to: %v %v", tag, err)
	}
	if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines != rows || !bytes.Contains(buf.Bytes(), []byte("99999\trow 99999\n")) {
		t.Fatalf("copy to: %d lines", lines)
	}
	// Text COPY FROM STDIN through the simple protocol path too.
	tag, err = c.PgConn().CopyFrom(ctx, strings.NewReader("1\tone\n2\ttwo\n"), "COPY copied FROM STDIN")
	if err != nil || tag.RowsAffected() != 2 {
		t.Fatalf("copy from stdin: %v %v", tag, err)
	}
	// A failing COPY FROM recovers.
	_, err = c.PgConn().CopyFrom(ctx, strings.NewReader("x\ty\n"), "COPY copied FROM STDIN")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
		t.Fatalf("want invalid_text_representation, got %v", err)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestListenNotify(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	listener := p.connect(t, "postgres")
	if _, err := listener.Exec(ctx, "LISTEN pgveil_test"); err != nil {
		t.Fatal(err)
	}
	notifier := p.connect(t, "postgres")
	if _, err := notifier.Exec(ctx, "NOTIFY pgveil_test, 'hello'"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil || n.Channel != "pgveil_test" || n.Payload != "hello" {
		t.Fatalf("notification: %+v %v", n, err)
	}
}

func TestNotice(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	var got []string
	var mu sync.Mutex
	cfg, err := pgx.ParseConfig(p.dsn("postgres", ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		got = append(got, n.Message)
		mu.Unlock()
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'note %', 42; END$$"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "note 42" {
		t.Fatalf("notices: %q", got)
	}
	if v := c.PgConn().ParameterStatus("server_version"); v == "" {
		t.Fatal("no server_version ParameterStatus through the proxy")
	}
}

func TestCancel(t *testing.T) {
	p := startProxy(t, nil)
	c := p.connect(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, "SELECT pg_sleep(30)")
	if err == nil || time.Since(start) > 15*time.Second {
		t.Fatalf("query was not cancelled: %v after %v", err, time.Since(start))
	}
	// pgx closes a connection whose context ended; the server query must be gone.
	admin := p.connect(t, "postgres")
	eventually(t, "the cancelled query to stop on the server", func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active'").Scan(&n)
		return n == 0
	})
	// Cancel through pgconn on a connection that stays open.
	c2 := p.connect(t, "postgres")
	done := sleepInBackground(t, admin, c2, "through pgconn")
	if err := c2.PgConn().CancelRequest(context.Background()); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("want query_canceled, got %v", err)
	}
	if err := c2.Ping(context.Background()); err != nil {
		t.Fatalf("connection unusable after cancel: %v", err)
	}
}

func TestLargeResult(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	// 100 MB in 1 KB rows, and one 20 MB value in a single DataRow.
	rows, err := c.Query(ctx, "SELECT repeat('x', 1024) FROM generate_series(1, 100*1024)")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for rows.Next() {
		total += len(rows.RawValues()[0])
	}
	if rows.Err() != nil || total != 100*1024*1024 {
		t.Fatalf("read %d bytes: %v", total, rows.Err())
	}
	var big string
	if err := c.QueryRow(ctx, "SELECT repeat('y', 20*1024*1024)").Scan(&big); err != nil || len(big) != 20<<20 {
		t.Fatalf("big value: %d %v", len(big), err)
	}
}

func TestConcurrentClients(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	const clients = 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := pgx.Connect(ctx, p.dsn("postgres", ""))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for j := 0; j < 20; j++ {
				var name string
				id := (i*20+j)%1000 + 1
				if err := c.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", id).Scan(&name); err != nil || name != fmt.Sprintf("item %d", id) {
					errs <- fmt.Errorf("client %d: %q %v", i, name, err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eventually(t, "all sessions to end", func() bool { return p.srv.Sessions() == 0 })
}
