package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The masked copy: pg_dump through pgveil as a masked role, pg_restore
// straight into a new database on the server. The copy must restore without
// an error, hold every row, and hold none of the source's PII values.

const dumpSchemaSQL = `
CREATE TABLE people (
  id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, full_name text, phone text,
  birth_date date, country text NOT NULL, signed_up date NOT NULL);
CREATE INDEX people_country ON people (country);
CREATE TABLE orders (
  id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES people, amount numeric(10,2), placed date);
CREATE TABLE visits (id bigint, person_id bigint REFERENCES people, at date NOT NULL, note text) PARTITION BY RANGE (at);
CREATE TABLE visits_2024 PARTITION OF visits FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE visits_2025 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE VIEW people_by_country AS SELECT country, count(*) AS n FROM people GROUP BY country;
CREATE SEQUENCE ticket_no START 500;
SELECT setval('ticket_no', 777);
INSERT INTO people (email, full_name, phone, birth_date, country, signed_up)
SELECT format('person%s@example.com', i), format('Fullname%s Surname%s', i, i), format('+47%s', 90000000 + i),
       make_date(1950 + i % 40, 2 + i % 10, 1 + i % 28), (ARRAY['NO','SE','DK'])[i % 3 + 1], date '2024-01-01' + i % 300
FROM generate_series(1, 600) i;
INSERT INTO orders (person_id, amount, placed)
SELECT i % 600 + 1, (i % 97) + 0.5, date '2024-01-01' + i % 500 FROM generate_series(1, 1500) i;
INSERT INTO visits SELECT i, i % 600 + 1, date '2024-01-01' + i % 700, format('visit by Fullname%s Surname%s', i % 600 + 1, i % 600 + 1)
FROM generate_series(1, 900) i;
CREATE ROLE dumper LOGIN;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO dumper;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO dumper;
`

const dumpRules = `
roles:
  unmasked: [postgres]
tables:
  public.people:
    columns:
      email:      {mask: pseudonym}
      full_name:  {mask: redact}
      phone:      {mask: "partial:2,2"}
      birth_date: {mask: "generalize:year"}
  public.visits:
    columns:
      note: {mask: redact}
`

// dumpPII are the protected columns of the source, for the leak check.
var dumpPII = []string{"people.email", "people.full_name", "people.phone", "people.birth_date", "visits.note"}

func TestMaskedDumpRestores(t *testing.T) {
	ctx := testCtx(t)
	for _, sql := range []string{"DROP DATABASE IF EXISTS dumpsrc", "DROP ROLE IF EXISTS dumper", "CREATE DATABASE dumpsrc"} {
		if err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	src := dbConn(t, "dumpsrc")
	if _, err := src.Exec(ctx, dumpSchemaSQL); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGVEIL_PSEUDONYM_KEY", "test-key-for-the-masked-copy")
	p := startProxyRules(t, dumpRules, "")
	pii := sourcePII(t, src)
	for _, tc := range []struct{ name, format string }{
		{"custom", "-Fc"},
		{"directory-j2", "-Fd -j 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := "dumpcopy_" + strings.ReplaceAll(tc.name, "-", "_")
			out := filepath.Join(t.TempDir(), "dump")
			dumpThroughProxy(t, p, out, tc.format)
			restoreDirect(t, target, out)
			copyConn := dbConn(t, target)
			sameRowCounts(t, src, copyConn)
			noSourcePII(t, copyConn, pii)
			var last int64
			if err := copyConn.QueryRow(ctx, "SELECT last_value FROM ticket_no").Scan(&last); err != nil || last != 777 {
				t.Fatalf("sequence in the copy: %d %v", last, err)
			}
			var masked string
			if err := copyConn.QueryRow(ctx, "SELECT email FROM people WHERE id = 1").Scan(&masked); err != nil || !strings.HasPrefix(masked, "pseu_") {
				t.Fatalf("email in the copy: %q %v", masked, err)
			}
		})
	}
}

// dbConn connects to a database of the test cluster as postgres.
func dbConn(t *testing.T, name string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), db.DSN("postgres", "", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pgTool runs a client program of the cluster's version and returns its
// combined output.
func pgTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(testCtx(t), filepath.Join(db.BinDir, name), args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20", "PGOPTIONS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func dumpThroughProxy(t *testing.T, p *maskingProxy, out, format string) {
	host, port, _ := net.SplitHostPort(p.addr)
	args := append(strings.Fields(format), "-h", host, "-p", port, "-U", "dumper", "-f", out, "dumpsrc")
	if msg := pgTool(t, "pg_dump", args...); msg != "" {
		t.Fatalf("pg_dump said: %s", msg)
	}
}

// restoreDirect restores into a new database on the server, not through
// pgveil, stopping at the first error.
func restoreDirect(t *testing.T, target, dump string) {
	ctx := testCtx(t)
	for _, sql := range []string{"DROP DATABASE IF EXISTS " + target, "CREATE DATABASE " + target} {
		if err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(db.Addr())
	msg := pgTool(t, "pg_restore", "--exit-on-error", "--no-owner", "-j", "2", "-h", host, "-p", port, "-U", "postgres", "-d", target, dump)
	if msg != "" {
		t.Fatalf("pg_restore said: %s", msg)
	}
}

// sameRowCounts compares the row count of every table of the source with
// the copy's.
func sameRowCounts(t *testing.T, src, dst *pgx.Conn) {
	t.Helper()
	const tables = `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') ORDER BY 1`
	names := queryStrings(t, src, tables)
	if got := queryStrings(t, dst, tables); strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("tables: source %v, copy %v", names, got)
	}
	for _, name := range names {
		q := "SELECT count(*)::text FROM " + pgx.Identifier{"public", name}.Sanitize()
		want, got := queryStrings(t, src, q)[0], queryStrings(t, dst, q)[0]
		if want != got || want == "0" {
			t.Fatalf("%s: %s rows in the source, %s in the copy", name, want, got)
		}
	}
}

// sourcePII reads every protected value of the source, lower-cased.
func sourcePII(t *testing.T, src *pgx.Conn) []string {
	var out []string
	for _, col := range dumpPII {
		table, name, _ := strings.Cut(col, ".")
		out = append(out, queryStrings(t, src, fmt.Sprintf("SELECT lower(%s::text) FROM %s WHERE %s IS NOT NULL", name, table, name))...)
	}
	if len(out) < 1000 {
		t.Fatalf("only %d PII values in the source", len(out))
	}
	return out
}

// noSourcePII fails when any source PII value appears, whole, anywhere in
// the copy's rows (every table, as text, lower-cased).
func noSourcePII(t *testing.T, dst *pgx.Conn, pii []string) {
	t.Helper()
	var all bytes.Buffer
	for _, name := range queryStrings(t, dst, `SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`) {
		for _, row := range queryStrings(t, dst, fmt.Sprintf("SELECT lower(t::text) FROM %s t", pgx.Identifier{"public", name}.Sanitize())) {
			all.WriteString(row)
			all.WriteByte('\n')
		}
	}
	text := all.String()
	for _, v := range pii {
		if strings.Contains(text, v) {
			t.Fatalf("the copy holds the source's PII value %q", v)
		}
	}
	t.Logf("%d source PII values, none in %d bytes of restored rows", len(pii), len(text))
}
