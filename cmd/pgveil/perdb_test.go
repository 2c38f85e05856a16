package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/rules"
)

// The databases of the several-databases tests: two with the CRM schema,
// one without it.
const (
	perDBA     = "perdb_a"
	perDBB     = "perdb_b"
	perDBPlain = "perdb_plain"
)

// resetPerDBs creates (once) the databases, and gives the two CRM ones
// fresh tables without a pgveil schema.
func resetPerDBs(t *testing.T) {
	t.Helper()
	ctx := testCtx(t)
	setupOnce(t, perDBA, "CREATE DATABASE "+perDBA, "CREATE DATABASE "+perDBB, "CREATE DATABASE "+perDBPlain)
	var crm []string // the test schema without its roles, which the cluster shares
	for _, line := range strings.Split(schemaSQL, "\n") {
		if !strings.HasPrefix(line, "CREATE ROLE") {
			crm = append(crm, line)
		}
	}
	reset := "DROP SCHEMA IF EXISTS pgveil CASCADE; DROP VIEW IF EXISTS customer_emails;" +
		" DROP TABLE IF EXISTS events, orders, survey_responses, customers CASCADE;" + strings.Join(crm, "\n") +
		"; GRANT SELECT, UPDATE, DELETE ON customers, survey_responses, orders TO dpo"
	for _, name := range []string{perDBA, perDBB} {
		if _, err := connectDB(t, "postgres", name).Exec(ctx, reset); err != nil {
			t.Fatal(err)
		}
	}
}

// proxyDSN is the URL of a database through the proxy at addr.
func proxyDSN(addr, user, database string) string {
	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + database, User: url.User(user), RawQuery: "sslmode=disable"}
	return u.String()
}

// connectVia connects as user to a database through the proxy at addr,
// polling until the proxy accepts.
func connectVia(t *testing.T, addr, user, database string) *pgx.Conn {
	t.Helper()
	var conn *pgx.Conn
	err := poll(t, func() (err error) {
		conn, err = pgx.Connect(testCtx(t), proxyDSN(addr, user, database))
		return err
	})
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryOne returns the first column of the first row as text.
func queryOne(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var v *string
	if err := conn.QueryRow(testCtx(t), sql, pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if v == nil {
		return "NULL"
	}
	return *v
}

// libpqEnvOnly points the libpq environment at the test cluster as the
// superuser, naming no database.
func libpqEnvOnly(t *testing.T) {
	host, port, _ := strings.Cut(db.Addr(), ":")
	for k, v := range map[string]string{"PGHOST": host, "PGPORT": port, "PGUSER": "postgres",
		"PGDATABASE": "", "PGSERVICE": "", "PGPASSFILE": ""} {
		t.Setenv(k, v)
	}
}

// serveFile starts serveUntil on a configuration written to a file, and
// returns the listen address; the proxy stops when the test ends.
func serveFile(t *testing.T, body string) (addr string, logs *syncBuffer) {
	t.Helper()
	addr = freeAddr(t)
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	if err := os.WriteFile(path, []byte("listen: "+addr+"\nupstream: "+db.Addr()+"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, path, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return addr, logs
}

// TestEveryDatabaseBehindOneProxy: without admin_dsn and PGDATABASE, each
// database's masking, ANONYMIZE and audit log happen in that database.
func TestEveryDatabaseBehindOneProxy(t *testing.T) {
	resetPerDBs(t)
	libpqEnvOnly(t)
	addr, _ := serveFile(t, rulesYAML)
	for _, name := range []string{perDBA, perDBB} {
		support := connectVia(t, addr, "support", name)
		if email := queryOne(t, support, "SELECT email FROM customers WHERE id = 2"); email == "ola.hansen@example.org" || !strings.Contains(email, "@") {
			t.Errorf("%s: masked email %q", name, email)
		}
		dpo := connectVia(t, addr, "dpo", name)
		if tag, err := dpo.Exec(testCtx(t), "ANONYMIZE customers WHERE id = 1"); err != nil || tag.String() != "ANONYMIZE 1" {
			t.Fatalf("%s: ANONYMIZE: %q %v", name, tag, err)
		}
		owner := connectDB(t, "postgres", name)
		if n := queryOne(t, owner, "SELECT count(*)::text FROM pgveil.anonymize_log"); n != "1" {
			t.Errorf("%s: %s audit records, want 1", name, n)
		}
		if v := queryOne(t, owner, "SELECT first_name FROM customers WHERE id = 1"); v == "Kari" {
			t.Errorf("%s: first_name not anonymized", name)
		}
	}
	if got := queryOne(t, connectVia(t, addr, "support", perDBPlain), "SELECT current_database()::text"); got != perDBPlain {
		t.Errorf("masked session in %s: %q", perDBPlain, got)
	}
	if got := queryOne(t, connectVia(t, addr, "postgres", perDBPlain), "SELECT 'raw'"); got != "raw" {
		t.Errorf("unmasked session in %s: %q", perDBPlain, got)
	}
}

// TestDatabasesScopeTheirTables: a database under databases: has its own
// tables instead of the top-level ones.
func TestDatabasesScopeTheirTables(t *testing.T) {
	resetPerDBs(t)
	scoped := rulesYAML + fmt.Sprintf(`databases:
  %s:
    tables:
      public.orders:
        key: id
        columns:
          amount: {mask: redact}
`, perDBA)
	p := startProxyRules(t, scoped, "")
	a, b := connectVia(t, p.addr, "support", perDBA), connectVia(t, p.addr, "support", perDBB)
	if v := queryOne(t, a, "SELECT amount::text FROM orders WHERE id = 100"); v == "10.50" {
		t.Errorf("%s: orders.amount is declared there, got it raw", perDBA)
	}
	if v := queryOne(t, a, "SELECT email FROM customers WHERE id = 2"); v != "ola.hansen@example.org" {
		t.Errorf("%s: customers are not declared there, got %q", perDBA, v)
	}
	if v := queryOne(t, b, "SELECT amount::text FROM orders WHERE id = 100"); v != "10.50" {
		t.Errorf("%s: orders.amount is not declared there, got %q", perDBB, v)
	}
	if v := queryOne(t, b, "SELECT email FROM customers WHERE id = 2"); v == "ola.hansen@example.org" {
		t.Errorf("%s: the top-level customers apply there, got the email raw", perDBB)
	}
}

// TestAnonymizeRefusedWhereCheckFails: a key that is not unique makes the
// proxy refuse ANONYMIZE on the table with check's message; masking goes on.
func TestAnonymizeRefusedWhereCheckFails(t *testing.T) {
	resetPerDBs(t)
	const bad = `
roles:
  unmasked: [postgres]
  anonymize: [dpo]
tables:
  public.orders:
    key: customer_id
    columns:
      amount: {mask: redact, anonymize: nullify}
`
	p := startProxyRules(t, bad, "")
	cfg, err := rules.Parse([]byte("listen: a:1\nupstream: a:1\n" + bad))
	if err != nil {
		t.Fatal(err)
	}
	owner := connectDB(t, "postgres", perDBB)
	problems, err := rules.Check(testCtx(t), cfg.ForDatabase(perDBB), owner)
	if err != nil {
		t.Fatal(err)
	}
	var keyProblem string
	for _, pr := range problems {
		if pr.Key == "tables.public.orders.key" && !pr.Warning {
			keyProblem = pr.String()
		}
	}
	if keyProblem == "" {
		t.Fatalf("check finds no error on the key: %v", problems)
	}
	dpo := connectVia(t, p.addr, "dpo", perDBB)
	_, err = dpo.Exec(testCtx(t), "ANONYMIZE orders WHERE customer_id = 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, keyProblem) {
		t.Fatalf("ANONYMIZE on a non-unique key: %v; want 42501 with %q", err, keyProblem)
	}
	if v := queryOne(t, owner, "SELECT string_agg(amount::text, ',' ORDER BY id) FROM orders"); v != "10.50,20.00,5.25,99.99" {
		t.Errorf("orders changed: %s", v)
	}
	if n := queryOne(t, owner, "SELECT count(*)::text FROM pgveil.anonymize_log"); n != "0" {
		t.Errorf("%s audit records, want 0", n)
	}
	if v := queryOne(t, connectVia(t, p.addr, "support", perDBB), "SELECT amount::text FROM orders WHERE id = 100"); v == "10.50" {
		t.Errorf("masking stopped: amount %s", v)
	}
}

// TestAuditConfigNamesItsDatabase: the config_log record lands in the
// database audit_config names; audit_config: true with no database named
// anywhere stops the start.
func TestAuditConfigNamesItsDatabase(t *testing.T) {
	resetPerDBs(t)
	libpqEnvOnly(t)
	serveFile(t, "audit_config: "+perDBB+"\n"+rulesYAML)
	rows := waitConfigLog(t, connectDB(t, "postgres", perDBB), 1)
	if rows[0][3] != "start" {
		t.Errorf("record %q, want a start record", rows[0])
	}
	if n := queryOne(t, connectDB(t, "postgres", perDBA), "SELECT (pg_catalog.to_regclass('pgveil.config_log') IS NULL)::text"); n != "true" {
		t.Errorf("%s got a config_log too", perDBA)
	}

	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	os.WriteFile(path, []byte("listen: "+freeAddr(t)+"\nupstream: "+db.Addr()+"\naudit_config: true\n"+rulesYAML), 0o600)
	err := serveUntil(testCtx(t), path, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "audit_config: true does not say which database holds pgveil.config_log") ||
		!strings.Contains(err.Error(), path) {
		t.Fatalf("unclear audit_config: %v", err)
	}
}

// TestAuditLogThatCannotBeMade: where the proxy's role may not create the
// audit log, ANONYMIZE fails saying why and what to run.
func TestAuditLogThatCannotBeMade(t *testing.T) {
	resetPerDBs(t)
	libpqEnvOnly(t)
	t.Setenv("PGUSER", "support") // has no CREATE on the database
	addr, _ := serveFile(t, rulesYAML)
	dpo := connectVia(t, addr, "dpo", perDBA)
	_, err := dpo.Exec(testCtx(t), "ANONYMIZE customers WHERE id = 1")
	if err == nil || !strings.Contains(err.Error(), "audit log pgveil.anonymize_log is not ready") ||
		!strings.Contains(err.Error(), "permission denied") ||
		!strings.Contains(err.Error(), "pgveil anonymize --init-audit --database "+perDBA) {
		t.Fatalf("ANONYMIZE without an audit log: %v", err)
	}
	if v := queryOne(t, connectDB(t, "postgres", perDBA), "SELECT first_name FROM customers WHERE id = 1"); v != "Kari" {
		t.Errorf("the row changed: %s", v)
	}
}

// poll retries fn every 20ms until it succeeds or the test's deadline.
func poll(t *testing.T, fn func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCommandsNameTheirDatabase: --database picks the database whatever
// the connection string names, its rules are that database's, and each
// command says which database it worked on.
func TestCommandsNameTheirDatabase(t *testing.T) {
	resetPerDBs(t)
	path := writeCheckConfig(t, `roles:
  unmasked: [postgres]
  anonymize: [dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email: {mask: email, anonymize: random_email}
databases:
  `+perDBA+`:
    tables:
      public.orders:
        key: id
        columns:
          amount: {mask: redact}
  `+perDBPlain+`:
    tables:
      public.customers:
        key: id
        columns:
          email: {mask: email}
`)
	dsn := db.DSN("postgres", "", "postgres")
	code, stdout, _ := runCommand(t, "check", "--config", path, "--dsn", dsn, "--database", perDBB)
	if code != 0 || !strings.Contains(stdout, "the rules fit database "+perDBB+" at ") {
		t.Errorf("check --database %s: exit %d, %q", perDBB, code, stdout)
	}
	code, stdout, _ = runCommand(t, "check", "--config", path, "--dsn", dsn, "--all-databases")
	if code != 1 || !strings.Contains(stdout, "the rules fit database "+perDBA+" at ") ||
		!strings.Contains(stdout, "databases."+perDBPlain+".tables.public.customers: ") ||
		!strings.Contains(stdout, "1 error, 0 warnings in "+path+" (database "+perDBPlain+" at ") {
		t.Errorf("check --all-databases: exit %d, %q", code, stdout)
	}
	code, stdout, _ = runCommand(t, "guard", "--config", path, "--dsn", dsn, "--database", perDBB)
	if code != 0 || !strings.Contains(stdout, "guarded public.customers") || !strings.Contains(stdout, "1 table guarded in database "+perDBB+" at ") {
		t.Errorf("guard --database %s: exit %d, %q", perDBB, code, stdout)
	}
	code, stdout, _ = runCommand(t, "guard", "--config", path, "--dsn", dsn, "--database", perDBA)
	if code != 0 || !strings.Contains(stdout, "0 tables guarded in database "+perDBA+" at ") {
		t.Errorf("guard --database %s (no marker there): exit %d, %q", perDBA, code, stdout)
	}
	code, stdout, _ = runCommand(t, "explain", "--config", path, "--dsn", dsn, "--database", perDBA, "--role", "support", "SELECT amount, customer_id FROM orders")
	if code != 0 || !strings.Contains(stdout, "database "+perDBA+"\n") || !strings.Contains(stdout, "public.orders.amount") {
		t.Errorf("explain --database %s: exit %d, %q", perDBA, code, stdout)
	}
	code, stdout, _ = runCommand(t, "scan", "--dsn", dsn, "--database", perDBB, "--values", "0")
	if code != 0 || !strings.Contains(stdout, "(database "+perDBB+" at ") || !strings.Contains(stdout, "email") {
		t.Errorf("scan --database %s: exit %d, %q", perDBB, code, stdout)
	}
	code, stdout, _ = runCommand(t, "anonymize", "--config", path, "--dsn", dsn, "--database", perDBB, "--init-audit")
	if code != 0 || !strings.Contains(stdout, "is ready in database "+perDBB+" at ") {
		t.Errorf("anonymize --init-audit --database %s: exit %d, %q", perDBB, code, stdout)
	}
	if n := queryOne(t, connectDB(t, "postgres", perDBB), "SELECT (pg_catalog.to_regclass('pgveil.anonymize_log') IS NOT NULL)::text"); n != "true" {
		t.Errorf("the audit log is not in %s", perDBB)
	}
	if code, _, stderr := runCommand(t, "check", "--config", path, "--database", "x", "--all-databases"); code != 2 || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("--database with --all-databases: exit %d, %q", code, stderr)
	}
	plain := writeCheckConfig(t, rulesYAML)
	if code, _, stderr := runCommand(t, "guard", "--config", plain, "--all-databases"); code != 2 || !strings.Contains(stderr, "names no database under databases:") {
		t.Errorf("--all-databases without databases: exit %d, %q", code, stderr)
	}
}

// TestSessionsReleaseTheirDatabase: a session's database is held while it
// runs and released when it ends, on every relay path.
func TestSessionsReleaseTheirDatabase(t *testing.T) {
	resetPerDBs(t)
	p := startProxyRules(t, rulesYAML, "")
	held := func(want int) {
		t.Helper()
		err := poll(t, func() error {
			if _, n := p.guard.DatabaseCounts(); n != want {
				return fmt.Errorf("%d databases in use, want %d", n, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	a, err := pgx.Connect(testCtx(t), proxyDSN(p.addr, "support", perDBA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgx.Connect(testCtx(t), proxyDSN(p.addr, "dpo", perDBB))
	if err != nil {
		t.Fatal(err)
	}
	queryOne(t, a, "SELECT email FROM customers WHERE id = 1")
	held(2)
	a.Close(testCtx(t))
	b.Close(testCtx(t))
	held(0)
	if open, _ := p.guard.DatabaseCounts(); open != 2 {
		t.Errorf("%d databases open, want 2 (kept until idle)", open)
	}
}
