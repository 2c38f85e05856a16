package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/rules"
)

const anonymizeUsage = `Usage: pgveil anonymize --config FILE --table TABLE --keys FILE [--column NAME]
                        [--dsn URL] [--database NAME] [--batch N] [--no-vacuum | --rewrite [--yes]]
       pgveil anonymize --config FILE --init-audit [--dsn URL] [--database NAME]

Anonymizes the rows of TABLE whose key is listed in the keys file, as
ANONYMIZE TABLE WHERE key = ANY(keys) does through the proxy: every column
with an anonymize strategy is overwritten, the anonymized_marker is set, the
child tables declared with a parent link follow (on_anonymize: delete
deletes their rows), and every batch appends a record to the audit log
pgveil.anonymize_log. Rows already anonymized are skipped, so running it
twice is harmless.

TABLE is a table of the rules (public.customers), or its name alone, looked
up in the connection's search_path. The keys file (- for standard input)
holds one key per line; with --column it is a CSV file with a header line,
and the keys are in the named column. Empty lines and repeated keys are
skipped. Each batch of keys is one transaction: a failure keeps the
batches before it. Progress goes to standard error; the summary (rows per
table, keys not found, time) to standard output.

The connection runs as the person responsible, whose login role must be in
roles.anonymize: --dsn when given, else the libpq environment (PGHOST,
PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSERVICE, ~/.pgpass)
with the file's upstream as the host when PGHOST is unset. admin_dsn is not
used. --database NAME connects to NAME whatever they name; the rules are
that database's (its own under databases:, else the top-level tables), and
the summary names it.

An UPDATE leaves the old values in dead row versions (heap, TOAST,
indexes), and ANALYZE's samples of them in pg_statistic. So once its
batches are committed, the command runs VACUUM (ANALYZE) on every table it
changed (partitions and inheritance children included), and pg_statistic;
--no-vacuum turns this off. When every key found had been anonymized
before (say, by ANONYMIZE through the proxy), it vacuums all the tables of
the cascade instead, so that a second run finishes the cleanup. VACUUM
needs the table's owner (or the database owner, a superuser, or from
PostgreSQL 17 the MAINTAIN privilege): the summary names each table the
role may not vacuum, and why, and the sessions, prepared transactions and
replication slots whose older snapshots keep old row versions alive. Even
after VACUUM, the bytes of the dead versions stay in the files' free space
until new rows happen to overwrite them. --rewrite writes the tables anew,
so that no old byte remains in their heap, TOAST or index files: online
with pg_repack when its extension is installed in the database, the
program is on PATH and the role is a superuser; otherwise with VACUUM
(FULL, ANALYZE), which holds an ACCESS EXCLUSIVE lock on each table for
the whole of its rewrite (nobody can read or write it meanwhile), and
which the command therefore runs only with --yes: without it, it stops
before anonymizing anything. What neither reaches (WAL, backups, replicas,
server logs, free file system blocks): see the README.

The audit log must exist: the proxy creates it in a database when it
starts (databases under databases: and the admin connection's) or when a
role of roles.anonymize first connects to it through the proxy. --init-audit
creates it instead (run it as a role that may create a schema) and grants
INSERT on it to the roles of roles.anonymize; with --table it then goes on.

Exit status: 0 on success (also when a table could not be vacuumed for
lack of privilege: the summary says so), 1 on failure (nothing changed in
the batch that failed; or the batches are committed but a VACUUM or
rewrite failed), 2 on a usage error (also --rewrite needing --yes).

Flags:`

// anonymizeOptions are the flags of pgveil anonymize.
type anonymizeOptions struct {
	config, table, keys, column, dsn string
	database                         string
	batch                            int
	initAudit                        bool
	noVacuum, rewrite, yes           bool // the cleanup after the batches
}

func runAnonymize(args []string, stdout, stderr io.Writer) int {
	opts, code := parseAnonymizeFlags(args, stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := anonymizeKeys(ctx, opts, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "pgveil anonymize:", err)
		if isUsage(err) {
			return 2
		}
		return 1
	}
	return 0
}

// parseAnonymizeFlags reads the flags. code is the exit status when the
// command must stop here, else -1.
func parseAnonymizeFlags(args []string, stderr io.Writer) (opts anonymizeOptions, code int) {
	fs := newFlags("anonymize", anonymizeUsage, stderr)
	fs.StringVar(&opts.config, "config", "pgveil.yaml", "configuration file")
	fs.StringVar(&opts.table, "table", "", "the table to anonymize, as in the rules (public.customers) or unqualified")
	fs.StringVar(&opts.keys, "keys", "", "file of keys, one per line, or CSV with --column (- for standard input)")
	fs.StringVar(&opts.column, "column", "", "the CSV column holding the keys (the file then has a header line)")
	fs.StringVar(&opts.dsn, "dsn", "", "connection `URL` or keyword/value string (default: the libpq environment)")
	fs.StringVar(&opts.database, "database", "", "the database to work on, whatever the connection string names (default: the one it names)")
	fs.IntVar(&opts.batch, "batch", 10000, "keys per transaction")
	fs.BoolVar(&opts.initAudit, "init-audit", false, "create the audit log pgveil.anonymize_log when absent")
	fs.BoolVar(&opts.noVacuum, "no-vacuum", false, "do not VACUUM (ANALYZE) the changed tables after the batches")
	fs.BoolVar(&opts.rewrite, "rewrite", false, "rewrite the changed tables (pg_repack, else VACUUM FULL) so that no old byte remains in their files")
	fs.BoolVar(&opts.yes, "yes", false, "accept VACUUM FULL's exclusive lock when --rewrite cannot use pg_repack")
	var lf logFlags // accepted as by every command; this one writes no log lines
	lf.register(fs)
	if _, status, ok := parseLogged(fs, &lf, args, stderr); !ok {
		return opts, status
	}
	problem := ""
	switch {
	case fs.NArg() > 0:
		problem = fmt.Sprintf("unexpected argument %q (flags only)", fs.Arg(0))
	case opts.batch < 1:
		problem = "--batch must be at least 1"
	case (opts.table == "") != (opts.keys == ""):
		problem = "--table and --keys go together"
	case opts.table == "" && !opts.initAudit:
		problem = "--table and --keys are required"
	case opts.noVacuum && opts.rewrite:
		problem = "--no-vacuum and --rewrite exclude each other"
	}
	if problem != "" {
		fmt.Fprintf(stderr, "pgveil anonymize: %s; see pgveil anonymize --help\n", problem)
		return opts, 2
	}
	return opts, -1
}

// anonymizeKeys does the work of pgveil anonymize.
func anonymizeKeys(ctx context.Context, opts anonymizeOptions, stdout, stderr io.Writer) error {
	cfg, err := rules.Load(opts.config)
	if err != nil {
		return err
	}
	conn, err := anonymizeConnect(ctx, cfg, opts.dsn, opts.database)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	cfg = cfg.ForDatabase(connDatabase(conn))
	if opts.initAudit {
		if err := initAuditLog(ctx, conn, cfg, stdout); err != nil || opts.table == "" {
			return err
		}
	}
	if err := checkAnonymizer(ctx, conn, cfg); err != nil {
		return err
	}
	plan, key, err := keysPlan(ctx, conn, cfg, opts.table)
	if err != nil {
		return err
	}
	keys, err := readKeys(opts.keys, opts.column, key)
	if err != nil {
		return err
	}
	method, err := chooseCleanup(ctx, conn, opts, plan.Tables, stderr)
	if err != nil {
		return err
	}
	sum, err := runBatches(ctx, conn, plan, keys, opts.batch, stdout, stderr)
	return errors.Join(err, cleanup(ctx, conn, method, sum.cleanupTables(), stdout))
}

// anonymizeConnect connects as pgveil check does, but never with the
// proxy's admin_dsn: ANONYMIZE runs as the person responsible.
func anonymizeConnect(ctx context.Context, cfg *rules.Config, dsn, database string) (*pgx.Conn, error) {
	own := *cfg
	own.AdminDSN = ""
	return adminConnectDB(ctx, &own, dsn, database)
}

// initAuditLog creates the audit log when absent.
func initAuditLog(ctx context.Context, conn *pgx.Conn, cfg *rules.Config, stdout io.Writer) error {
	if err := anonymize.EnsureAuditLog(ctx, conn, cfg.Roles.Anonymize); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pgveil anonymize: %s is ready in %s; roles.anonymize may append to it\n", anonymize.AuditTable, connectedTo(conn))
	return nil
}

// checkAnonymizer refuses a login role that is not in roles.anonymize, and
// a database without the audit log.
func checkAnonymizer(ctx context.Context, conn *pgx.Conn, cfg *rules.Config) error {
	var role string
	if err := conn.QueryRow(ctx, "SELECT session_user::text").Scan(&role); err != nil {
		return err
	}
	if !cfg.MayAnonymize(role) {
		return fmt.Errorf("role %s may not anonymize: it is not in roles.anonymize of %s (connect as one that is, with --dsn or PGUSER)",
			role, cfg.Path)
	}
	ok, err := anonymize.AuditLogExists(ctx, conn)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the audit log %s does not exist in %s: connect to it through the proxy once as a role of roles.anonymize (the proxy creates it), "+
			"or run pgveil anonymize --init-audit --config %s --database %s as a role that may create a schema",
			anonymize.AuditTable, connectedTo(conn), cfg.Path, connDatabase(conn))
	}
	return nil
}

// keysPlan plans ANONYMIZE table WHERE key = ANY($1) for the named table
// (for a composite key, WHERE (k1, k2) IN the rows of $1, $2), and
// returns it with the key's columns.
func keysPlan(ctx context.Context, conn *pgx.Conn, cfg *rules.Config, table string) (*anonymize.Plan, rules.Columns, error) {
	var schemas []string
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.current_schemas(false)::text[]").Scan(&schemas); err != nil {
		return nil, nil, err
	}
	name, t := findTable(cfg, table, schemas)
	if t == nil || len(t.Key) == 0 {
		return nil, nil, fmt.Errorf("table %s is not declared in the rules with a key (searched: %s)", table, strings.Join(candidates(table, schemas), ", "))
	}
	st, err := anonymize.Parse(keysStatement(name, t.Key))
	if err != nil {
		return nil, nil, err
	}
	plan, err := st.Plan(cfg, nil, len(t.Key))
	return plan, t.Key, err
}

// keysStatement writes the ANONYMIZE statement of a batch of keys: one
// text array parameter per key column, each value converted to its
// column's type through the table's row type, so that a key of any type
// (a timestamp, say) compares as the column does.
func keysStatement(table string, key rules.Columns) string {
	schema, rel, _ := strings.Cut(table, ".")
	qt := pgx.Identifier{schema, rel}.Sanitize()
	if len(key) == 1 {
		return fmt.Sprintf("ANONYMIZE %s WHERE %s = ANY($1)", qt, pgx.Identifier{key[0]}.Sanitize())
	}
	var cols, arrays, us, pairs, outs []string
	for i, c := range key {
		q := pgx.Identifier{c}.Sanitize()
		cols = append(cols, q)
		arrays = append(arrays, fmt.Sprintf("pg_catalog.unnest($%d::text[])", i+1))
		us = append(us, fmt.Sprintf("c%d", i+1))
		pairs = append(pairs, fmt.Sprintf("%s::text, u.c%d", rules.SQLLiteral(c), i+1))
		outs = append(outs, "r."+q)
	}
	return fmt.Sprintf("ANONYMIZE %s WHERE (%s) IN (SELECT %s FROM ROWS FROM (%s) AS u(%s), "+
		"pg_catalog.jsonb_populate_record(NULL::%s, pg_catalog.jsonb_build_object(%s)) AS r)",
		qt, strings.Join(cols, ", "), strings.Join(outs, ", "), strings.Join(arrays, ", "), strings.Join(us, ", "),
		qt, strings.Join(pairs, ", "))
}

// findTable finds a table of the rules by its qualified name, or by its
// name alone in the first schema of the search_path that declares it.
func findTable(cfg *rules.Config, table string, schemas []string) (string, *rules.Table) {
	for _, name := range candidates(table, schemas) {
		if t := cfg.Tables[name]; t != nil {
			return name, t
		}
	}
	return table, nil
}

// candidates lists the names of the rules a --table value may mean.
func candidates(table string, schemas []string) []string {
	if strings.Contains(table, ".") {
		return []string{table}
	}
	var names []string
	for _, s := range schemas {
		names = append(names, s+"."+table)
	}
	return names
}

// keysSummary adds up the reports of the batches.
type keysSummary struct {
	tables  []string          // the tables of the cascade, in plan order
	actions map[string]string // table: anonymize or delete
	rows    map[string]int64  // table: rows changed
	keys    int               // keys sent
	matched int64             // keys of the named table found
	batches int
}

// runBatches anonymizes the keys batch by batch and prints the summary,
// also after a failure (for the batches done, which it returns).
func runBatches(ctx context.Context, conn *pgx.Conn, plan *anonymize.Plan, keys []keyRow, size int,
	stdout, stderr io.Writer) (*keysSummary, error) {
	sum := &keysSummary{actions: map[string]string{}, rows: map[string]int64{}}
	prog := newProgress(stderr, "pgveil anonymize", len(keys), "keys")
	start := time.Now()
	var err error
	for i := 0; i < len(keys) && err == nil; i += size {
		batch := keys[i:min(i+size, len(keys))]
		if err = runBatch(ctx, conn, plan, batch, sum); err == nil {
			prog.update(i + len(batch))
		}
	}
	prog.finish()
	sum.print(stdout, plan, time.Since(start), connectedTo(conn))
	if err != nil {
		return sum, fmt.Errorf("batch %d failed and changed nothing (%d keys before it were done): %w", sum.batches+1, sum.keys, err)
	}
	return sum, nil
}

// runBatch runs the plan's report statement for one batch, in its own
// transaction, and adds its rows to the summary.
func runBatch(ctx context.Context, conn *pgx.Conn, plan *anonymize.Plan, batch []keyRow, sum *keysSummary) error {
	params := keyArrays(batch)
	for _, p := range plan.Params {
		params = append(params, []byte(p))
	}
	res := conn.PgConn().ExecParams(ctx, plan.Report, params, nil, nil, nil).Read()
	if res.Err != nil {
		return res.Err
	}
	for _, row := range res.Rows {
		if len(row) != 3 {
			return errors.New("unexpected report row")
		}
		n, err := strconv.ParseInt(string(row[2]), 10, 64)
		if err != nil {
			return err
		}
		sum.add(string(row[0]), string(row[1]), n)
	}
	sum.keys += len(batch)
	sum.batches++
	return nil
}

// add counts one report row.
func (s *keysSummary) add(table, action string, n int64) {
	if action == "matched" {
		s.matched += n
		return
	}
	if _, ok := s.actions[table]; !ok {
		s.tables = append(s.tables, table)
		s.actions[table] = action
	}
	s.rows[table] += n
}

// print writes the summary.
func (s *keysSummary) print(w io.Writer, plan *anonymize.Plan, took time.Duration, target string) {
	root := plan.Tables[0]
	batches := fmt.Sprintf("%d batches", s.batches)
	if s.batches == 1 {
		batches = "1 batch"
	}
	fmt.Fprintf(w, "pgveil anonymize: %s, %s in %s, %.2fs, %s\n", root, count(s.keys, "key"), batches, took.Seconds(), target)
	width := 0
	for _, t := range s.tables {
		width = max(width, len(t))
	}
	for _, t := range s.tables {
		verb := "anonymized"
		if s.actions[t] == "delete" {
			verb = "deleted"
		}
		fmt.Fprintf(w, "  %-10s  %-*s  %s\n", verb, width, t, count(int(s.rows[t]), "row"))
	}
	fmt.Fprintf(w, "  keys not found: %d\n", int64(s.keys)-s.matched)
	if s.actions[root] != "" {
		fmt.Fprintf(w, "  keys found but anonymized before: %d\n", s.matched-s.rows[root])
	}
}

// progress reports how far a run is on standard error: a bar redrawn in
// place on a terminal, a line every ten seconds otherwise, and nothing for
// a run shorter than a second.
type progress struct {
	name  string // the command, for lines: "pgveil anonymize"
	unit  string // what is counted: "keys"
	w     io.Writer
	tty   bool
	total int
	now   func() time.Time
	start time.Time
	last  time.Time // when the last line was written
	drawn bool      // a bar is on the screen
}

// newProgress starts the clock for total units of work (keys, tables).
func newProgress(w io.Writer, name string, total int, unit string) *progress {
	p := &progress{name: name, unit: unit, w: w, tty: isTerminal(w), total: total, now: time.Now}
	p.start = p.now()
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update reports that done units are done.
func (p *progress) update(done int) {
	now := p.now()
	elapsed := now.Sub(p.start)
	if elapsed < time.Second || p.total == 0 {
		return
	}
	pct := done * 100 / p.total
	if p.tty {
		const width = 30
		bar := strings.Repeat("#", pct*width/100) + strings.Repeat(".", width-pct*width/100)
		fmt.Fprintf(p.w, "\r[%s] %3d%%  %d/%d %s  %s", bar, pct, done, p.total, p.unit, elapsed.Round(time.Second))
		p.drawn = true
		return
	}
	if p.last.IsZero() || now.Sub(p.last) >= 10*time.Second || done == p.total {
		fmt.Fprintf(p.w, "%s: %d/%d %s (%d%%), %s\n", p.name, done, p.total, p.unit, pct, elapsed.Round(time.Second))
		p.last = now
	}
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
