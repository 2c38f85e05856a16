package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// shared is the cluster started once for this package by TestMain.
var shared *Cluster

func TestMain(m *testing.M) {
	opts := Options{
		HBA:      []string{"host all scram_user 127.0.0.1/32 scram-sha-256"},
		Settings: map[string]string{"work_mem": "'8MB'"},
	}
	os.Exit(RunMain(m, opts, createScramUser, &shared))
}

// createScramUser is the TestMain setup: a role that must use a password.
func createScramUser(c *Cluster) error {
	return c.Exec(context.Background(), "CREATE ROLE scram_user LOGIN PASSWORD 'right'")
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// queryString connects with dsn and returns the single text value of sql.
func queryString(ctx context.Context, dsn, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func TestStartRestartStop(t *testing.T) {
	ctx := testContext(t)
	c, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if !strings.HasPrefix(filepath.Base(c.Dir), "pgveil-pg-") {
		t.Errorf("Dir = %q, want prefix pgveil-pg-", c.Dir)
	}
	if err := c.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')"); err != nil {
		t.Fatal(err)
	}
	port := c.Port
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if c.Port != port {
		t.Errorf("port changed on restart: %d -> %d", port, c.Port)
	}
	got, err := queryString(ctx, c.DSN("postgres", "", "postgres"), "SELECT v FROM kept")
	if err != nil || got != "before" {
		t.Fatalf("after restart: got %q, %v; want \"before\"", got, err)
	}
	dsn := c.DSN("postgres", "", "postgres")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s behind (stat: %v)", c.Dir, err)
	}
	if _, err := queryString(ctx, dsn, "SELECT 'still up'"); err == nil {
		t.Error("server still accepts connections after Stop")
	}
}

func TestScramPassword(t *testing.T) {
	ctx := testContext(t)
	_, err := queryString(ctx, shared.DSN("scram_user", "wrong", "postgres"), "SELECT current_user")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("wrong password: got %v, want SQLSTATE 28P01", err)
	}
	got, err := queryString(ctx, shared.DSN("scram_user", "right", "postgres"), "SELECT current_user")
	if err != nil || got != "scram_user" {
		t.Errorf("right password: got %q, %v; want scram_user", got, err)
	}
	method, err := queryString(ctx, shared.DSN("postgres", "", "postgres"),
		"SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = 'scram_user'")
	if err != nil || method != "SCRAM-SHA-256" {
		t.Errorf("stored password starts %q (%v), want SCRAM-SHA-256", method, err)
	}
}

func TestSettings(t *testing.T) {
	ctx := testContext(t)
	dsn := shared.DSN("postgres", "", "postgres")
	for setting, want := range map[string]string{
		"max_connections":  "300",
		"work_mem":         "8MB",
		"fsync":            "off",
		"listen_addresses": "127.0.0.1",
		"server_encoding":  "UTF8",
	} {
		got, err := queryString(ctx, dsn, "SHOW "+setting)
		if err != nil || got != want {
			t.Errorf("SHOW %s = %q, %v; want %q", setting, got, err, want)
		}
	}
}

func TestExecArgs(t *testing.T) {
	ctx := testContext(t)
	if err := shared.Exec(ctx, "DROP TABLE IF EXISTS args; CREATE TABLE args (n int)"); err != nil {
		t.Fatal(err)
	}
	if err := shared.Exec(ctx, "INSERT INTO args VALUES ($1)", 42); err != nil {
		t.Fatal(err)
	}
	got, err := queryString(ctx, shared.DSN("postgres", "", "postgres"), "SELECT n::text FROM args")
	if err != nil || got != "42" {
		t.Errorf("got %q, %v; want 42", got, err)
	}
	if err := shared.Exec(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Error("Exec of a failing statement returned nil")
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	// A private TMPDIR shows whether the failed Start cleaned up after
	// itself; it must be traversable by the postgres OS user.
	tmp, err := os.MkdirTemp("", "pgtest-tmpdir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	_, err = Start(Options{Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil {
		t.Fatal("Start with a bogus setting succeeded")
	}
	if !strings.Contains(err.Error(), `unrecognized configuration parameter "no_such_setting"`) {
		t.Errorf("error does not carry the server log: %v", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("failed Start left %v in %s", left, tmp)
	}
}

func TestDSN(t *testing.T) {
	c := &Cluster{Host: "127.0.0.1", Port: 5999}
	if got, want := c.Addr(), "127.0.0.1:5999"; got != want {
		t.Errorf("Addr = %q, want %q", got, want)
	}
	got := c.DSN("u", "p@ss word", "db")
	want := "postgres://u:p%40ss%20word@127.0.0.1:5999/db?sslmode=disable"
	if got != want {
		t.Errorf("DSN = %q, want %q", got, want)
	}
	cfg, err := pgx.ParseConfig(got)
	if err != nil || cfg.Password != "p@ss word" || cfg.User != "u" || cfg.Database != "db" {
		t.Errorf("DSN does not round-trip: %+v, %v", cfg, err)
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if !hasServer(dir) {
		t.Errorf("FindBinDir = %s, which lacks initdb or postgres", dir)
	}
}
