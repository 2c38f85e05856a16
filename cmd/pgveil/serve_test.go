package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestConfigErrorsNameTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"lisen: x\nupstream: 127.0.0.1:5432\n":                      "unknown key lisen",
		"listen: 127.0.0.1:0\n":                                     "upstream: missing",
		"listen: 127.0.0.1:0\nupstream: nohost\n":                   `upstream: "nohost" is not host:port`,
		"listen: 127.0.0.1:0\nupstream: a:1\nupstream_tls: maybe\n": "upstream_tls",
		"listen: 127.0.0.1:0\nupstream: a:1\ntables:\n  customers:\n    columns:\n      email: {mask: email}\n":                            "tables.customers: table names are schema-qualified",
		"listen: 127.0.0.1:0\nupstream: a:1\ntables:\n  public.c:\n    columns:\n      email: {mask: shout}\n":                             `unknown strategy "shout"`,
		"listen: 127.0.0.1:0\nupstream: a:1\ntables:\n  public.c:\n    columns:\n      email: {mask: email, anonymize: \"partial:1,1\"}\n": "tables.public.c.columns.email.anonymize: partial:1,1 derives",
	}
	for cfg, want := range cases {
		path := filepath.Join(dir, "pgveil.yaml")
		os.WriteFile(path, []byte(cfg), 0o600)
		var stderr bytes.Buffer
		if code := dispatch([]string{"--config", path}, io.Discard, &stderr); code != 1 {
			t.Errorf("%q: exit %d, want 1", cfg, code)
		}
		if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), path) {
			t.Errorf("%q: message %q does not name %q and the file", cfg, stderr.String(), want)
		}
	}
	var stderr bytes.Buffer
	if code := dispatch([]string{"--no-such-flag"}, io.Discard, &stderr); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code := dispatch([]string{"nonsense"}, io.Discard, &stderr); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code := dispatch([]string{"--help"}, io.Discard, &stderr); code != 0 {
		t.Errorf("--help: exit %d, want 0", code)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeReloadAndMetrics runs the whole serve path: metrics, a reload
// with a broken file (kept), a reload with a good one, and shutdown.
func TestServeReloadAndMetrics(t *testing.T) {
	listen, metrics := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	good := fmt.Sprintf("listen: %s\nupstream: %s\nmetrics_listen: %s\n", listen, db.Addr(), metrics)
	os.WriteFile(path, []byte(good), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, path, slog.New(slog.NewTextHandler(&logs, nil))) }()
	var c *pgx.Conn
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		if c, err = pgx.Connect(ctx, "postgres://postgres@"+listen+"/postgres?sslmode=disable"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy never accepted: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{"pgveil_client_connections 1", "pgveil_client_connections_total 1", "pgveil_queries_total", "pgveil_query_duration_seconds_bucket", "pgveil_client_bytes_total"} {
		if !bytes.Contains(body, []byte(m)) {
			t.Errorf("metrics lack %q", m)
		}
	}
	os.WriteFile(path, []byte("listen: [broken\n"), 0o600)
	srvReload(t)
	waitLog(t, &logs, "configuration not reloaded")
	os.WriteFile(path, []byte(good), 0o600)
	srvReload(t)
	waitLog(t, &logs, "configuration reloaded")
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("connection dropped by reload: %v", err)
	}
	c.Close(ctx)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// srvReload sends this process SIGHUP, as an operator would the proxy.
func srvReload(t *testing.T) {
	p, _ := os.FindProcess(os.Getpid())
	if err := p.Signal(sighup); err != nil {
		t.Fatal(err)
	}
}

func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	logs.Reset()
}
