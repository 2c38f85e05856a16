package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The anonymize tests use their own database and roles in the package's
// cluster, so that they change none of the rows other tests read.
const (
	anonDB    = "anonymize_cli"
	anonDPO   = "anon_dpo"
	anonClerk = "anon_clerk"
)

const anonRulesYAML = `
roles:
  anonymize: [anon_dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email}
      first_name: {mask: redact, anonymize: redact}
  public.survey_responses:
    key: id
    parent: {table: public.customers, via: customer_id}
    columns:
      comment: {mask: redact, anonymize: "text:(anonymized)"}
  public.recordings:
    key: id
    parent: {table: public.customers, via: customer_id}
    on_anonymize: delete
    columns:
      audio: {mask: redact}
`

const anonSchemaSQL = `
DROP TABLE IF EXISTS customers, survey_responses, recordings;
DROP SCHEMA IF EXISTS pgveil CASCADE;
CREATE TABLE customers (id int8 PRIMARY KEY, email text UNIQUE, first_name text, anonymized_at timestamptz);
CREATE TABLE survey_responses (id int8 PRIMARY KEY, customer_id int8, comment text);
CREATE TABLE recordings (id int8 PRIMARY KEY, customer_id int8, audio bytea);
INSERT INTO customers SELECT i, 'person' || i || '@example.com', 'Name' || i FROM generate_series(1, 5) i;
INSERT INTO survey_responses SELECT 10 + i, i, 'comment of ' || i FROM generate_series(1, 5) i;
INSERT INTO recordings SELECT 100 + i, i, 'voice' FROM generate_series(1, 5) i;
GRANT SELECT, UPDATE, DELETE ON customers, survey_responses, recordings TO anon_dpo, anon_clerk;
`

// resetAnonDB creates (once) the database and roles of the anonymize
// tests and gives it fresh tables without an audit log.
func resetAnonDB(t *testing.T) {
	t.Helper()
	ctx := testCtx(t)
	setupOnce(t, anonDB, "CREATE ROLE "+anonDPO+" LOGIN; CREATE ROLE "+anonClerk+" LOGIN", "CREATE DATABASE "+anonDB)
	conn := anonConn(t, "postgres")
	if _, err := conn.Exec(ctx, anonSchemaSQL); err != nil {
		t.Fatal(err)
	}
}

// anonConn connects to the anonymize tests' database.
func anonConn(t *testing.T, role string) *pgx.Conn {
	t.Helper()
	return connectDB(t, role, anonDB)
}

// anonRows reads the tables of the anonymize tests as text.
func anonRows(t *testing.T) []string {
	t.Helper()
	rows, err := anonConn(t, "postgres").Query(testCtx(t), `
		SELECT 'c ' || id || ' ' || email || ' ' || first_name || ' ' || (anonymized_at IS NOT NULL) FROM customers
		UNION ALL SELECT 's ' || id || ' ' || comment FROM survey_responses
		UNION ALL SELECT 'r ' || id FROM recordings ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeAnonFile writes a file in a temporary directory.
func writeAnonFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runAnonymizeCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCommand(t, "anonymize", args...)
}

// anonArgs are the flags every run shares, connecting as role.
func anonArgs(t *testing.T, role string) []string {
	return []string{"--config", writeCheckConfig(t, anonRulesYAML), "--dsn", db.DSN(role, "", anonDB)}
}

// initAnonAudit creates the audit log as the superuser.
func initAnonAudit(t *testing.T) {
	t.Helper()
	code, stdout, _ := runAnonymizeCommand(t, append(anonArgs(t, "postgres"), "--init-audit")...)
	if code != 0 || !strings.Contains(stdout, "pgveil.anonymize_log is ready in database "+anonDB) {
		t.Fatalf("--init-audit: exit %d, stdout %q", code, stdout)
	}
}

func TestAnonymizeCommandCSVColumnTwice(t *testing.T) {
	resetAnonDB(t)
	initAnonAudit(t)
	keys := writeAnonFile(t, "keys.csv", "\ufeffticket,customer_id\nT-1,1\n\"T-2, urgent\",3\nT-3,99\nT-4,1\nT-5,\n")
	args := append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys, "--column", "customer_id", "--batch", "2")
	code, stdout, _ := runAnonymizeCommand(t, args...)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	for _, want := range []string{
		"pgveil anonymize: public.customers, 3 keys in 2 batches, ",
		"  anonymized  public.customers         2 rows\n",
		"  anonymized  public.survey_responses  2 rows\n",
		"  deleted     public.recordings        2 rows\n",
		"  keys not found: 1\n",
		"  keys found but anonymized before: 0\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	after := anonRows(t)
	checkAnonymizedCustomers(t, after, "1", "3")
	code, stdout, _ = runAnonymizeCommand(t, args...)
	if code != 0 || !strings.Contains(stdout, "  anonymized  public.customers         0 rows\n") ||
		!strings.Contains(stdout, "  keys found but anonymized before: 2\n") {
		t.Errorf("second run: exit %d, stdout %q", code, stdout)
	}
	if again := anonRows(t); !reflect.DeepEqual(after, again) {
		t.Errorf("the second run changed rows:\n%q\n%q", after, again)
	}
}

// checkAnonymizedCustomers checks that exactly the given customers, their
// survey responses and recordings were anonymized.
func checkAnonymizedCustomers(t *testing.T, rows []string, ids ...string) {
	t.Helper()
	done := map[string]bool{}
	for _, id := range ids {
		done[id] = true
	}
	for _, r := range rows {
		f := strings.Fields(r)
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatal(err)
		}
		id := strconv.Itoa(n % 10) // customer i has survey response 10+i and recording 100+i
		switch {
		case f[0] == "c" && done[id] != (strings.HasPrefix(f[2], "anon-") && f[3] == "***" && f[4] == "true"):
			t.Errorf("customer row %q", r)
		case f[0] == "s" && done[id] != (f[2] == "(anonymized)"):
			t.Errorf("survey row %q", r)
		case f[0] == "r" && done[id]:
			t.Errorf("recording not deleted: %q", r)
		}
	}
}

func TestAnonymizeCommandPlainKeysFile(t *testing.T) {
	resetAnonDB(t)
	initAnonAudit(t)
	keys := writeAnonFile(t, "keys.txt", "2\n\n  4 \n2\r\n")
	code, stdout, stderr := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "public.customers", "--keys", keys)...)
	if code != 0 || !strings.Contains(stdout, "public.customers, 2 keys in 1 batch") || stderr != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	checkAnonymizedCustomers(t, anonRows(t), "2", "4")
	var logged string
	err := anonConn(t, "postgres").QueryRow(testCtx(t),
		"SELECT login_role || ' ' || anonymized::text || ' ' || deleted::text || ' ' || statement FROM pgveil.anonymize_log").Scan(&logged)
	want := `anon_dpo {"public.customers": [2, 4], "public.survey_responses": [12, 14]} {"public.recordings": [102, 104]} ANONYMIZE public.customers WHERE id = ANY($1)`
	if err != nil || logged != want {
		t.Errorf("audit record %q, %v\nwant %q", logged, err, want)
	}
}

func TestAnonymizeCommandRefusals(t *testing.T) {
	resetAnonDB(t)
	before := anonRows(t)
	keys := writeAnonFile(t, "keys.txt", "1\n")
	code, _, stderr := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys)...)
	if code != 1 || !strings.Contains(stderr, "the audit log pgveil.anonymize_log does not exist") || !strings.Contains(stderr, "--init-audit") {
		t.Errorf("without the audit log: exit %d, stderr %q", code, stderr)
	}
	initAnonAudit(t)
	code, _, stderr = runAnonymizeCommand(t, append(anonArgs(t, anonClerk), "--table", "customers", "--keys", keys)...)
	if code != 1 || !strings.Contains(stderr, "pgveil anonymize: role anon_clerk may not anonymize: it is not in roles.anonymize of ") {
		t.Errorf("role not in roles.anonymize: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "orders", "--keys", keys)...)
	if code != 1 || !strings.Contains(stderr, "table orders is not declared in the rules with a key (searched: public.orders)") {
		t.Errorf("unknown table: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys, "--column", "id")...)
	if code != 1 || !strings.Contains(stderr, `no column "id" in the CSV header`) {
		t.Errorf("missing CSV column: exit %d, stderr %q", code, stderr)
	}
	bad := writeAnonFile(t, "keys.txt", "1\nnot-a-number\n")
	code, stdout, stderr := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", bad, "--batch", "1")...)
	if code != 1 || !strings.Contains(stderr, "batch 2 failed and changed nothing (1 keys before it were done)") ||
		!strings.Contains(stdout, "anonymized  public.customers         1 row\n") {
		t.Errorf("bad key: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	checkAnonymizedCustomers(t, anonRows(t), "1")
	if len(before) != 15 {
		t.Errorf("before: %q", before)
	}
}

func TestAnonymizeCommandUsage(t *testing.T) {
	code, _, stderr := runAnonymizeCommand(t, "--help")
	if code != 0 || !strings.Contains(stderr, "Usage: pgveil anonymize") || !strings.Contains(stderr, "Exit status: 0 on success") {
		t.Errorf("--help: exit %d", code)
	}
	for _, args := range [][]string{
		{},
		{"--table", "customers"},
		{"--keys", "k.txt"},
		{"--table", "customers", "--keys", "k.txt", "--batch", "0"},
		{"--table", "customers", "--keys", "k.txt", "extra"},
		{"--no-such-flag"},
	} {
		if code, _, _ := runAnonymizeCommand(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runAnonymizeCommand(t, "--config", filepath.Join(t.TempDir(), "none.yaml"), "--init-audit"); code != 1 || !strings.Contains(stderr, "none.yaml") {
		t.Errorf("missing config: exit %d, stderr %q", code, stderr)
	}
}

func TestAnonymizeProgress(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &progress{name: "pgveil anonymize", unit: "keys", w: &buf, total: 100, now: func() time.Time { return clock }, start: clock}
	for _, step := range []struct {
		after time.Duration
		done  int
	}{{500 * time.Millisecond, 10}, {2 * time.Second, 20}, {5 * time.Second, 30}, {13 * time.Second, 60}, {14 * time.Second, 100}} {
		clock = p.start.Add(step.after)
		p.update(step.done)
	}
	p.finish()
	want := "pgveil anonymize: 20/100 keys (20%), 2s\npgveil anonymize: 60/100 keys (60%), 13s\npgveil anonymize: 100/100 keys (100%), 14s\n"
	if buf.String() != want {
		t.Errorf("plain progress:\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	p = &progress{name: "pgveil anonymize", unit: "keys", w: &buf, tty: true, total: 4, now: func() time.Time { return clock }, start: clock.Add(-3 * time.Second)}
	p.update(1)
	p.finish()
	if want := "\r[#######.......................]  25%  1/4 keys  3s\n"; buf.String() != want {
		t.Errorf("terminal progress %q, want %q", buf.String(), want)
	}
}
