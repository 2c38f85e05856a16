package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// cleanupMethod is how pgveil anonymize clears the old values out of the
// files of the tables it changed, once its batches are committed.
type cleanupMethod int

const (
	noCleanup  cleanupMethod = iota // --no-vacuum
	vacuumOnly                      // VACUUM (ANALYZE): dead versions removed, their bytes stay in free space
	repack                          // pg_repack, then ANALYZE: new files, online
	vacuumFull                      // VACUUM (FULL, ANALYZE): new files, ACCESS EXCLUSIVE lock
)

// describe names what the method runs, for the summary.
func (m cleanupMethod) describe() string {
	switch m {
	case repack:
		return "pg_repack, then ANALYZE"
	case vacuumFull:
		return "VACUUM (FULL, ANALYZE)"
	}
	return "VACUUM (ANALYZE)"
}

// done says what the method did to a table.
func (m cleanupMethod) done() string {
	switch m {
	case repack:
		return "rewritten with pg_repack, analyzed"
	case vacuumFull:
		return "rewritten with VACUUM FULL, analyzed"
	}
	return "vacuumed, analyzed"
}

// usageError is an error that makes pgveil anonymize exit with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// chooseCleanup decides, before anything is anonymized, how the changed
// tables will be cleaned: --rewrite uses pg_repack when it can, else
// VACUUM FULL, which locks each table for the whole rewrite and so needs
// --yes.
func chooseCleanup(ctx context.Context, conn *pgx.Conn, opts anonymizeOptions, tables []string, stderr io.Writer) (cleanupMethod, error) {
	switch {
	case opts.noVacuum:
		return noCleanup, nil
	case !opts.rewrite:
		return vacuumOnly, nil
	}
	why, err := repackUnavailable(ctx, conn)
	if err != nil || why == "" {
		return repack, err
	}
	lock := fmt.Sprintf("--rewrite will use VACUUM FULL (pg_repack cannot be used: %s), which holds an ACCESS EXCLUSIVE lock on each of %s "+
		"for the whole of its rewrite (and briefly on pg_catalog.pg_statistic): nobody can read or write the table meanwhile",
		why, strings.Join(tables, ", "))
	if !opts.yes {
		return 0, &usageError{"nothing was anonymized: " + lock + ". Run again with --yes to accept the lock, " +
			"or install pg_repack (Debian: postgresql-NN-repack, then CREATE EXTENSION pg_repack) for an online rewrite"}
	}
	fmt.Fprintf(stderr, "pgveil anonymize: %s (accepted with --yes)\n", lock)
	return vacuumFull, nil
}

// repackUnavailable says why pg_repack cannot rewrite the tables, or ""
// when it can: its extension is installed in the database, its program is
// on PATH, and the role is a superuser, as pg_repack requires.
func repackUnavailable(ctx context.Context, conn *pgx.Conn) (string, error) {
	var installed, super bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_repack'),
		(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)`).Scan(&installed, &super)
	switch {
	case err != nil:
		return "", err
	case !installed:
		return "its extension is not installed in database " + conn.Config().Database, nil
	case !super:
		return "it needs a superuser", nil
	}
	if _, err := exec.LookPath("pg_repack"); err != nil {
		return "the pg_repack program is not on PATH", nil
	}
	return "", nil
}

// relation is a table the cleanup of a changed table covers: the table
// itself, or one of its partitions or inheritance children.
type relation struct {
	schema, name string
	kind         string // pg_class.relkind
	parent       int    // index of its parent in the tree, -1 for the root
	allowed      bool   // the role may VACUUM it
	owner        string
}

func (r relation) ident() string  { return pgx.Identifier{r.schema, r.name}.Sanitize() }
func (r relation) String() string { return r.schema + "." + r.name }

// tableTree lists the table and its descendants, parents first, with
// whether the role may vacuum each: VACUUM needs the owner, the database
// owner (except for shared catalogs) or a superuser, and from PostgreSQL
// 17 the MAINTAIN privilege. (Lacking it, VACUUM only warns.)
func tableTree(ctx context.Context, conn *pgx.Conn, table string) ([]relation, error) {
	may := "pg_catalog.pg_has_role(c.relowner, 'USAGE')"
	if v, _ := strconv.Atoi(conn.PgConn().ParameterStatus("server_version_num")); v >= 170000 {
		may = "pg_catalog.has_table_privilege(c.oid, 'MAINTAIN')"
	}
	schema, name, _ := strings.Cut(table, ".")
	rows, err := conn.Query(ctx, `
WITH RECURSIVE tree(oid, parent, depth) AS (
    SELECT $1::regclass::oid, 0::oid, 0
  UNION ALL
    SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid)
SELECT n.nspname::text, c.relname::text, c.relkind::text, t.parent, t.oid,
       `+may+` OR (pg_catalog.pg_has_role(d.datdba, 'USAGE') AND NOT c.relisshared),
       pg_catalog.pg_get_userbyid(c.relowner)::text
FROM tree t JOIN pg_catalog.pg_class c ON c.oid = t.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_database d ON d.datname = pg_catalog.current_database()
ORDER BY t.depth, t.oid`, pgx.Identifier{schema, name}.Sanitize())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rels []relation
	index := map[uint32]int{}
	for rows.Next() {
		var r relation
		var parent, oid uint32
		if err := rows.Scan(&r.schema, &r.name, &r.kind, &parent, &oid, &r.allowed, &r.owner); err != nil {
			return nil, err
		}
		r.parent = -1
		if i, ok := index[parent]; ok {
			r.parent = i
		}
		index[oid] = len(rels)
		rels = append(rels, r)
	}
	return rels, rows.Err()
}

// targets picks the relations to name in a VACUUM or ANALYZE: those the
// role may vacuum, leaving out partitions whose partitioned parent is
// named (VACUUM and ANALYZE recurse into partitions, not into inheritance
// children).
func targets(rels []relation) []relation {
	covered := make([]bool, len(rels)) // named, or reached by a VACUUM of a partitioned ancestor
	var out []relation
	for i, r := range rels {
		if r.parent >= 0 && rels[r.parent].kind == "p" && covered[r.parent] {
			covered[i] = true
			continue
		}
		if r.allowed && (r.kind == "r" || r.kind == "p") {
			covered[i] = true
			out = append(out, r)
		}
	}
	return out
}

// cleanupResult is what the cleanup did to one changed table.
type cleanupResult struct {
	table    string
	did      string   // e.g. "vacuumed, analyzed"; "" when nothing was done
	skipped  []string // relations not cleaned, each with why
	warnings []string // WARNINGs the server sent
	err      error
}

// cleanup vacuums or rewrites the changed tables and prints what it did.
// A table the role may not vacuum is named in the summary with why; an
// error of a command is returned.
func cleanup(ctx context.Context, conn *pgx.Conn, method cleanupMethod, changed []string, stdout io.Writer) error {
	if len(changed) == 0 {
		return nil
	}
	if method == noCleanup {
		fmt.Fprintf(stdout, "pgveil anonymize: not vacuumed (--no-vacuum): the old values stay in the dead row versions of %s until VACUUM (ANALYZE)\n",
			strings.Join(changed, ", "))
		return nil
	}
	start := time.Now()
	var warnings []string
	mc, err := maintenanceConn(ctx, conn, &warnings)
	if err != nil {
		return fmt.Errorf("the anonymization is committed, but the connection for %s failed: %w", method.describe(), err)
	}
	defer mc.Close(context.Background())
	var horizon uint32
	if err := mc.QueryRow(ctx, "SELECT pg_catalog.pg_current_xact_id()::xid").Scan(&horizon); err != nil {
		return fmt.Errorf("the anonymization is committed, but %s failed: %w", method.describe(), err)
	}
	steps := make([]func() cleanupResult, 0, len(changed)+1)
	for _, t := range changed {
		steps = append(steps, func() cleanupResult { return cleanTable(ctx, mc, method, t) })
	}
	steps = append(steps, func() cleanupResult { return cleanStatistics(ctx, mc, method) })
	var results []cleanupResult
	var failed []string
	for _, step := range steps {
		warnings = warnings[:0]
		res := step()
		res.warnings = append(res.warnings, warnings...)
		if res.err != nil {
			failed = append(failed, res.table)
		}
		results = append(results, res)
	}
	holders, err := horizonHolders(ctx, mc, horizon)
	printCleanup(stdout, method, results, time.Since(start))
	if err != nil {
		fmt.Fprintf(stdout, "  warning: cannot tell whether an older snapshot kept old row versions: %v\n", err)
	}
	if len(holders) > 0 {
		fmt.Fprintf(stdout, "  warning: %s began before the cleanup and may still see the old row versions, which VACUUM then keeps "+
			"(VACUUM FULL and pg_repack copy them): once they end, run the same command again, or %s the tables\n",
			strings.Join(holders, ", "), method.describe())
	}
	if len(failed) > 0 {
		return fmt.Errorf("the anonymization is committed, but %s failed for %s: the old values may remain in their files",
			method.describe(), strings.Join(failed, ", "))
	}
	return nil
}

// horizonHolders lists what holds back the removal of row versions that
// died before the transaction horizon began: other sessions of the
// database (or without one: WAL senders) whose snapshot is older,
// prepared transactions and replication slots.
func horizonHolders(ctx context.Context, conn *pgx.Conn, horizon uint32) ([]string, error) {
	rows, err := conn.Query(ctx, `
SELECT 'session ' || pid FROM pg_catalog.pg_stat_activity
  WHERE pid <> pg_catalog.pg_backend_pid() AND backend_xmin IS NOT NULL
    AND (datname = pg_catalog.current_database() OR datname IS NULL) AND pg_catalog.age(backend_xmin) > pg_catalog.age($1::text::xid)
UNION ALL
SELECT 'prepared transaction ' || pg_catalog.quote_literal(gid) FROM pg_catalog.pg_prepared_xacts
  WHERE database = pg_catalog.current_database() AND pg_catalog.age(transaction) > pg_catalog.age($1::text::xid)
UNION ALL
SELECT 'replication slot ' || slot_name FROM pg_catalog.pg_replication_slots
  WHERE xmin IS NOT NULL AND pg_catalog.age(xmin) > pg_catalog.age($1::text::xid)`, strconv.FormatUint(uint64(horizon), 10))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// maintenanceConn opens a second connection like conn whose WARNING and
// NOTICE messages are appended to warnings.
func maintenanceConn(ctx context.Context, conn *pgx.Conn, warnings *[]string) (*pgx.Conn, error) {
	cc := conn.Config().Copy()
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if n.Severity == "WARNING" {
			*warnings = append(*warnings, n.Message)
		}
	}
	return pgx.ConnectConfig(ctx, cc)
}

// cleanTable vacuums or rewrites one changed table and its descendants.
func cleanTable(ctx context.Context, conn *pgx.Conn, method cleanupMethod, table string) cleanupResult {
	res := cleanupResult{table: table}
	rels, err := tableTree(ctx, conn, table)
	if err != nil {
		res.err = err
		return res
	}
	for _, r := range rels {
		if !r.allowed && r.kind != "f" {
			res.skipped = append(res.skipped, fmt.Sprintf("%s: role %s may not vacuum it (its owner is %s; VACUUM needs the owner, "+
				"the database owner, a superuser or, from PostgreSQL 17, the MAINTAIN privilege)", r, conn.Config().User, r.owner))
		}
	}
	list := targets(rels)
	if len(list) == 0 {
		return res
	}
	if method == repack {
		res.err = repackTables(ctx, conn, rels)
	}
	for _, r := range list {
		if res.err != nil {
			return res
		}
		_, res.err = conn.Exec(ctx, maintenanceSQL(method)+r.ident())
	}
	if res.err == nil {
		res.did = method.done()
	}
	return res
}

// statisticsTable holds ANALYZE's samples of column values; the rows that
// ANALYZE replaces stay in it as dead row versions.
const statisticsTable = "pg_catalog.pg_statistic"

// cleanStatistics vacuums pg_statistic, whose dead rows keep the samples
// of the old values that ANALYZE replaced: with VACUUM FULL when the
// tables were rewritten with it (the lock, accepted with --yes, is brief
// on so small a table), else with VACUUM. Only the database owner or a
// superuser may.
func cleanStatistics(ctx context.Context, conn *pgx.Conn, method cleanupMethod) cleanupResult {
	res := cleanupResult{table: statisticsTable}
	rels, err := tableTree(ctx, conn, statisticsTable)
	if err == nil && len(rels) != 1 {
		err = fmt.Errorf("%s not found", statisticsTable)
	}
	if err != nil {
		res.err = err
		return res
	}
	if !rels[0].allowed {
		res.skipped = []string{fmt.Sprintf("%s: role %s may not vacuum it (only the database owner or a superuser may); "+
			"its dead rows keep ANALYZE's old samples of the values until autovacuum or VACUUM processes it", statisticsTable, conn.Config().User)}
		return res
	}
	cmd, did := "VACUUM ", "vacuumed (it held ANALYZE's samples of the old values)"
	if method == vacuumFull {
		cmd, did = "VACUUM FULL ", "rewritten with VACUUM FULL (it held ANALYZE's samples of the old values)"
	}
	if _, res.err = conn.Exec(ctx, cmd+statisticsTable); res.err == nil {
		res.did = did
	}
	return res
}

// maintenanceSQL is the command, without the table name, that the method
// runs after any rewrite of its own.
func maintenanceSQL(method cleanupMethod) string {
	switch method {
	case repack:
		return "ANALYZE "
	case vacuumFull:
		return "VACUUM (FULL, ANALYZE) "
	}
	return "VACUUM (ANALYZE) "
}

// repackTables rewrites each plain table of rels the role may vacuum with
// pg_repack (online; it does not take partitioned tables).
func repackTables(ctx context.Context, conn *pgx.Conn, rels []relation) error {
	for _, r := range rels {
		if r.kind != "r" || !r.allowed {
			continue
		}
		if err := runRepack(ctx, conn.Config(), r); err != nil {
			return err
		}
	}
	return nil
}

// runRepack runs pg_repack on one table, connecting as conn does (the
// password, when there is one, goes by the environment).
func runRepack(ctx context.Context, cc *pgx.ConnConfig, r relation) error {
	cmd := exec.CommandContext(ctx, "pg_repack", "--no-order", "--no-analyze", "--table="+r.ident(),
		"--host="+cc.Host, "--port="+strconv.Itoa(int(cc.Port)), "--username="+cc.User, "--dbname="+cc.Database)
	cmd.Env = os.Environ()
	if cc.Password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+cc.Password)
	}
	cmd.Env = append(cmd.Env, "PGSSLMODE="+sslMode(cc))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_repack --table=%s: %w: %s", r.ident(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sslMode is the libpq sslmode that checks no less than the admin
// connection did: verify-full unless it skipped verification. A CA that
// came in the DSN rather than PGSSLROOTCERT makes pg_repack fail, not
// connect unchecked.
func sslMode(cc *pgx.ConnConfig) string {
	switch {
	case cc.TLSConfig == nil:
		return "disable"
	case cc.TLSConfig.VerifyPeerCertificate != nil: // pgx's verify-ca
		return "verify-ca"
	case cc.TLSConfig.InsecureSkipVerify:
		return "require"
	}
	return "verify-full"
}

// printCleanup writes the summary of the cleanup: per table, what was done
// or why not.
func printCleanup(w io.Writer, method cleanupMethod, results []cleanupResult, took time.Duration) {
	fmt.Fprintf(w, "pgveil anonymize: %s of the changed tables, %.2fs\n", method.describe(), took.Seconds())
	for _, r := range results {
		switch {
		case r.err != nil:
			fmt.Fprintf(w, "  %s: FAILED: %v\n", r.table, r.err)
		case r.did != "":
			fmt.Fprintf(w, "  %s: %s\n", r.table, r.did)
		}
		for _, s := range r.skipped {
			if r.table == statisticsTable {
				fmt.Fprintf(w, "  NOT vacuumed: %s\n", s)
				continue
			}
			fmt.Fprintf(w, "  NOT vacuumed: %s; its old values stay in its files until someone who may runs %s on it\n", s, method.describe())
		}
		for _, s := range r.warnings {
			fmt.Fprintf(w, "  %s: the server warned: %s\n", r.table, s)
		}
	}
}

// cleanupTables lists the tables to vacuum or rewrite: those that had
// rows changed or deleted; or, when the keys found had all been
// anonymized before (through the proxy, or by a run whose VACUUM was held
// back), every table of the cascade, so that a second run finishes the
// cleanup.
func (s *keysSummary) cleanupTables() []string {
	var out []string
	for _, t := range s.tables {
		if s.rows[t] > 0 {
			out = append(out, t)
		}
	}
	if len(out) == 0 && s.matched > 0 {
		return s.tables
	}
	return out
}

// isUsage reports whether err asks for exit status 2.
func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}
