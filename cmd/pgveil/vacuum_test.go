package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// diskSchemaSQL makes the tables of anonRulesYAML with long values: first
// names, comments and recordings are stored in TOAST uncompressed
// (STORAGE EXTERNAL, random values over 2 kB). It indexes the email, keeps
// autovacuum away so that the figures depend on pgveil alone, and gives
// the tables and the database to anon_dpo, so that the role that
// anonymizes may vacuum them and pg_statistic.
const diskSchemaSQL = `
DROP TABLE IF EXISTS customers, survey_responses, recordings;
DROP SCHEMA IF EXISTS pgveil CASCADE;
CREATE TABLE customers (id int8 PRIMARY KEY, email text, first_name text, anonymized_at timestamptz);
CREATE INDEX customers_email ON customers (email);
CREATE TABLE survey_responses (id int8 PRIMARY KEY, customer_id int8, comment text);
CREATE TABLE recordings (id int8 PRIMARY KEY, customer_id int8, audio bytea);
ALTER TABLE customers ALTER COLUMN first_name SET STORAGE EXTERNAL;
ALTER TABLE survey_responses ALTER COLUMN comment SET STORAGE EXTERNAL;
ALTER TABLE recordings ALTER COLUMN audio SET STORAGE EXTERNAL;
ALTER TABLE customers SET (autovacuum_enabled = off, toast.autovacuum_enabled = off), OWNER TO anon_dpo;
ALTER TABLE survey_responses SET (autovacuum_enabled = off, toast.autovacuum_enabled = off), OWNER TO anon_dpo;
ALTER TABLE recordings SET (autovacuum_enabled = off, toast.autovacuum_enabled = off), OWNER TO anon_dpo;
ALTER DATABASE ` + anonDB + ` OWNER TO anon_dpo;
`

// diskCustomers is how many customers the disk tests create; the first
// half is anonymized.
const diskCustomers = 30

// oldValue is a value the disk test looks for in the files, by pieces
// that are unique to it (long values are cut into TOAST chunks, so a
// piece may straddle two).
type oldValue struct {
	what   string
	pieces []string
}

// foundIn reports whether any piece of the value is in the files.
func (v oldValue) foundIn(files []byte) bool {
	for _, p := range v.pieces {
		if bytes.Contains(files, []byte(p)) {
			return true
		}
	}
	return false
}

// randomHex returns n random hex digits: data that does not compress.
func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// longValue cuts a long value into pieces at its start, middle and end.
func longValue(what, s string) oldValue {
	const piece = 40
	return oldValue{what, []string{s[:piece], s[len(s)/2 : len(s)/2+piece], s[len(s)-piece:]}}
}

// setupDiskDB gives the anonymize database fresh tables with random
// customers, and returns the values of those to anonymize (the first
// half) and of those to keep.
func setupDiskDB(t *testing.T) (gone, kept []oldValue) {
	t.Helper()
	resetAnonDB(t)
	ctx := testCtx(t)
	conn := anonConn(t, "postgres")
	if _, err := conn.Exec(ctx, diskSchemaSQL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec(context.Background(), "ALTER DATABASE "+anonDB+" OWNER TO postgres") })
	for i := 1; i <= diskCustomers; i++ {
		email := randomHex(t, 24) + "@example.com"
		name, comment, audio := randomHex(t, 3000), randomHex(t, 2600), randomHex(t, 4000)
		b := &pgx.Batch{}
		b.Queue("INSERT INTO customers VALUES ($1, $2, $3)", i, email, name)
		b.Queue("INSERT INTO survey_responses VALUES ($1, $1, $2)", i, comment)
		b.Queue("INSERT INTO recordings VALUES ($1, $1, convert_to($2, 'UTF8'))", i, audio)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		vals := []oldValue{{fmt.Sprintf("email of %d", i), []string{email}},
			longValue(fmt.Sprintf("name of %d", i), name), longValue(fmt.Sprintf("comment of %d", i), comment),
			longValue(fmt.Sprintf("audio of %d", i), audio)}
		if i <= diskCustomers/2 {
			gone = append(gone, vals...)
		} else {
			kept = append(kept, vals...)
		}
	}
	if _, err := conn.Exec(ctx, "ANALYZE customers, survey_responses, recordings; CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	return gone, kept
}

// relationPaths lists the heap, TOAST and index files (first segments)
// of the disk tests' tables, relative to the data directory.
func relationPaths(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `
WITH t AS (SELECT oid, reltoastrelid FROM pg_class
           WHERE oid IN ('public.customers'::regclass, 'public.survey_responses'::regclass, 'public.recordings'::regclass)),
     r AS (SELECT oid FROM t UNION SELECT reltoastrelid FROM t WHERE reltoastrelid <> 0)
SELECT pg_relation_filepath(oid) FROM r
UNION SELECT pg_relation_filepath(indexrelid) FROM pg_index WHERE indrelid IN (SELECT oid FROM r)`)
	if err != nil {
		t.Fatal(err)
	}
	paths, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(paths) < 10 { // 3 heaps, 3 TOAST, 3 TOAST indexes, 3 keys, the email index
		t.Fatalf("relation files %q: %v", paths, err)
	}
	return paths
}

// relationFiles reads the heap, TOAST and index files (all segments) of
// the disk tests' tables, as they are on disk.
func relationFiles(t *testing.T) []byte {
	t.Helper()
	conn := anonConn(t, "postgres")
	var all []byte
	for _, p := range relationPaths(t, conn) {
		for seg := 0; ; seg++ {
			name := p
			if seg > 0 {
				name = fmt.Sprintf("%s.%d", p, seg)
			}
			b, ok := readDataFile(t, conn, name)
			if !ok {
				break
			}
			all = append(append(all, b...), 0)
		}
	}
	return all
}

// readDataFile reads a file of the data directory: straight from disk, or,
// when the test may not read the server's files (they belong to the
// postgres OS user when the tests run as root without the capability to
// override file permissions), through the server with pg_read_binary_file.
// ok is false when the file does not exist.
func readDataFile(t *testing.T, conn *pgx.Conn, name string) (b []byte, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(db.DataDir, name))
	switch {
	case err == nil:
		return b, true
	case errors.Is(err, fs.ErrNotExist):
		return nil, false
	case !errors.Is(err, fs.ErrPermission):
		t.Fatal(err)
	}
	return readDataFileByServer(t, conn, name)
}

// readDataFileByServer reads a file of the data directory through the
// server (as a superuser). ok is false when the file does not exist.
func readDataFileByServer(t *testing.T, conn *pgx.Conn, name string) (b []byte, ok bool) {
	t.Helper()
	err := conn.QueryRow(testCtx(t), "SELECT pg_read_binary_file($1, 0, (pg_stat_file($1, true)).size, true)", name).Scan(&b)
	if err != nil {
		t.Fatal(err)
	}
	return b, b != nil
}

// countFound counts the values found in the files.
func countFound(files []byte, vals []oldValue) (n int, which []string) {
	for _, v := range vals {
		if v.foundIn(files) {
			n++
			which = append(which, v.what)
		}
	}
	return n, which
}

// emailsInStats counts the values whose pieces pg_stats shows as a sample
// of the customers' emails.
func emailsInStats(t *testing.T, vals []oldValue) int {
	t.Helper()
	n, _ := countFound([]byte(emailStats(t)), vals)
	return n
}

// emailStats is what pg_stats shows of the customers' emails.
func emailStats(t *testing.T) string {
	t.Helper()
	var s string
	err := anonConn(t, "postgres").QueryRow(testCtx(t), `SELECT coalesce(histogram_bounds::text, '') || coalesce(most_common_vals::text, '')
		FROM pg_stats WHERE schemaname = 'public' AND tablename = 'customers' AND attname = 'email'`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// anonymizeDisk anonymizes the first half of the customers with the given
// extra flags, then checkpoints, and returns how many of the old values
// remain in the files. It checks that the files held them all before, and
// hold the kept customers' values after.
func anonymizeDisk(t *testing.T, wantSummary string, flags ...string) diskFigures {
	gone, kept := setupDiskDB(t)
	initAnonAudit(t)
	before := relationFiles(t)
	if n, _ := countFound(before, gone); n != len(gone) {
		t.Fatalf("before anonymizing, %d of %d values found in the files: the test cannot see them", n, len(gone))
	}
	if n := emailsInStats(t, gone); n == 0 {
		t.Fatalf("pg_stats shows none of the emails before anonymizing: the test cannot see them")
	}
	var keys strings.Builder
	for i := 1; i <= diskCustomers/2; i++ {
		fmt.Fprintln(&keys, i)
	}
	args := []string{"--config", writeCheckConfig(t, anonRulesYAML), "--dsn", db.DSN(anonDPO, "", anonDB),
		"--table", "customers", "--keys", writeAnonFile(t, "keys.txt", keys.String())}
	code, stdout, _ := runAnonymizeCommand(t, append(args, flags...)...)
	if code != 0 || !strings.Contains(stdout, "  anonymized  public.customers         15 rows\n") || !strings.Contains(stdout, wantSummary) {
		t.Fatalf("exit %d, stdout lacks %q", code, wantSummary)
	}
	if _, err := anonConn(t, "postgres").Exec(testCtx(t), "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	after := relationFiles(t)
	if n, _ := countFound(after, kept); n != len(kept) {
		t.Fatalf("after anonymizing, %d of %d kept values found in the files", n, len(kept))
	}
	var f diskFigures
	f.inTables, f.which = countFound(after, gone)
	label := strings.Join(flags, " ")
	if label == "" {
		label = "VACUUM (ANALYZE)"
	}
	t.Logf("%s: %d of %d old values remain in the heap, TOAST and index files (%s)", label, f.inTables, len(gone), byKind(f.which))
	var w []string
	f.elsewhere, w = countFound(databaseFiles(t), gone)
	t.Logf("%s: %d old values remain in the database's other files, pg_statistic among them (%s)", label, f.elsewhere, byKind(w))
	f.inStats = emailsInStats(t, gone)
	return f
}

// diskFigures count the old values found after anonymizing.
type diskFigures struct {
	inTables  int      // in the heap, TOAST and index files of the tables
	which     []string // those values
	elsewhere int      // in the other files of the database's directory
	inStats   int      // old emails that pg_stats shows
}

// byKind counts values by the first word of their description.
func byKind(which []string) string {
	counts := map[string]int{}
	for _, w := range which {
		kind, _, _ := strings.Cut(w, " ")
		counts[kind]++
	}
	return fmt.Sprintf("%d emails, %d first names, %d comments, %d recordings", counts["email"], counts["name"], counts["comment"], counts["audio"])
}

// databaseFiles reads every file of the database's directory other than
// the disk tests' own relations, as the server's files are read.
func databaseFiles(t *testing.T) []byte {
	t.Helper()
	conn := anonConn(t, "postgres")
	var dir string
	if err := conn.QueryRow(testCtx(t), "SELECT 'base/' || oid FROM pg_database WHERE datname = current_database()").Scan(&dir); err != nil {
		t.Fatal(err)
	}
	own := map[string]bool{}
	for _, p := range relationPaths(t, conn) {
		own[filepath.Base(p)] = true
	}
	var all []byte
	names, err := os.ReadDir(filepath.Join(db.DataDir, dir))
	if errors.Is(err, fs.ErrPermission) {
		return nil // the figure is only logged
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if own[strings.Split(n.Name(), ".")[0]] {
			continue
		}
		if b, ok := readDataFile(t, conn, filepath.Join(dir, n.Name())); ok {
			all = append(append(all, b...), 0)
		}
	}
	return all
}

func TestAnonymizeRewriteLeavesNoTraceOnDisk(t *testing.T) {
	f := anonymizeDisk(t, "  public.customers: rewritten with ", "--rewrite", "--yes")
	if f.inTables != 0 || f.elsewhere != 0 {
		t.Errorf("after --rewrite, old values remain: %s in the tables' files, %d in other files", strings.Join(f.which, ", "), f.elsewhere)
	}
	if f.inStats != 0 {
		t.Errorf("pg_stats still shows %d old emails", f.inStats)
	}
}

func TestAnonymizeVacuumFigures(t *testing.T) {
	plain := anonymizeDisk(t, "  public.survey_responses: vacuumed, analyzed\n")
	if plain.inStats != 0 {
		t.Errorf("after VACUUM (ANALYZE), pg_stats still shows %d old emails", plain.inStats)
	}
	none := anonymizeDisk(t, "not vacuumed (--no-vacuum): the old values stay in the dead row versions of public.customers, public.recordings, public.survey_responses", "--no-vacuum")
	if none.inStats == 0 {
		t.Errorf("without ANALYZE, pg_stats shows none of the old emails: the stats check sees nothing")
	}
	if none.inTables == 0 {
		t.Errorf("without VACUUM no old value was found in the files: the search finds nothing")
	}
	t.Logf("old values remaining in the tables' files: %d without VACUUM, %d after VACUUM (ANALYZE) (%s)",
		none.inTables, plain.inTables, byKind(plain.which))
}

func TestAnonymizeCommandVacuumRights(t *testing.T) {
	resetAnonDB(t)
	initAnonAudit(t)
	ctx := testCtx(t)
	if _, err := anonConn(t, "postgres").Exec(ctx, "ALTER TABLE survey_responses OWNER TO anon_dpo"); err != nil {
		t.Fatal(err)
	}
	keys := writeAnonFile(t, "keys.txt", "1\n")
	code, stdout, _ := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys)...)
	if lacks := missing(stdout,
		"pgveil anonymize: VACUUM (ANALYZE) of the changed tables, ",
		"  public.survey_responses: vacuumed, analyzed\n",
		"  NOT vacuumed: public.customers: role anon_dpo may not vacuum it (its owner is postgres; ",
		"  NOT vacuumed: public.recordings: role anon_dpo may not vacuum it (its owner is postgres; ",
		"  NOT vacuumed: pg_catalog.pg_statistic: role anon_dpo may not vacuum it (only the database owner or a superuser may)",
	); lacks != nil {
		t.Errorf("stdout lacks %q", lacks)
	}
	if code != 0 || strings.Contains(stdout, "public.customers: vacuumed") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}

	// VACUUM FULL needs --yes, asked before anything is anonymized.
	before := anonRows(t)
	keys = writeAnonFile(t, "keys.txt", "2\n")
	code, _, stderr := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys, "--rewrite")...)
	if code != 2 || !strings.Contains(stderr, "nothing was anonymized: --rewrite will use VACUUM FULL (pg_repack cannot be used: ") ||
		!strings.Contains(stderr, "ACCESS EXCLUSIVE lock on each of public.customers, public.recordings, public.survey_responses") ||
		!strings.Contains(stderr, "Run again with --yes") {
		t.Errorf("--rewrite without --yes: exit %d, stderr %q", code, stderr)
	}
	if after := anonRows(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("--rewrite without --yes changed rows")
	}
	code, stdout, _ = runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys, "--no-vacuum")...)
	if code != 0 || strings.Contains(stdout, "VACUUM (ANALYZE) of") ||
		!strings.Contains(stdout, "not vacuumed (--no-vacuum): the old values stay in the dead row versions of public.customers, public.recordings, public.survey_responses until VACUUM (ANALYZE)\n") {
		t.Errorf("--no-vacuum: exit %d, stdout %q", code, stdout)
	}
	// A second run finds the keys anonymized before, and vacuums the
	// cascade; a snapshot older than it is named as keeping old versions.
	old, err := anonConn(t, "postgres").BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback(ctx)
	var pid int
	if err := old.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys)...)
	if code != 0 || !strings.Contains(stdout, "  anonymized  public.customers         0 rows\n") ||
		!strings.Contains(stdout, "  public.survey_responses: vacuumed, analyzed\n") || !strings.Contains(stdout, "  NOT vacuumed: public.recordings: ") {
		t.Errorf("second run: exit %d, stdout %q", code, stdout)
	}
	if want := fmt.Sprintf("  warning: session %d began before the cleanup and may still see the old row versions", pid); !strings.Contains(stdout, want) {
		t.Errorf("second run: stdout lacks %q", want)
	}
	old.Rollback(ctx)
	if code, _, _ := runAnonymizeCommand(t, append(anonArgs(t, anonDPO), "--table", "customers", "--keys", keys, "--no-vacuum", "--rewrite")...); code != 2 {
		t.Errorf("--no-vacuum --rewrite: exit %d, want 2", code)
	}
}

// TestReadDataFileByServer checks the way the disk tests read the
// server's files when the test process may not.
func TestReadDataFileByServer(t *testing.T) {
	resetAnonDB(t)
	conn := anonConn(t, "postgres")
	direct, err := os.ReadFile(filepath.Join(db.DataDir, "PG_VERSION"))
	if err != nil && !errors.Is(err, fs.ErrPermission) {
		t.Fatal(err)
	}
	if b, ok := readDataFileByServer(t, conn, "PG_VERSION"); !ok || len(b) == 0 || (direct != nil && !bytes.Equal(b, direct)) {
		t.Errorf("PG_VERSION through the server: %q %v, on disk %q", b, ok, direct)
	}
	if b, ok := readDataFileByServer(t, conn, "base/no-such-file"); ok {
		t.Errorf("a missing file read as %q", b)
	}
}

// TestVacuumTargets checks which relations a partitioned table and an
// inheritance parent bring to VACUUM, and which the role may not vacuum.
func TestVacuumTargets(t *testing.T) {
	resetAnonDB(t)
	ctx := testCtx(t)
	admin := anonConn(t, "postgres")
	_, err := admin.Exec(ctx, `
DROP TABLE IF EXISTS visits, notes;
CREATE TABLE visits (id int8, at date) PARTITION BY RANGE (at);
CREATE TABLE visits_2024 PARTITION OF visits FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY RANGE (at);
CREATE TABLE visits_2024h1 PARTITION OF visits_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE visits_2025 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE notes (id int8);
CREATE TABLE notes_old () INHERITS (notes);
ALTER TABLE visits OWNER TO anon_dpo; ALTER TABLE visits_2024 OWNER TO anon_dpo;
ALTER TABLE visits_2024h1 OWNER TO anon_dpo; ALTER TABLE notes OWNER TO anon_dpo;`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP TABLE IF EXISTS visits, notes CASCADE") })
	conn := anonConn(t, anonDPO)
	for table, want := range map[string]string{
		// visits_2025 belongs to postgres: VACUUM of visits skips it with a warning.
		"public.visits": "public.visits | skipped: public.visits_2025",
		"public.notes":  "public.notes | skipped: public.notes_old",
	} {
		rels, err := tableTree(ctx, conn, table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range targets(rels) {
			got = append(got, r.String())
		}
		var skipped []string
		for _, r := range rels {
			if !r.allowed {
				skipped = append(skipped, r.String())
			}
		}
		if s := strings.Join(got, ", ") + " | skipped: " + strings.Join(skipped, ", "); s != want {
			t.Errorf("%s: %q, want %q", table, s, want)
		}
	}
	super := anonConn(t, "postgres")
	rels, err := tableTree(ctx, super, "public.notes")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range targets(rels) {
		got = append(got, r.String())
	}
	if s := strings.Join(got, ", "); s != "public.notes, public.notes_old" {
		t.Errorf("notes as superuser: %q", s)
	}
}

func TestAnonymizeNoticeThroughProxy(t *testing.T) {
	anonymizeFixture(t)
	p := startMaskingProxy(t, "")
	ctx := testCtx(t)
	cc, err := pgx.ParseConfig(p.dsn("dpo"))
	if err != nil {
		t.Fatal(err)
	}
	notices := make(chan string, 10)
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices <- n.Severity + " " + n.Message }
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "EXPLAIN ANONYMIZE customers WHERE id = 50"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 0 {
		t.Errorf("EXPLAIN ANONYMIZE sent a notice: %q", <-notices)
	}
	if _, err := c.Exec(ctx, "ANONYMIZE customers WHERE id = ANY($1)", []int64{50}); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 {
		t.Fatalf("ANONYMIZE sent %d notices, want 1", len(notices))
	}
	got := <-notices
	if lacks := missing(got,
		"NOTICE pgveil: the old values remain in dead row versions of public.customers, public.survey_responses until VACUUM, and in pg_statistic until ANALYZE",
		`after COMMIT run VACUUM (ANALYZE) "public"."customers", "public"."survey_responses" (or pgveil anonymize, which does)`,
		"rewrite the tables with pg_repack or VACUUM (FULL, ANALYZE)",
	); lacks != nil {
		t.Errorf("notice %q lacks %q", got, lacks)
	}
	// The VACUUM it names runs as written (as the tables' owner).
	cmd := got[strings.Index(got, "VACUUM (ANALYZE) "):strings.Index(got, " (or pgveil")]
	if _, err := p.connect(t, "postgres").Exec(ctx, cmd); err != nil {
		t.Errorf("%s: %v", cmd, err)
	}
}

// missing returns the wanted strings that s does not contain.
func missing(s string, wants ...string) []string {
	var out []string
	for _, w := range wants {
		if !strings.Contains(s, w) {
			out = append(out, w)
		}
	}
	return out
}
