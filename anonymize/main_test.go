package anonymize

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/rules"
)

var db *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, pgtest.Options{}, setupRoles, &db))
}

// setupRoles creates the login roles of the tests.
func setupRoles(c *pgtest.Cluster) error {
	return c.Exec(context.Background(), "CREATE ROLE dpo LOGIN; CREATE ROLE clerk LOGIN")
}

// testRules declare a small CRM: customers, two child tables (one
// partitioned by month) and a grandchild whose rows are deleted.
const testRules = `
listen: 127.0.0.1:0
upstream: 127.0.0.1:5432
roles:
  anonymize: [dpo, no_such_role]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email, lookup: true}
      first_name: {mask: redact, anonymize: redact}
      nickname:   {mask: redact, anonymize: nullify}
      phone:      {mask: "partial:2,2", anonymize: blank}
      birth_date: {mask: "generalize:year", anonymize: redact}
      notes:      {mask: redact, anonymize: redact}
  public.survey_responses:
    key: id
    parent: {table: public.customers, via: customer_id}
    columns:
      comment: {mask: redact, anonymize: "text:This comment has been anonymised based on customer request"}
  public.conversations:
    key: id
    anonymized_marker: anonymized_at
    parent: {table: public.customers, via: customer_id}
    columns:
      subject: {mask: redact, anonymize: redact}
  public.recordings:
    key: id
    parent: {table: public.conversations, via: conversation_id}
    on_anonymize: delete
    columns:
      audio: {mask: redact}
`

// testSchema is the database for testRules. Every PII value is in piiValues.
const testSchema = `
DROP TABLE IF EXISTS customers, survey_responses, conversations, recordings CASCADE;
DROP SCHEMA IF EXISTS pgveil CASCADE;
CREATE TABLE customers (
  id int8 PRIMARY KEY, email text UNIQUE, first_name text, nickname text, phone varchar(20),
  birth_date date, notes jsonb, country text, anonymized_at timestamptz);
CREATE TABLE survey_responses (id int8 PRIMARY KEY, customer_id int8 REFERENCES customers, nps int, comment text);
CREATE INDEX ON survey_responses (customer_id);
CREATE TABLE conversations (
  id int8, customer_id int8, started_at date, subject text, anonymized_at timestamptz,
  PRIMARY KEY (id, started_at)) PARTITION BY RANGE (started_at);
CREATE TABLE conversations_2024_01 PARTITION OF conversations FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE conversations_2024_02 PARTITION OF conversations FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE conversations_2024_03 PARTITION OF conversations FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE INDEX ON conversations (customer_id);
CREATE TABLE recordings (id int8 PRIMARY KEY, conversation_id int8, audio bytea);
CREATE INDEX ON recordings (conversation_id);
INSERT INTO customers VALUES
  (1, 'kari.nordmann@example.com', 'Kari', 'Kari N', '+4791234567', '1985-03-04', '{"likes": "skiing"}', 'NO', NULL),
  (2, 'ola.hansen@example.org', 'Ola', NULL, '+4798765432', '1990-07-15', NULL, 'SE', NULL),
  (3, 'ingrid.berg@example.net', 'Ingrid', NULL, '+4741122334', '1979-12-24', NULL, 'NO', NULL),
  (4, 'per.olsen@example.com', 'Per', NULL, '+4740000000', '1970-01-02', NULL, 'DK', NULL);
INSERT INTO survey_responses VALUES
  (10, 1, 9, 'Kari loved the service'), (11, 1, 7, 'Kari again'), (12, 2, 3, 'Ola hated waiting');
INSERT INTO conversations VALUES
  (100, 1, '2024-01-10', 'Kari asks about billing', NULL),
  (101, 1, '2024-02-10', 'Kari moves house', NULL),
  (102, 2, '2024-03-10', 'Ola complains', NULL);
INSERT INTO recordings VALUES (1000, 100, 'kari voice'), (1001, 100, 'kari voice 2'), (1002, 101, 'kari voice 3'), (1003, 102, 'ola voice');
GRANT SELECT, UPDATE, DELETE ON customers, survey_responses, conversations, recordings TO dpo;
`

// piiValues are pieces of the PII in testSchema, for leak checks.
var piiValues = []string{"kari", "Kari", "ola.hansen", "Ola", "Ingrid", "+47", "1985-03-04", "skiing", "loved", "voice"}

// testCtx is a context for one test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// loadRules parses testRules.
func loadRules(t testing.TB) *rules.Config {
	t.Helper()
	cfg, err := rules.Parse([]byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// connect opens a connection as role to the test cluster.
func connect(t testing.TB, role string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), db.DSN(role, "", "postgres"))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// resetSchema recreates testSchema and the audit log.
func resetSchema(t testing.TB) {
	t.Helper()
	ctx := testCtx(t)
	if err := db.Exec(ctx, testSchema); err != nil {
		t.Fatal(err)
	}
	if err := EnsureAuditLog(ctx, connect(t, "postgres"), loadRules(t).Roles.Anonymize); err != nil {
		t.Fatal(err)
	}
}

// plan parses and plans sql under testRules.
func plan(t testing.TB, sql string, clientParams int) *Plan {
	t.Helper()
	st, err := Parse(sql)
	if err != nil {
		t.Fatalf("Parse(%q): %v", sql, err)
	}
	p, err := st.Plan(loadRules(t), []string{"public"}, clientParams)
	if err != nil {
		t.Fatalf("Plan(%q): %v", sql, err)
	}
	return p
}

// run sends a plan's SQL (or another statement with its parameters) as
// the proxy does: every parameter in text format with an unspecified
// type, the client's first. It returns the rows as text.
func run(t testing.TB, conn *pgx.Conn, sql string, p *Plan, clientArgs ...string) [][]string {
	t.Helper()
	rows, err := exec(testCtx(t), conn, sql, p, clientArgs...)
	if err != nil {
		t.Fatalf("running the plan: %v\n%s", err, sql)
	}
	return rows
}

// exec is run returning the error.
func exec(ctx context.Context, conn *pgx.Conn, sql string, p *Plan, clientArgs ...string) ([][]string, error) {
	var params [][]byte
	for _, a := range append(clientArgs, p.Params...) {
		params = append(params, []byte(a))
	}
	res := conn.PgConn().ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	var out [][]string
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// query returns the rows of a query as text, NULL as "NULL".
func query(t testing.TB, conn *pgx.Conn, sql string, args ...any) [][]string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = textOf(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// textOf formats a scanned value for comparisons.
func textOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}
