package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/rules"
)

// The guard tests use their own database, so that their triggers hinder
// no other test.
const guardDB = "guard_cli"

const guardRulesYAML = `
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email}
      first_name: {mask: redact, anonymize: redact}
      phone:      {mask: redact}
  public.conversations:
    key: id
    anonymized_marker: anonymized_at
    parent: {table: public.customers, via: customer_id}
    columns:
      subject: {mask: redact, anonymize: redact}
`

const guardSchemaSQL = `
DROP TABLE IF EXISTS conversations, customers;
DROP SCHEMA IF EXISTS pgveil CASCADE;
CREATE TABLE customers (id int8 PRIMARY KEY, email text UNIQUE, first_name text, phone text, country text, anonymized_at timestamptz);
CREATE TABLE conversations (id int8 PRIMARY KEY, customer_id int8 REFERENCES customers, subject text, anonymized_at timestamptz) PARTITION BY RANGE (id);
CREATE TABLE conversations_2024 PARTITION OF conversations FOR VALUES FROM (0) TO (1000);
INSERT INTO customers VALUES (1, 'kari@example.com', 'Kari', '+4791234567', 'NO', NULL), (2, 'ola@example.org', 'Ola', '+4798765432', 'SE', NULL);
INSERT INTO conversations VALUES (100, 1, 'Kari asks', NULL), (101, 2, 'Ola asks', NULL);
GRANT SELECT, UPDATE ON customers, conversations TO support;
`

// resetGuardDB creates (once) the guard tests' database and gives it
// fresh tables without guards.
func resetGuardDB(t *testing.T) *pgx.Conn {
	t.Helper()
	setupOnce(t, guardDB, "CREATE DATABASE "+guardDB)
	conn := connectDB(t, "postgres", guardDB)
	if _, err := conn.Exec(testCtx(t), guardSchemaSQL); err != nil {
		t.Fatal(err)
	}
	return conn
}

// connectDB connects as role to a database of the test cluster.
func connectDB(t *testing.T, role, database string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), db.DSN(role, "", database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// wantRefused checks that sql fails with 42501 and a message naming the
// table and the key.
func wantRefused(t *testing.T, conn *pgx.Conn, sql, table, key string) {
	t.Helper()
	_, err := conn.Exec(testCtx(t), sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "UPDATE of "+table+" refused") ||
		!strings.Contains(pe.Message, "the row with "+key+" is anonymized") {
		t.Errorf("%s: got %v, want 42501 naming %s and %s", sql, err, table, key)
	}
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql); err != nil {
		t.Errorf("%s: %v", sql, err)
	}
}

// anonymizeDirect runs ANONYMIZE's plan on conn, as the proxy would.
func anonymizeDirect(t *testing.T, conn *pgx.Conn, cfg *rules.Config, stmt string) string {
	t.Helper()
	ctx := testCtx(t)
	if err := anonymize.EnsureAuditLog(ctx, conn, nil); err != nil {
		t.Fatal(err)
	}
	st, err := anonymize.Parse(stmt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Plan(cfg, []string{"public"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	params := make([][]byte, len(p.Params))
	for i, v := range p.Params {
		params[i] = []byte(v)
	}
	res := conn.PgConn().ExecParams(ctx, p.SQL, params, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", stmt, res.Err)
	}
	return string(res.Rows[0][0])
}

func TestGuardKeepsAnonymizedRowsAnonymized(t *testing.T) {
	conn := resetGuardDB(t)
	path := writeCheckConfig(t, guardRulesYAML)
	dsn := db.DSN("postgres", "", guardDB)
	for range 2 { // a second run replaces the first
		code, stdout, _ := runCommand(t, "guard", "--config", path, "--dsn", dsn)
		if code != 0 || !strings.Contains(stdout, "guarded public.customers: pgveil guard of public.customers: marker anonymized_at, columns email, first_name\n") ||
			!strings.Contains(stdout, "pgveil guard: 2 tables guarded in database "+guardDB) {
			t.Fatalf("guard: exit %d, stdout %q", code, stdout)
		}
	}
	var triggers string
	if err := conn.QueryRow(testCtx(t), `SELECT string_agg(tgrelid::regclass || ' ' || tgname || ' ' || tgenabled::text, ', ' ORDER BY 1)
		FROM pg_trigger WHERE tgname LIKE 'guard%'`).Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	const want = "conversations guard_public_conversations A, conversations_2024 guard_public_conversations A, customers guard_public_customers A"
	if triggers != want {
		t.Errorf("triggers: %q\nwant %q", triggers, want)
	}
	if code, stdout, _ := runCheckCommand(t, "--config", path, "--dsn", dsn); code != 0 || strings.Contains(stdout, "warning") {
		t.Errorf("check with the guards installed: exit %d, stdout %q", code, stdout)
	}

	cfg, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := anonymizeDirect(t, conn, cfg, "ANONYMIZE customers WHERE id = 1"); n != "1" {
		t.Fatalf("ANONYMIZE under the guard: count %s, want 1", n)
	}
	wantRefused(t, conn, "UPDATE customers SET email = 'x@y' WHERE id = 1", "public.customers", "id = 1")
	wantRefused(t, conn, "UPDATE customers SET anonymized_at = NULL WHERE id = 1", "public.customers", "id = 1")
	wantRefused(t, conn, "UPDATE conversations SET subject = 'Kari asks again' WHERE id = 100", "public.conversations", "id = 100")
	wantRefused(t, connectDB(t, "support", guardDB), "UPDATE customers SET first_name = 'Kari' WHERE id = 1", "public.customers", "id = 1")
	mustExec(t, conn, "UPDATE customers SET country = 'DK', phone = '+4700000000', anonymized_at = now() WHERE id = 1")
	mustExec(t, conn, "UPDATE customers SET email = 'ola.new@example.org' WHERE id = 2")
	mustExec(t, conn, "UPDATE conversations SET subject = 'Ola asks again' WHERE id = 101")
	if err := pgx.BeginFunc(testCtx(t), conn, func(tx pgx.Tx) error {
		mustExec(t, conn, "SET LOCAL session_replication_role = replica")
		wantRefused(t, conn, "UPDATE customers SET email = 'x@y' WHERE id = 1", "public.customers", "id = 1")
		return nil
	}); err == nil {
		t.Error("the transaction with a refused UPDATE committed")
	}
	if n := anonymizeDirect(t, conn, cfg, "ANONYMIZE customers WHERE id IN (1, 2)"); n != "1" {
		t.Errorf("ANONYMIZE of one anonymized and one fresh customer: count %s, want 1", n)
	}
}

func TestGuardCheckAndDrop(t *testing.T) {
	conn := resetGuardDB(t)
	path := writeCheckConfig(t, guardRulesYAML)
	dsn := db.DSN("postgres", "", guardDB)
	if code, _, _ := runCommand(t, "guard", "--config", path, "--dsn", dsn); code != 0 {
		t.Fatalf("guard: exit %d", code)
	}
	changed := writeCheckConfig(t, strings.Replace(guardRulesYAML, "phone:      {mask: redact}", "phone:      {mask: redact, anonymize: blank}", 1))
	checkWarns(t, changed, dsn, "tables.public.customers.anonymized_marker: warning: the guard function pgveil.guard_public_customers is out of date with the rules (installed: pgveil guard of public.customers: marker anonymized_at, columns email, first_name; the rules: pgveil guard of public.customers: marker anonymized_at, columns email, first_name, phone)")
	mustExec(t, conn, "ALTER TABLE conversations_2024 DISABLE TRIGGER guard_public_conversations")
	checkWarns(t, path, dsn, "tables.public.conversations.anonymized_marker: warning: the guard trigger guard_public_conversations on partition public.conversations_2024 is disabled")
	mustExec(t, conn, "ALTER TABLE customers ENABLE TRIGGER guard_public_customers")
	checkWarns(t, path, dsn, "tables.public.customers.anonymized_marker: warning: the guard trigger guard_public_customers is enabled only for origin and local sessions, not ALWAYS")
	withoutMarker := writeCheckConfig(t, strings.Replace(guardRulesYAML, "    anonymized_marker: anonymized_at\n    parent:", "    parent:", 1))
	checkWarns(t, withoutMarker, dsn, "tables.public.conversations: warning: a guard trigger guard_public_conversations is installed, but the rules declare no anonymized_marker")

	code, stdout, _ := runCommand(t, "guard", "--config", path, "--dsn", dsn, "--drop")
	if code != 0 || !strings.Contains(stdout, "dropped the guard of public.customers\n") || !strings.Contains(stdout, "pgveil guard: 2 guards dropped") {
		t.Fatalf("--drop: exit %d, stdout %q", code, stdout)
	}
	checkWarns(t, path, dsn, "tables.public.customers.anonymized_marker: warning: no guard trigger guard_public_customers: any writer can give an anonymized row its personal data back; run pgveil guard --config "+path)
	var functions int
	if err := conn.QueryRow(testCtx(t), "SELECT count(*) FROM pg_proc WHERE proname LIKE 'guard%'").Scan(&functions); err != nil || functions != 0 {
		t.Errorf("functions left after --drop: %d, %v", functions, err)
	}
	mustExec(t, conn, "UPDATE customers SET anonymized_at = now() WHERE id = 1")
	mustExec(t, conn, "UPDATE customers SET email = 'x@y' WHERE id = 1")
}

// checkWarns runs pgveil check and wants exit 0 and the warning line.
func checkWarns(t *testing.T, path, dsn, line string) {
	t.Helper()
	code, stdout, _ := runCheckCommand(t, "--config", path, "--dsn", dsn)
	if code != 0 || !strings.Contains(stdout, line) {
		t.Errorf("check: exit %d, stdout\n%s\nwant a line %q", code, stdout, line)
	}
}

func TestGuardRefusesRulesWithErrors(t *testing.T) {
	conn := resetGuardDB(t)
	path := writeCheckConfig(t, strings.Replace(guardRulesYAML, "first_name: {", "first_nam: {", 1))
	code, stdout, stderr := runCommand(t, "guard", "--config", path, "--dsn", db.DSN("postgres", "", guardDB))
	if code != 1 || !strings.Contains(stdout, "tables.public.customers.columns.first_nam: no such column") || !strings.Contains(stderr, "no guard changed") {
		t.Errorf("guard with a missing column: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var n int
	if err := conn.QueryRow(testCtx(t), "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'guard%'").Scan(&n); err != nil || n != 0 {
		t.Errorf("triggers: %d, %v", n, err)
	}
	if code, _, stderr := runCommand(t, "guard", "--help"); code != 0 || !strings.Contains(stderr, "Exit status: 0 when the guards are installed") {
		t.Errorf("--help: exit %d", code)
	}
	if code, _, _ := runCommand(t, "guard", "extra"); code != 2 {
		t.Errorf("an argument: exit %d, want 2", code)
	}
}
