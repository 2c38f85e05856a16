package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/rules"
)

// modes are the ways a client can run a query: the simple protocol (text),
// and the extended protocol with binary results for known types.
var modes = []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec}

// query runs sql and returns every value rendered with %v.
func query(t *testing.T, c *pgx.Conn, mode pgx.QueryExecMode, sql string, args ...any) [][]string {
	t.Helper()
	rows, err := c.Query(context.Background(), sql, append([]any{mode}, args...)...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("%s: decode: %v", sql, err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// noPII fails when any protected value appears in s, in any case or reversed.
func noPII(t *testing.T, what, s string) {
	t.Helper()
	low := strings.ToLower(s)
	for _, v := range piiValues {
		rev := []rune(strings.ToLower(v))
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if strings.Contains(low, strings.ToLower(v)) || strings.Contains(low, string(rev)) {
			t.Fatalf("%s leaks %q: %s", what, v, s)
		}
	}
}

func TestMaskedResults(t *testing.T) {
	p := startMaskingProxy(t, "")
	cases := []struct {
		sql  string
		want [][]string // nil: only check that nothing leaks
	}{
		{"SELECT id, email, first_name, phone, birth_date, country FROM customers WHERE id = 1",
			[][]string{{"1", "***@example.com", "***", "+4*******67", "1985-01-01 00:00:00 +0000 UTC", "NO"}}},
		{"SELECT c.email AS e, x.b FROM customers c, customers AS x(a, b) WHERE c.id = 2 AND x.a = 2",
			[][]string{{"***@example.org", "***@example.org"}}},
		{"SELECT lower(email), email || '', email::varchar(5), upper(first_name) FROM customers WHERE id = 3",
			[][]string{{"***", "***", "***", "***"}}},
		{"SELECT count(email), count(DISTINCT email), count(*) FROM customers", [][]string{{"3", "3", "3"}}},
		{"SELECT * FROM customer_emails WHERE id = 1", [][]string{{"1", "***@example.com", "***"}}},
		{"SELECT email FROM events WHERE id = 1000", [][]string{{"***@example.com"}}},
		{"SELECT email FROM events_2024 WHERE id = 1000", [][]string{{"***@example.com"}}},
		{"SELECT s.comment, s.nps FROM survey_responses s WHERE s.id = 10", [][]string{{"***", "9"}}},
		{"TABLE customers", nil},
		{"SELECT c FROM customers c", nil},
		{"SELECT row_to_json(c), to_jsonb(c), c::text, (c).email FROM customers c", nil},
		{"WITH x AS (SELECT email FROM customers) SELECT * FROM x UNION ALL SELECT country FROM customers", nil},
		{"SELECT string_agg(email, ','), max(first_name), array_agg(phone) FROM customers", nil},
		{"SELECT (SELECT email FROM customers WHERE id = 1), ARRAY(SELECT first_name FROM customers ORDER BY id)", nil},
		{"SELECT e FROM customers, LATERAL (SELECT email AS e) l", nil},
		{"SELECT format('%s/%s', email, phone), md5(email), COALESCE(first_name, 'x') FROM customers", nil},
		{"SELECT * FROM customers JOIN survey_responses ON survey_responses.customer_id = customers.id", nil},
		{"SELECT * FROM customers NATURAL JOIN (SELECT id, comment FROM survey_responses) s", nil},
		{"SELECT json_agg(c) FROM customers c", nil},
	}
	for _, mode := range modes {
		c := p.connect(t, "support")
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.sql, func(t *testing.T) {
				got := query(t, c, mode, tc.sql)
				noPII(t, "result", fmt.Sprint(got))
				if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
			})
		}
	}
}

func TestUnmaskedRoleSeesRawData(t *testing.T) {
	p := startMaskingProxy(t, "")
	c := p.connect(t, "app_admin")
	got := query(t, c, pgx.QueryExecModeSimpleProtocol, "SELECT email FROM customers WHERE id = 1")
	if got[0][0] != "kari.nordmann@example.com" {
		t.Fatalf("unmasked role got %q", got)
	}
}

// TestNonPIIQueriesExact checks that queries touching no PII return exactly
// what the server returns directly, byte for byte, in both formats.
func TestNonPIIQueriesExact(t *testing.T) {
	p := startMaskingProxy(t, "")
	direct, err := pgx.Connect(testCtx(t), db.DSN("support", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(context.Background())
	masked := p.connect(t, "support")
	workload := []string{
		"SELECT id, country, created_at FROM customers ORDER BY id",
		"SELECT country, count(*), min(created_at) FROM customers GROUP BY country ORDER BY country",
		"SELECT o.id, o.amount, c.country FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id",
		"SELECT nps, avg(nps) OVER () FROM survey_responses ORDER BY id",
		"SELECT count(*) FILTER (WHERE anonymized_at IS NULL) FROM customers",
		"SELECT now()::date = current_date, version() IS NOT NULL, 1 + 1, 'x'::text",
		"SELECT id, amount FROM orders WHERE amount > 10 ORDER BY amount DESC LIMIT 2",
		"SELECT generate_series(1, 5)",
	}
	for _, mode := range modes {
		for _, sql := range workload {
			want := rawRows(t, direct, mode, sql)
			got := rawRows(t, masked, mode, sql)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%v %s:\n got %q\nwant %q", mode, sql, got, want)
			}
		}
	}
}

// rawRows returns the raw wire values of a query.
func rawRows(t *testing.T, c *pgx.Conn, mode pgx.QueryExecMode, sql string) [][][]byte {
	t.Helper()
	rows, err := c.Query(context.Background(), sql, mode)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	var out [][][]byte
	for rows.Next() {
		var row [][]byte
		for _, v := range rows.RawValues() {
			row = append(row, bytes.Clone(v))
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

func TestCursorsPreparedAndCopy(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "support")
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, sql := range []string{
		"DECLARE cur CURSOR FOR SELECT id, email FROM customers ORDER BY id",
		"PREPARE p AS SELECT first_name, country FROM customers ORDER BY id",
	} {
		if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
		got := query(t, tx.Conn(), mode, "FETCH 1 FROM cur")
		if len(got) != 1 || !strings.HasPrefix(got[0][1], "***@example.") {
			t.Fatalf("%v FETCH: %q", mode, got)
		}
	}
	got := query(t, tx.Conn(), pgx.QueryExecModeSimpleProtocol, "EXECUTE p")
	if len(got) != 3 || got[0][0] != "***" || got[0][1] != "NO" {
		t.Fatalf("EXECUTE: %q", got)
	}
	// A failed redeclaration must not unmask the cursor the server kept.
	if _, err := tx.Exec(ctx, "SAVEPOINT s", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DECLARE cur CURSOR FOR SELECT 1, 'x'", pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("redeclaring an open cursor succeeded")
	}
	tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s", pgx.QueryExecModeSimpleProtocol)
	got = query(t, tx.Conn(), pgx.QueryExecModeSimpleProtocol, "FETCH 1 FROM cur")
	noPII(t, "FETCH after failed redeclaration", fmt.Sprint(got))

	var buf bytes.Buffer
	for _, sql := range []string{
		"COPY customers TO STDOUT",
		"COPY (SELECT id, email, first_name FROM customers ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)",
	} {
		buf.Reset()
		if _, err := c.PgConn().CopyTo(ctx, &buf, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		noPII(t, sql, buf.String())
		if !strings.Contains(buf.String(), "***") {
			t.Fatalf("%s: nothing masked: %s", sql, buf.String())
		}
	}
	if _, err := c.PgConn().CopyTo(ctx, &buf, "COPY customers TO STDOUT WITH (FORMAT binary)"); err == nil {
		t.Fatal("binary COPY of a protected table was not rejected")
	}
}

func TestRejectionBehavesLikeServerError(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "support")
	var pgErr *pgconn.PgError
	// Simple protocol, inside a transaction block: the block is aborted.
	tx, _ := c.Begin(ctx)
	tx.Exec(ctx, "INSERT INTO orders VALUES (900, 1, 1.00)", pgx.QueryExecModeSimpleProtocol)
	_, err := tx.Exec(ctx, "SELECT id FROM customers ORDER BY email", pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "email") {
		t.Fatalf("want 42501 naming the column, got %v", err)
	}
	if c.PgConn().TxStatus() != 'E' {
		t.Fatalf("transaction status %q after a rejection, want E", c.PgConn().TxStatus())
	}
	if err := tx.Commit(ctx); err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Logf("commit after rejection: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id = 900").Scan(&n); err != nil || n != 0 {
		t.Fatalf("COMMIT after a rejection kept the insert: %d %v", n, err)
	}
	// Extended protocol, pipelined: the rejected Parse fails, the batch skips to Sync.
	b := &pgx.Batch{}
	b.Queue("SELECT 1")
	b.Queue("SELECT id FROM customers WHERE first_name = 'Kari'")
	b.Queue("SELECT 3")
	err = c.SendBatch(ctx, b).Close()
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("batch: want 42501, got %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("connection unusable after a rejected batch: %v", err)
	}
	// Multi-statement simple query: one rejected statement rejects all.
	_, err = c.Exec(ctx, "INSERT INTO orders VALUES (901, 1, 1); SELECT email FROM customers ORDER BY email", pgx.QueryExecModeSimpleProtocol)
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("multi-statement: want 42501, got %v", err)
	}
	if err := c.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id = 901").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a statement of a rejected message ran: %d %v", n, err)
	}
}

func TestMaskedPipelineAndPreparedStatements(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "support")
	if _, err := c.Prepare(ctx, "byid", "SELECT email, country FROM customers WHERE id = $1"); err != nil {
		t.Fatal(err)
	}
	b := &pgx.Batch{}
	for i := 1; i <= 3; i++ {
		b.Queue("byid", i)
		b.Queue("SELECT phone FROM customers WHERE id = $1", i)
	}
	br := c.SendBatch(ctx, b)
	for i := 1; i <= 3; i++ {
		var email, country, phone string
		if err := br.QueryRow().Scan(&email, &country); err != nil {
			t.Fatal(err)
		}
		if err := br.QueryRow().Scan(&phone); err != nil {
			t.Fatal(err)
		}
		noPII(t, "batch", email+phone)
		if !strings.HasPrefix(email, "***@") || !strings.HasPrefix(phone, "+4*") {
			t.Fatalf("row %d: %q %q", i, email, phone)
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMaskedPsql(t *testing.T) {
	p := startMaskingProxy(t, "")
	host, port, _ := net.SplitHostPort(p.addr)
	out, err := exec.Command("psql", "-h", host, "-p", port, "-U", "support", "-d", "postgres", "-X", "-A", "-t",
		"-c", "SELECT email, country FROM customers WHERE id = 1",
		"-c", `\copy (SELECT first_name FROM customers WHERE id = 2) TO STDOUT`).CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if string(out) != "***@example.com|NO\n***\n" {
		t.Fatalf("psql output %q", out)
	}
}

func TestReloadReanalysesPreparedStatements(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "support")
	if _, err := c.Prepare(ctx, "countries", "SELECT country FROM customers WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	var country string
	if err := c.QueryRow(ctx, "countries").Scan(&country); err != nil || country != "NO" {
		t.Fatalf("before reload: %q %v", country, err)
	}
	cfg, err := rules.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\n%s", db.Addr(),
		strings.Replace(rulesYAML, "      email:      {mask: email, anonymize: random_email, lookup: true}",
			"      email:      {mask: email, anonymize: random_email, lookup: true}\n      country:    {mask: redact}", 1))))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminDSN = db.DSN("postgres", "", "postgres")
	p.guard.Reload(cfg)
	if err := c.QueryRow(ctx, "countries").Scan(&country); err != nil || country != "***" {
		t.Fatalf("prepared before the reload, run after it: %q %v", country, err)
	}
	got := query(t, c, pgx.QueryExecModeSimpleProtocol, "SELECT country FROM customers WHERE id = 1")
	if got[0][0] != "***" {
		t.Fatalf("new query after reload: %q", got)
	}
}

func TestMaskedIdentityAtStartup(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	for _, extra := range []string{
		"&options=-c%20role%3Dapp_admin",
		"&replication=database",
	} {
		// support2 may do all of these on the server; pgveil refuses them.
		_, err := pgx.Connect(ctx, p.dsn("support2")+extra)
		if err == nil || !strings.Contains(err.Error(), "masked roles may not") {
			t.Errorf("%s: want a refusal, got %v", extra, err)
		}
	}
	// An unmasked role may use them.
	c, err := pgx.Connect(ctx, p.dsn("app_admin")+"&options=--search_path%3Dpublic")
	if err != nil {
		t.Fatalf("unmasked role with startup options: %v", err)
	}
	c.Close(ctx)
}

func TestMaskedNotificationPayloadWithheld(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	listener := p.connect(t, "support")
	if _, err := listener.Exec(ctx, "LISTEN changes"); err != nil {
		t.Fatal(err)
	}
	admin := p.connect(t, "app_admin")
	if _, err := admin.Exec(ctx, "SELECT pg_notify('changes', email) FROM customers WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil || n.Channel != "changes" || n.Payload != "" {
		t.Fatalf("notification %+v %v", n, err)
	}
}

func TestAnonymizeRefusedForOtherRoles(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	for _, user := range []string{"app_admin", "postgres"} {
		c := p.connect(t, user)
		for _, mode := range modes {
			_, err := c.Exec(ctx, "ANONYMIZE customers WHERE id = 1", mode)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "may not run ANONYMIZE") {
				t.Fatalf("%s %v: want 42501, got %v", user, mode, err)
			}
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("%s %v: connection broken after the refusal: %v", user, mode, err)
			}
		}
	}
	var email string
	admin := p.connect(t, "app_admin")
	if err := admin.QueryRow(ctx, "SELECT email FROM customers WHERE id = 1").Scan(&email); err != nil || email != "kari.nordmann@example.com" {
		t.Fatalf("the refused ANONYMIZE changed the row: %q %v", email, err)
	}
}

// anonymizeFixture adds customers 50 and 51 with a survey response each,
// lets dpo change them, and makes sure the audit log exists.
func anonymizeFixture(t *testing.T) {
	ctx := testCtx(t)
	err := db.Exec(ctx, `
DELETE FROM survey_responses WHERE customer_id IN (50, 51); DELETE FROM customers WHERE id IN (50, 51);
INSERT INTO customers VALUES (50, 'siri.dahl@example.com', 'Siri', '+4790000050', '1970-05-06', 'NO', now(), NULL),
                             (51, 'per.lie@example.com', 'Per', '+4790000051', '1971-07-08', 'DK', now(), NULL);
INSERT INTO survey_responses VALUES (50, 50, 7, 'Siri says hi'), (51, 51, 8, 'Per says hi')
  ON CONFLICT (id) DO UPDATE SET comment = EXCLUDED.comment;
GRANT SELECT, UPDATE, DELETE ON customers, survey_responses TO dpo;`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec(context.Background(), "DELETE FROM survey_responses WHERE customer_id IN (50, 51); DELETE FROM customers WHERE id IN (50, 51)")
	})
	auditLogFor(t, "dpo")
}

// auditLogFor creates pgveil.anonymize_log when absent and lets roles
// append to it.
func auditLogFor(t *testing.T, roles ...string) {
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := anonymize.EnsureAuditLog(ctx, conn, roles); err != nil {
		t.Fatal(err)
	}
}

func TestAnonymizeThroughProxy(t *testing.T) {
	anonymizeFixture(t)
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "dpo") // masked, and in roles.anonymize
	admin := p.connect(t, "app_admin")
	var pgErr *pgconn.PgError

	// EXPLAIN previews and changes nothing.
	rows := query(t, c, pgx.QueryExecModeSimpleProtocol, "EXPLAIN ANONYMIZE customers WHERE id IN (50, 51)")
	if len(rows) < 4 {
		t.Fatalf("EXPLAIN ANONYMIZE rows: %q", rows)
	}
	// A WHERE that is an oracle for a masked role is refused, as in any query.
	if _, err := c.Exec(ctx, "ANONYMIZE customers WHERE email LIKE 's%'"); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("oracle WHERE: want 42501, got %v", err)
	}
	// Simple protocol, a lookup by email: the tag says how many.
	tag, err := c.Exec(ctx, "ANONYMIZE customers WHERE email = 'siri.dahl@example.com'", pgx.QueryExecModeSimpleProtocol)
	if err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("simple ANONYMIZE: %q %v", tag, err)
	}
	// Extended protocol with an array parameter, inside a transaction that rolls back.
	tx, _ := c.Begin(ctx)
	if tag, err := tx.Exec(ctx, "ANONYMIZE public.customers WHERE id = ANY($1)", []int64{51}); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("extended ANONYMIZE: %q %v", tag, err)
	}
	tx.Rollback(ctx)
	var email, comment string
	if err := admin.QueryRow(ctx, "SELECT email FROM customers WHERE id = 51").Scan(&email); err != nil || email != "per.lie@example.com" {
		t.Fatalf("rolled back ANONYMIZE changed the row: %q %v", email, err)
	}
	if tag, err := c.Exec(ctx, "ANONYMIZE customers WHERE id = ANY($1)", []int64{51}); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("extended ANONYMIZE: %q %v", tag, err)
	}
	// Running it again changes nothing.
	if tag, err := c.Exec(ctx, "ANONYMIZE customers WHERE id IN (50, 51)"); err != nil || tag.String() != "ANONYMIZE 0" {
		t.Fatalf("second run: %q %v", tag, err)
	}
	for _, id := range []int{50, 51} {
		var first *string
		if err := admin.QueryRow(ctx, "SELECT c.email, c.first_name, s.comment FROM customers c JOIN survey_responses s ON s.customer_id = c.id WHERE c.id = $1", id).Scan(&email, &first, &comment); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(email, "@anonymized.invalid") || first == nil || *first != "***" ||
			comment != "This comment has been anonymised based on customer request" {
			t.Fatalf("customer %d after ANONYMIZE: %q %v %q", id, email, first, comment)
		}
	}
	var logged int
	owner := p.connect(t, "postgres") // the log is not for every role to read
	if err := owner.QueryRow(ctx, "SELECT count(*) FROM pgveil.anonymize_log WHERE login_role = 'dpo' AND statement NOT LIKE '%siri%'").Scan(&logged); err != nil || logged < 2 {
		t.Fatalf("audit log rows: %d %v", logged, err)
	}
}

// TestAnonymizeProxyKilledHalfway stops the proxy while a large ANONYMIZE
// runs. ANONYMIZE is one statement, so the server either aborts it or
// finishes and commits all of it: every row with its audit record, or
// nothing.
func TestAnonymizeProxyKilledHalfway(t *testing.T) {
	anonymizeFixture(t)
	ctx := testCtx(t)
	const rows = 5000
	err := db.Exec(ctx, fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS big_people (id int8 PRIMARY KEY, email text, anonymized_at timestamptz);
TRUNCATE big_people;
INSERT INTO big_people SELECT i, 'person' || i || '@example.com', NULL FROM generate_series(1, %d) i;
GRANT SELECT, UPDATE ON big_people TO dpo;
CREATE OR REPLACE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM pg_sleep(0.0001); RETURN NEW; END$$;
DROP TRIGGER IF EXISTS slow ON big_people;
CREATE TRIGGER slow BEFORE UPDATE ON big_people FOR EACH ROW EXECUTE FUNCTION slow_row();`, rows))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Exec(context.Background(), "DROP TABLE big_people; DROP FUNCTION slow_row()")
	p := startMaskingProxy(t, "  public.big_people:\n    key: id\n    anonymized_marker: anonymized_at\n    columns:\n      email: {mask: email, anonymize: random_email}\n")
	admin, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	auditRecords := func() (n int) {
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pgveil.anonymize_log WHERE table_name = 'public.big_people'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	loggedBefore := auditRecords() // earlier runs of this test (go test -count) left theirs
	c := p.connect(t, "dpo")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "ANONYMIZE big_people WHERE true")
		done <- err
	}()
	running := func() int {
		var n int
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'dpo' AND query LIKE 'WITH%' AND state = 'active'").Scan(&n)
		return n
	}
	waitFor(t, "the ANONYMIZE to run on the server", func() bool { return running() == 1 })
	stopNow, cancel := context.WithCancel(context.Background())
	cancel()
	p.srv.Shutdown(stopNow) // closes every session at once: the proxy is gone mid-statement
	if err := <-done; err == nil {
		t.Fatal("the client saw the ANONYMIZE complete although the proxy was stopped")
	}
	waitFor(t, "the orphaned statement to end", func() bool { return running() == 0 })
	var changed int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM big_people WHERE anonymized_at IS NOT NULL").Scan(&changed); err != nil {
		t.Fatal(err)
	}
	logged := auditRecords() - loggedBefore
	if !(changed == 0 && logged == 0) && !(changed == rows && logged == 1) {
		t.Fatalf("partial ANONYMIZE after the proxy died: %d of %d rows changed, %d audit records", changed, rows, logged)
	}
	t.Logf("after the proxy died: %d of %d rows anonymized, %d audit records (all or nothing)", changed, rows, logged)
}

// waitFor polls cond with a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMaskedCopyKeepsTypes(t *testing.T) {
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	c := p.connect(t, "support")
	var buf bytes.Buffer
	if _, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, email, birth_date, lower(first_name) FROM customers WHERE id = 1) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "1\t***@example.com\t1985-01-01\t\\N\n" {
		t.Fatalf("COPY line %q: want the email strategy, the year of the date, and NULL for a computed value", got)
	}
}
