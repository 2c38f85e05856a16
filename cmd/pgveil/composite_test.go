package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The composite-key tests use their own database: customers with a
// unique customer number, conversations partitioned by time with
// PRIMARY KEY (id, started_at), and notes that point at a conversation
// by both columns.
const compDB = "composite_keys"

const compRulesYAML = `
roles:
  unmasked: [postgres]
  anonymize: [comp_dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      customer_no: {mask: redact, anonymize: random_id}
      email:       {mask: email, anonymize: random_email}
      name:        {mask: redact, anonymize: redact}
  public.conversations:
    key: [id, started_at]
    anonymized_marker: anonymized_at
    parent: {table: public.customers, via: customer_id}
    columns:
      transcript: {mask: redact, anonymize: "text:This comment has been anonymised based on customer request"}
  public.conversation_notes:
    key: id
    parent: {table: public.conversations, via: [conversation_id, conversation_started_at]}
    on_anonymize: delete
    columns:
      note: {mask: redact}
`

const compSchemaSQL = `
DROP TABLE IF EXISTS conversation_notes, conversations, customers;
DROP SCHEMA IF EXISTS pgveil CASCADE;
DROP SCHEMA IF EXISTS pgveil_guard CASCADE;
CREATE TABLE customers (id int8 PRIMARY KEY, customer_no text UNIQUE NOT NULL, email text, name text, anonymized_at timestamptz);
CREATE TABLE conversations (
  id int8, started_at timestamptz, customer_id int8 REFERENCES customers, transcript text, anonymized_at timestamptz,
  PRIMARY KEY (id, started_at)) PARTITION BY RANGE (started_at);
CREATE TABLE conversations_2024_01 PARTITION OF conversations FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE conversations_2024_02 PARTITION OF conversations FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE conversation_notes (
  id int8 PRIMARY KEY, conversation_id int8, conversation_started_at timestamptz, note text,
  FOREIGN KEY (conversation_id, conversation_started_at) REFERENCES conversations);
INSERT INTO customers SELECT i, 'C-' || lpad(i::text, 6, '0'), 'person' || i || '@example.com', 'Name' || i FROM generate_series(1, 503) i;
-- Two conversations per customer 1..3, one each month; ids repeat across
-- months, so that only (id, started_at) tells them apart.
INSERT INTO conversations SELECT c, ts, c, 'transcript of ' || c || ' at ' || ts::date, NULL
  FROM generate_series(1, 3) c, (VALUES (timestamptz '2024-01-15 10:00+00'), (timestamptz '2024-02-15 10:00+00')) m(ts);
INSERT INTO conversation_notes SELECT row_number() OVER (ORDER BY id, started_at), id, started_at, 'note on ' || transcript FROM conversations;
GRANT SELECT, UPDATE, DELETE ON customers, conversations, conversation_notes TO comp_dpo;
`

// resetCompDB creates (once) the composite tests' database and role, and
// gives it fresh tables with the audit log.
func resetCompDB(t *testing.T) *pgx.Conn {
	t.Helper()
	setupOnce(t, compDB, "CREATE ROLE comp_dpo LOGIN", "CREATE DATABASE "+compDB)
	conn := connectDB(t, "postgres", compDB)
	mustExec(t, conn, compSchemaSQL)
	code, stdout, stderr := runAnonymizeCommand(t, "--config", writeCheckConfig(t, compRulesYAML), "--dsn", db.DSN("postgres", "", compDB), "--init-audit")
	if code != 0 {
		t.Fatalf("--init-audit: exit %d\n%s%s", code, stdout, stderr)
	}
	return conn
}

// proxyConnDB connects through the proxy as user to a database.
func proxyConnDB(t *testing.T, p *maskingProxy, user, database string) *pgx.Conn {
	t.Helper()
	u := url.URL{Scheme: "postgres", Host: p.addr, Path: "/" + database, User: url.User(user), RawQuery: "sslmode=disable"}
	conn, err := pgx.Connect(testCtx(t), u.String())
	if err != nil {
		t.Fatalf("connect as %s to %s: %v", user, database, err)
	}
	t.Cleanup(func() { conn.Close(testCtx(t)) })
	return conn
}

// textRows runs sql and returns its rows as text.
func queryStrings(t *testing.T, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestCompositeKeyCheckAndGuard(t *testing.T) {
	admin := resetCompDB(t)
	path := writeCheckConfig(t, compRulesYAML)
	dsn := db.DSN("postgres", "", compDB)
	if code, stdout, stderr := runCheckCommand(t, "--config", path, "--dsn", dsn); code != 0 || strings.Contains(stdout+stderr, "error") {
		t.Fatalf("check: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCommand(t, "guard", "--config", path, "--dsn", dsn); code != 0 {
		t.Fatalf("guard: exit %d\n%s%s", code, stdout, stderr)
	}
	mustExec(t, admin, "UPDATE conversations SET anonymized_at = now(), transcript = 'x' WHERE id = 2 AND started_at = '2024-02-15 10:00+00'")
	_, err := admin.Exec(testCtx(t), "UPDATE conversations SET transcript = 'back' WHERE id = 2 AND started_at = '2024-02-15 10:00+00'")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "the row with (id, started_at) = (2, 2024-02-15 10:00:00+00) is anonymized") {
		t.Errorf("guarded UPDATE: got %v, want 42501 naming (id, started_at)", err)
	}
}

func TestCompositeKeyCheckNamesTheKeyThatFits(t *testing.T) {
	resetCompDB(t)
	bad := strings.Replace(compRulesYAML, "key: [id, started_at]", "key: id", 1)
	bad = strings.Replace(bad, "via: [conversation_id, conversation_started_at]", "via: conversation_id", 1)
	code, stdout, stderr := runCheckCommand(t, "--config", writeCheckConfig(t, bad), "--dsn", db.DSN("postgres", "", compDB))
	want := "tables.public.conversations.key: id is not unique by itself: no primary key, unique constraint or unique index covers (id) alone " +
		"(primary key conversations_pkey covers it only with more columns, an expression or a WHERE clause); declare key: [id, started_at]"
	if code != 1 || !strings.Contains(stdout+stderr, want) {
		t.Errorf("check: exit %d, want 1 and %q in\n%s%s", code, want, stdout, stderr)
	}
	short := strings.Replace(compRulesYAML, "via: [conversation_id, conversation_started_at]", "via: conversation_id", 1)
	code, stdout, stderr = runCheckCommand(t, "--config", writeCheckConfig(t, short), "--dsn", db.DSN("postgres", "", compDB))
	want = "tables.public.conversation_notes.parent.via: names 1 column, but the key of public.conversations has 2 columns (id, started_at)"
	if code == 0 || !strings.Contains(stdout+stderr, want) {
		t.Errorf("check: exit %d, want %q in\n%s%s", code, want, stdout, stderr)
	}
}

func TestCompositeKeyAnonymizeThroughProxy(t *testing.T) {
	admin := resetCompDB(t)
	p := startProxyRules(t, compRulesYAML, "")
	dpo := proxyConnDB(t, p, "comp_dpo", compDB)
	tag, err := dpo.Exec(testCtx(t), "ANONYMIZE customers WHERE id = 1")
	if err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("ANONYMIZE: %v %v", tag, err)
	}
	got := queryStrings(t, admin, "SELECT id || ' ' || started_at::date || ' ' || transcript || ' ' || (anonymized_at IS NOT NULL) FROM conversations ORDER BY 1")
	fixed := "This comment has been anonymised based on customer request"
	want := []string{"1 2024-01-15 " + fixed + " true", "1 2024-02-15 " + fixed + " true",
		"2 2024-01-15 transcript of 2 at 2024-01-15 false", "2 2024-02-15 transcript of 2 at 2024-02-15 false",
		"3 2024-01-15 transcript of 3 at 2024-01-15 false", "3 2024-02-15 transcript of 3 at 2024-02-15 false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("conversations:\n got %q\nwant %q", got, want)
	}
	notes := queryStrings(t, admin, "SELECT conversation_id::text FROM conversation_notes ORDER BY 1")
	if fmt.Sprint(notes) != "[2 2 3 3]" {
		t.Errorf("notes left: %v, want those of conversations 2 and 3", notes)
	}
	checkCompositeAudit(t, admin)
}

// checkCompositeAudit checks that the audit record names composite keys
// as arrays, and one-column keys as values.
func checkCompositeAudit(t *testing.T, admin *pgx.Conn) {
	t.Helper()
	recs := queryStrings(t, admin, "SELECT jsonb_build_array(anonymized, deleted)::text FROM pgveil.anonymize_log")
	if len(recs) != 1 {
		t.Fatalf("audit records: %q, want 1", recs)
	}
	var rec []map[string][]any
	if err := json.Unmarshal([]byte(recs[0]), &rec); err != nil {
		t.Fatal(err)
	}
	conv := fmt.Sprint(rec[0]["public.conversations"])
	if conv != "[[1 2024-01-15T10:00:00+00:00] [1 2024-02-15T10:00:00+00:00]]" {
		t.Errorf("conversations in the audit log: %s", conv)
	}
	if c, n := fmt.Sprint(rec[0]["public.customers"]), fmt.Sprint(rec[1]["public.conversation_notes"]); c != "[1]" || n != "[1 2]" {
		t.Errorf("audit: customers %s, notes deleted %s", c, n)
	}
}

func TestCompositeKeyExplainAndKeysFile(t *testing.T) {
	admin := resetCompDB(t)
	p := startProxyRules(t, compRulesYAML, "")
	dpo := proxyConnDB(t, p, "comp_dpo", compDB)
	rows, err := dpo.Query(testCtx(t), "EXPLAIN ANONYMIZE customers WHERE id = 2")
	if err != nil {
		t.Fatal(err)
	}
	preview, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var table, key, action string
		var cols *string
		err := r.Scan(&table, &key, &action, &cols)
		return table + " " + key + " " + action, err
	})
	want := []string{"public.customers 2 anonymize",
		`public.conversations [2, "2024-01-15T10:00:00+00:00"] anonymize`, `public.conversations [2, "2024-02-15T10:00:00+00:00"] anonymize`,
		"public.conversation_notes 3 delete", "public.conversation_notes 4 delete"}
	if err != nil || fmt.Sprint(preview) != fmt.Sprint(want) {
		t.Errorf("EXPLAIN ANONYMIZE: %v\n got %q\nwant %q", err, preview, want)
	}
	keys := writeAnonFile(t, "conversations.csv", "started_at,id,reason\n2024-02-15 10:00+00,3,asked\n2024-02-15 10:00+00,3,twice\n,,\n2024-01-15 10:00+00,99,unknown\n")
	code, stdout, stderr := runAnonymizeCommand(t, "--config", writeCheckConfig(t, compRulesYAML), "--dsn", db.DSN("comp_dpo", "", compDB),
		"--table", "conversations", "--keys", keys, "--no-vacuum")
	if code != 0 {
		t.Fatalf("anonymize --keys: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"public.conversations, 2 keys in 1 batch", "anonymized  public.conversations       1 row",
		"deleted     public.conversation_notes  1 row", "keys not found: 1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	changed := queryStrings(t, admin, "SELECT id || ' ' || started_at::date FROM conversations WHERE anonymized_at IS NOT NULL")
	if fmt.Sprint(changed) != "[3 2024-02-15]" {
		t.Errorf("anonymized conversations: %v, want only (3, 2024-02-15)", changed)
	}
	code, _, stderr = runAnonymizeCommand(t, "--config", writeCheckConfig(t, compRulesYAML), "--dsn", db.DSN("comp_dpo", "", compDB),
		"--table", "conversations", "--keys", keys, "--column", "id", "--no-vacuum")
	if code != 2 || !strings.Contains(stderr, "--column is for a one-column key") {
		t.Errorf("--column with a composite key: exit %d, %s", code, stderr)
	}
}

func TestRandomIDKeepsUniqueColumnsUnique(t *testing.T) {
	admin := resetCompDB(t)
	p := startProxyRules(t, compRulesYAML, "")
	dpo := proxyConnDB(t, p, "comp_dpo", compDB)
	tag, err := dpo.Exec(testCtx(t), "ANONYMIZE customers WHERE id BETWEEN 4 AND 503")
	if err != nil || tag.String() != "ANONYMIZE 500" {
		t.Fatalf("ANONYMIZE: %v %v", tag, err)
	}
	nos := queryStrings(t, admin, "SELECT customer_no FROM customers WHERE id >= 4")
	seen := map[string]bool{}
	for _, no := range nos {
		if seen[no] || !strings.HasPrefix(no, "anon-") || len(no) != len("anon-")+36 || strings.Contains(no, "C-") {
			t.Fatalf("customer_no %q: repeated, or not a fresh anon-<uuid>", no)
		}
		seen[no] = true
	}
	if len(seen) != 500 {
		t.Errorf("%d distinct customer numbers, want 500", len(seen))
	}
	tag, err = dpo.Exec(testCtx(t), "ANONYMIZE customers WHERE id BETWEEN 4 AND 503")
	if err != nil || tag.String() != "ANONYMIZE 0" {
		t.Errorf("second ANONYMIZE: %v %v, want ANONYMIZE 0", tag, err)
	}
}
