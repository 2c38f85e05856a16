package anonymize

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rules"
)

// customerRow reads one customer as text.
func customerRow(t *testing.T, id int) []string {
	t.Helper()
	conn := connect(t, "postgres")
	rows := query(t, conn, `SELECT id::text, email, first_name, nickname, phone, birth_date::text, notes::text, country,
		(anonymized_at IS NOT NULL)::text FROM customers WHERE id = $1`, id)
	if len(rows) != 1 {
		t.Fatalf("customer %d: %d rows", id, len(rows))
	}
	return rows[0]
}

// snapshot reads every table, for checking that nothing changed.
func snapshot(t *testing.T) [][]string {
	t.Helper()
	conn := connect(t, "postgres")
	var all [][]string
	for _, q := range []string{
		"SELECT c::text FROM customers c ORDER BY id",
		"SELECT s::text FROM survey_responses s ORDER BY id",
		"SELECT c::text FROM conversations c ORDER BY id",
		"SELECT r::text FROM recordings r ORDER BY id",
		"SELECT count(*)::text FROM pgveil.anonymize_log",
	} {
		all = append(all, query(t, conn, q)...)
	}
	return all
}

func TestAnonymizeOneCustomer(t *testing.T) {
	resetSchema(t)
	conn := connect(t, "dpo")
	p := plan(t, "ANONYMIZE customers WHERE email = 'kari.nordmann@example.com';", 0)
	if got := run(t, conn, p.SQL, p); !reflect.DeepEqual(got, [][]string{{"1"}}) {
		t.Fatalf("count: got %v, want 1", got)
	}
	c := customerRow(t, 1)
	if !strings.HasPrefix(c[1], "anon-") || !strings.HasSuffix(c[1], "@anonymized.invalid") {
		t.Errorf("email = %q, want a random address", c[1])
	}
	want := []string{"1", c[1], "***", "NULL", "", "NULL", `"***"`, "NO", "true"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("customer 1 = %q, want %q", c, want)
	}
	if c := customerRow(t, 2); c[1] != "ola.hansen@example.org" || c[8] != "false" {
		t.Errorf("customer 2 changed: %q", c)
	}
	checkCascade(t)
	checkAuditRecord(t)
}

// checkCascade checks the children of customer 1 after it was anonymized.
func checkCascade(t *testing.T) {
	t.Helper()
	conn := connect(t, "postgres")
	const fixed = "This comment has been anonymised based on customer request"
	got := query(t, conn, "SELECT id::text, customer_id::text, nps::text, COALESCE(comment, 'NULL') FROM survey_responses ORDER BY id")
	want := [][]string{{"10", "1", "9", fixed}, {"11", "1", "7", fixed}, {"12", "2", "3", "Ola hated waiting"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("survey_responses = %q, want %q", got, want)
	}
	got = query(t, conn, "SELECT id::text, tableoid::regclass::text, subject, (anonymized_at IS NOT NULL)::text FROM conversations ORDER BY id")
	want = [][]string{
		{"100", "conversations_2024_01", "***", "true"},
		{"101", "conversations_2024_02", "***", "true"},
		{"102", "conversations_2024_03", "Ola complains", "false"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("conversations = %q, want %q", got, want)
	}
	got = query(t, conn, "SELECT id::text FROM recordings ORDER BY id")
	if !reflect.DeepEqual(got, [][]string{{"1003"}}) {
		t.Errorf("recordings left = %q, want only 1003", got)
	}
}

// checkAuditRecord checks the one audit record of TestAnonymizeOneCustomer.
func checkAuditRecord(t *testing.T) {
	t.Helper()
	conn := connect(t, "postgres")
	rows := query(t, conn, "SELECT login_role, table_name, anonymized::text, deleted::text, statement, l::text FROM pgveil.anonymize_log l")
	if len(rows) != 1 {
		t.Fatalf("audit log has %d records, want 1", len(rows))
	}
	r := rows[0]
	if r[0] != "dpo" || r[1] != "public.customers" {
		t.Errorf("role, table = %q, %q", r[0], r[1])
	}
	wantKeys(t, r[2], map[string][]int{"public.customers": {1}, "public.conversations": {100, 101}, "public.survey_responses": {10, 11}})
	wantKeys(t, r[3], map[string][]int{"public.recordings": {1000, 1001, 1002}})
	if r[4] != "ANONYMIZE public.customers WHERE email = $1" {
		t.Errorf("statement = %q", r[4])
	}
	for _, v := range piiValues {
		if strings.Contains(r[5], v) {
			t.Errorf("the audit record holds %q: %s", v, r[5])
		}
	}
}

// wantKeys compares a jsonb object of key arrays.
func wantKeys(t *testing.T, doc string, want map[string][]int) {
	t.Helper()
	var got map[string][]int
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
}

func TestAnonymizeTwiceCountsZero(t *testing.T) {
	resetSchema(t)
	wantSecondRunNoop(t, plan(t, "ANONYMIZE public.customers WHERE id IN (1, 2)", 0), "2")
}

// wantSecondRunNoop runs p twice: the first run counts first, the second
// counts 0, changes no row, and its audit record has empty key lists.
func wantSecondRunNoop(t *testing.T, p *Plan, first string) {
	t.Helper()
	conn := connect(t, "dpo")
	if got := run(t, conn, p.SQL, p); got[0][0] != first {
		t.Fatalf("first run: %v, want %s", got, first)
	}
	before := snapshot(t)
	if got := run(t, conn, p.SQL, p); got[0][0] != "0" {
		t.Fatalf("second run: %v, want 0", got)
	}
	after := snapshot(t)
	before[len(before)-1][0] = strconv.Itoa(len(query(t, connect(t, "postgres"), "SELECT FROM pgveil.anonymize_log"))) // the second run appends an audit record
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the second run changed rows:\nbefore %q\nafter  %q", before, after)
	}
	rows := query(t, connect(t, "postgres"), "SELECT anonymized::text, deleted::text FROM pgveil.anonymize_log ORDER BY id DESC LIMIT 1")
	wantKeys(t, rows[0][0], map[string][]int{"public.customers": {}, "public.conversations": {}, "public.survey_responses": {}})
	wantKeys(t, rows[0][1], map[string][]int{"public.recordings": {}})
}

func TestAnonymizeEveryRowGivesUniqueEmails(t *testing.T) {
	resetSchema(t)
	p := plan(t, "ANONYMIZE customers WHERE true", 0)
	if got := run(t, connect(t, "dpo"), p.SQL, p); got[0][0] != "4" {
		t.Fatalf("count %v, want 4", got)
	}
	got := query(t, connect(t, "postgres"), "SELECT count(DISTINCT email)::text, count(*) FILTER (WHERE email LIKE 'anon-%@anonymized.invalid')::text FROM customers")
	if !reflect.DeepEqual(got, [][]string{{"4", "4"}}) {
		t.Errorf("distinct, random emails = %v, want 4, 4", got)
	}
}

func TestAnonymizeClientParameters(t *testing.T) {
	resetSchema(t)
	p := plan(t, "ANONYMIZE customers c WHERE c.country = $1 AND c.first_name <> 'Kari' AND length(c.phone) > 3", 1)
	if got := run(t, connect(t, "dpo"), p.SQL, p, "NO"); got[0][0] != "1" {
		t.Fatalf("count %v, want 1 (Ingrid)", got)
	}
	if c := customerRow(t, 3); c[2] != "***" {
		t.Errorf("customer 3 = %q, want anonymized", c)
	}
	if c := customerRow(t, 1); c[2] != "Kari" {
		t.Errorf("customer 1 = %q, want unchanged", c)
	}
}

func TestRolledBackTransactionLeavesNothing(t *testing.T) {
	resetSchema(t)
	before := snapshot(t)
	conn := connect(t, "dpo")
	ctx := testCtx(t)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := plan(t, "ANONYMIZE customers WHERE id = 1", 0)
	if got := run(t, conn, p.SQL, p); got[0][0] != "1" {
		t.Fatalf("count %v, want 1", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a rolled-back ANONYMIZE changed rows:\nbefore %q\nafter  %q", before, after)
	}
}

func TestChangedSearchPathFailsAndChangesNothing(t *testing.T) {
	resetSchema(t)
	admin := connect(t, "postgres")
	if _, err := admin.Exec(testCtx(t), `DROP SCHEMA IF EXISTS tenant_b CASCADE; CREATE SCHEMA tenant_b;
		CREATE TABLE tenant_b.customers (LIKE public.customers INCLUDING ALL); GRANT USAGE ON SCHEMA tenant_b TO dpo;
		GRANT SELECT, UPDATE ON tenant_b.customers TO dpo`); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)
	conn := connect(t, "dpo")
	if _, err := conn.Exec(testCtx(t), "SET search_path = tenant_b, public"); err != nil {
		t.Fatal(err)
	}
	p := plan(t, "ANONYMIZE customers WHERE id = 1", 0) // planned for the path the proxy read: public
	_, err := exec(testCtx(t), conn, p.SQL, p)
	want := "pgveil: ANONYMIZE customers: this session's search_path finds another table than public.customers"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "search_path: tenant_b, public") {
		t.Errorf("got %v, want an error saying %q", err, want)
	}
	if after := snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("an ANONYMIZE under another search_path changed rows")
	}
	p = plan(t, "ANONYMIZE public.customers WHERE id = 1", 0)
	if got := run(t, conn, p.SQL, p); got[0][0] != "1" {
		t.Errorf("a qualified name: count %v, want 1", got)
	}
}

func TestExplainChangesNothingAndListsEveryRow(t *testing.T) {
	resetSchema(t)
	before := snapshot(t)
	p := plan(t, "EXPLAIN ANONYMIZE customers WHERE id IN (1, 2)", 0)
	if !p.Explain || p.Report != "" {
		t.Fatalf("plan: Explain %v, Report %q", p.Explain, p.Report)
	}
	got := run(t, connect(t, "dpo"), p.SQL, p)
	const cust = "birth_date, email, first_name, nickname, notes, phone, anonymized_at"
	want := [][]string{
		{"public.customers", "1", "anonymize", cust},
		{"public.customers", "2", "anonymize", cust},
		{"public.conversations", "100", "anonymize", "subject, anonymized_at"},
		{"public.conversations", "101", "anonymize", "subject, anonymized_at"},
		{"public.conversations", "102", "anonymize", "subject, anonymized_at"},
		{"public.survey_responses", "10", "anonymize", "comment"},
		{"public.survey_responses", "11", "anonymize", "comment"},
		{"public.survey_responses", "12", "anonymize", "comment"},
		{"public.recordings", "1000", "delete", "NULL"},
		{"public.recordings", "1001", "delete", "NULL"},
		{"public.recordings", "1002", "delete", "NULL"},
		{"public.recordings", "1003", "delete", "NULL"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EXPLAIN rows:\n got %q\nwant %q", got, want)
	}
	if after := snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("EXPLAIN changed rows:\nbefore %q\nafter  %q", before, after)
	}
}

func TestReportCountsPerTable(t *testing.T) {
	resetSchema(t)
	p := plan(t, "ANONYMIZE customers WHERE id = ANY($1)", 1)
	conn := connect(t, "dpo")
	got := run(t, conn, p.Report, p, "{1,3,99}")
	want := [][]string{
		{"public.customers", "anonymize", "2"},
		{"public.conversations", "anonymize", "2"},
		{"public.survey_responses", "anonymize", "2"},
		{"public.recordings", "delete", "3"},
		{"public.customers", "matched", "2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report:\n got %q\nwant %q", got, want)
	}
	got = run(t, conn, p.Report, p, "{1,3,99}")
	if got[0][2] != "0" || got[4][2] != "2" {
		t.Errorf("second report: %q, want 0 anonymized, 2 matched", got)
	}
}

func TestFiftyThousandKeys(t *testing.T) {
	resetSchema(t)
	conn := connect(t, "postgres")
	err := db.Exec(testCtx(t), `INSERT INTO customers (id, email, first_name, country)
		SELECT i, 'person' || i || '@example.com', 'Name' || i, 'NO' FROM generate_series(100000, 149999) i;
		INSERT INTO survey_responses (id, customer_id, comment) SELECT i + 1000000, i, 'comment ' || i FROM generate_series(100000, 149999) i`)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, 50000)
	for i := 100000; i < 150000; i++ {
		keys = append(keys, strconv.Itoa(i))
	}
	p := plan(t, "ANONYMIZE customers WHERE id = ANY($1)", 1)
	if got := run(t, connect(t, "dpo"), p.SQL, p, "{"+strings.Join(keys, ",")+"}"); got[0][0] != "50000" {
		t.Fatalf("count %v, want 50000", got)
	}
	got := query(t, conn, "SELECT count(*)::text FROM survey_responses WHERE comment LIKE 'This comment%'")
	if got[0][0] != "50000" {
		t.Errorf("survey responses anonymized: %v, want 50000", got)
	}
}

func TestEnsureAuditLogGrantsInsertOnly(t *testing.T) {
	resetSchema(t)
	ctx := testCtx(t)
	conn := connect(t, "postgres")
	if err := EnsureAuditLog(ctx, conn, []string{"dpo", "no_such_role"}); err != nil {
		t.Fatalf("second EnsureAuditLog: %v", err)
	}
	got := query(t, conn, `SELECT has_table_privilege('dpo', 'pgveil.anonymize_log', 'INSERT')::text,
		has_table_privilege('dpo', 'pgveil.anonymize_log', 'SELECT')::text,
		has_table_privilege('clerk', 'pgveil.anonymize_log', 'INSERT')::text`)
	if !reflect.DeepEqual(got, [][]string{{"true", "false", "false"}}) {
		t.Errorf("dpo insert, dpo select, clerk insert = %v", got)
	}
	if err := EnsureAuditLog(ctx, connect(t, "clerk"), nil); err != nil {
		t.Errorf("EnsureAuditLog by a role without CREATE, the log existing: %v", err)
	}
	if ok, err := AuditLogExists(ctx, conn); err != nil || !ok {
		t.Errorf("AuditLogExists = %v, %v", ok, err)
	}
}

func TestRoleWithoutPrivilegesChangesNothing(t *testing.T) {
	resetSchema(t)
	before := snapshot(t)
	p := plan(t, "ANONYMIZE customers WHERE id = 1", 0)
	if _, err := exec(testCtx(t), connect(t, "clerk"), p.SQL, p); err == nil {
		t.Fatal("clerk, without UPDATE on customers, ran ANONYMIZE")
	}
	if after := snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a failed ANONYMIZE changed rows")
	}
}

func TestConstantsOfManyTypesKeepTheirMeaning(t *testing.T) {
	resetSchema(t)
	p := plan(t, `ANONYMIZE customers WHERE country IN (SELECT 'NO' UNION SELECT 'DK') AND phone LIKE '+47%'
		AND birth_date < DATE '1990-01-01' AND extract(year FROM birth_date) > 1900 AND id < 9876543210
		AND length(first_name) > 2.5 AND upper(first_name) = upper('kari') AND first_name || 'x' = 'Karix'
		AND B'1' = B'1' AND notes->>'likes' = 'skiing' AND birth_date + interval '1 day' > '1985-01-01'`, 0)
	if got := run(t, connect(t, "dpo"), p.SQL, p); got[0][0] != "1" {
		t.Fatalf("count %v, want 1 (Kari)", got)
	}
	if c := customerRow(t, 1); c[2] != "***" {
		t.Errorf("customer 1 = %q, want anonymized", c)
	}
}

// planRules plans sql under the given rules.
func planRules(t *testing.T, cfg *rules.Config, sql string) *Plan {
	t.Helper()
	st, err := Parse(sql)
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Plan(cfg, []string{"public"}, 0)
	if err != nil {
		t.Fatalf("Plan(%q): %v", sql, err)
	}
	return p
}

// TestAnonymizeTwiceWithoutMarker runs ANONYMIZE twice on a table without
// an anonymized_marker: the second run counts 0 and changes nothing, yet a
// child row added since is still reached.
func TestAnonymizeTwiceWithoutMarker(t *testing.T) {
	resetSchema(t)
	cfg, err := rules.Parse([]byte(strings.Replace(testRules, "    key: id\n    anonymized_marker: anonymized_at\n", "    key: id\n", 1)))
	if err != nil || cfg.Tables["public.customers"].AnonymizedMarker != "" {
		t.Fatalf("rules without the customers' marker: %v", err)
	}
	p := planRules(t, cfg, "ANONYMIZE customers WHERE id IN (1, 2)")
	wantSecondRunNoop(t, p, "2")
	conn := connect(t, "dpo")

	if err := db.Exec(testCtx(t), "INSERT INTO survey_responses VALUES (13, 1, 5, 'Kari wrote again')"); err != nil {
		t.Fatal(err)
	}
	e := planRules(t, cfg, "EXPLAIN ANONYMIZE customers WHERE id IN (1, 2)")
	want := [][]string{{"public.survey_responses", "13", "anonymize", "comment"}}
	if got := run(t, conn, e.SQL, e); !reflect.DeepEqual(got, want) {
		t.Errorf("EXPLAIN after a new child row: %q, want %q", got, want)
	}
	if got := run(t, conn, p.SQL, p); got[0][0] != "0" {
		t.Fatalf("third run: %v, want 0", got)
	}
	got := query(t, connect(t, "postgres"), "SELECT comment FROM survey_responses WHERE id = 13")
	if got[0][0] != "This comment has been anonymised based on customer request" {
		t.Errorf("the new child row of an anonymized customer: %q", got)
	}
	rows := query(t, connect(t, "postgres"), "SELECT anonymized::text FROM pgveil.anonymize_log ORDER BY id DESC LIMIT 1")
	wantKeys(t, rows[0][0], map[string][]int{"public.customers": {}, "public.conversations": {}, "public.survey_responses": {13}})
}

// TestDeletionIsAtomicWithTheRest makes the audit record, which is built
// from every table's changes, fail when rows were deleted: the deleted
// rows are back and nothing else changed.
func TestDeletionIsAtomicWithTheRest(t *testing.T) {
	resetSchema(t)
	if err := db.Exec(testCtx(t), "ALTER TABLE pgveil.anonymize_log ADD CONSTRAINT nothing_deleted CHECK (deleted = '{\"public.recordings\": []}')"); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t)
	p := plan(t, "ANONYMIZE customers WHERE id = 1", 0)
	_, err := exec(testCtx(t), connect(t, "dpo"), p.SQL, p)
	if err == nil || !strings.Contains(err.Error(), "nothing_deleted") {
		t.Fatalf("ANONYMIZE whose audit record fails: %v, want the check violation", err)
	}
	if after := snapshot(t); !reflect.DeepEqual(before, after) {
		t.Errorf("a failed ANONYMIZE deleted or changed rows:\nbefore %q\nafter  %q", before, after)
	}
	p = plan(t, "ANONYMIZE customers WHERE id = 4", 0) // no recordings: the audit record passes
	if got := run(t, connect(t, "dpo"), p.SQL, p); got[0][0] != "1" {
		t.Errorf("ANONYMIZE deleting nothing: %v, want 1", got)
	}
}
