package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// GuardSchema is the schema that holds the guard functions.
const GuardSchema = "pgveil"

// maxIdentLen is PostgreSQL's NAMEDATALEN - 1.
const maxIdentLen = 63

// Guard is the trigger pgveil guard installs on a table that declares an
// anonymized_marker, so that no writer can give an anonymized row its
// personal data back. A BEFORE UPDATE row trigger, enabled ALWAYS (it
// fires in replication apply too), runs the function GuardSchema.Name,
// which refuses with SQLSTATE 42501, naming the table and the key, an
// UPDATE of a row whose marker is set (not NULL, and not false for a
// boolean marker) that changes a column with an anonymize strategy (the
// columns ANONYMIZE overwrote; a column that is only masked still holds
// its original value and may change) or clears the marker. ANONYMIZE
// itself updates only rows whose marker is NULL, so the trigger lets it
// through.
type Guard struct {
	Table   string // schema.table, as declared in the rules
	Schema  string
	Rel     string  // the table's name within Schema
	Name    string  // the function's name in GuardSchema, and the trigger's name
	Key     Columns // the key columns, named in the error; empty when none is declared
	Marker  string
	Columns []string // the columns with an anonymize strategy, sorted
}

// Guards returns the guard of each declared table with an
// anonymized_marker, sorted by table. A guard is named
// guard_<schema>_<table>; when that is longer than PostgreSQL's 63 bytes,
// or two tables would share it, it is cut and ends with a hash of the
// table's name.
func Guards(cfg *Config) []Guard {
	var out []Guard
	names := map[string]int{}
	for _, table := range sortedKeys(cfg.Tables) {
		t := cfg.Tables[table]
		if t == nil || t.AnonymizedMarker == "" {
			continue
		}
		schema, rel, _ := strings.Cut(table, ".")
		g := Guard{Table: table, Schema: schema, Rel: rel, Name: "guard_" + schema + "_" + rel, Key: t.Key, Marker: t.AnonymizedMarker}
		for _, col := range sortedKeys(t.Columns) {
			if c := t.Columns[col]; c != nil && c.Anonymize.Kind != None {
				g.Columns = append(g.Columns, col)
			}
		}
		names[g.Name]++
		out = append(out, g)
	}
	for i := range out {
		if len(out[i].Name) > maxIdentLen || names[out[i].Name] > 1 {
			out[i].Name = hashedName(out[i].Name, out[i].Table)
		}
	}
	return out
}

// hashedName cuts name to fit an identifier and appends a hash of table.
func hashedName(name, table string) string {
	sum := sha256.Sum256([]byte(table))
	suffix := "_" + hex.EncodeToString(sum[:4])
	cut := maxIdentLen - len(suffix)
	for cut > 0 && cut < len(name) && name[cut]&0xC0 == 0x80 {
		cut-- // not inside a UTF-8 sequence
	}
	return name[:min(cut, len(name))] + suffix
}

// Function is the function's quoted, schema-qualified name.
func (g Guard) Function() string { return pgx.Identifier{GuardSchema, g.Name}.Sanitize() }

// Describe says what the guard protects, for its comment and messages.
func (g Guard) Describe() string {
	cols := "no column"
	if len(g.Columns) > 0 {
		cols = strings.Join(g.Columns, ", ")
	}
	return fmt.Sprintf("pgveil guard of %s: marker %s, columns %s", g.Table, g.Marker, cols)
}

// InstallSQL creates or replaces the function and the trigger, enabled
// ALWAYS. Run it in one transaction after creating GuardSchema.
func (g Guard) InstallSQL() string {
	table := pgx.Identifier{g.Schema, g.Rel}.Sanitize()
	trigger := pgx.Identifier{g.Name}.Sanitize()
	return fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS %[2]s;
COMMENT ON FUNCTION %[1]s() IS %[3]s;
REVOKE ALL ON FUNCTION %[1]s() FROM PUBLIC;
DROP TRIGGER IF EXISTS %[4]s ON %[5]s;
CREATE TRIGGER %[4]s BEFORE UPDATE ON %[5]s FOR EACH ROW EXECUTE FUNCTION %[1]s();
ALTER TABLE %[5]s ENABLE ALWAYS TRIGGER %[4]s`,
		g.Function(), SQLLiteral(g.Body()), SQLLiteral(g.Describe()), trigger, table)
}

// keyText returns how the refusal names the row: a label for the key's
// columns, the format() placeholder of their values, and the format()
// arguments that give the old row's values.
func (g Guard) keyText() (label, mark, args string) {
	switch len(g.Key) {
	case 0:
		return "(no key declared)", "%s", "''"
	case 1:
		return g.Key[0], "%s", "OLD." + pgx.Identifier{g.Key[0]}.Sanitize()
	}
	vals := make([]string, len(g.Key))
	marks := make([]string, len(g.Key))
	for i, col := range g.Key {
		vals[i] = "OLD." + pgx.Identifier{col}.Sanitize()
		marks[i] = "%s"
	}
	return g.Key.Tuple(), "(" + strings.Join(marks, ", ") + ")", strings.Join(vals, ", ")
}

// Body is the function's PL/pgSQL source (pg_proc.prosrc once installed).
func (g Guard) Body() string {
	set := func(row string) string {
		m := row + "." + pgx.Identifier{g.Marker}.Sanitize()
		return fmt.Sprintf("(%s IS NOT NULL AND %s::text <> 'false')", m, m)
	}
	conds := []string{"NOT " + set("NEW")}
	for _, c := range g.Columns {
		q := pgx.Identifier{c}.Sanitize()
		conds = append(conds, fmt.Sprintf("NEW.%s IS DISTINCT FROM OLD.%s", q, q))
	}
	key, mark, keyVal := g.keyText()
	guarded := g.Marker
	if len(g.Columns) > 0 {
		guarded = strings.Join(g.Columns, ", ") + " and " + g.Marker
	}
	esc := strings.NewReplacer("%", "%%") // msg is format()'s format string
	msg := fmt.Sprintf("pgveil: UPDATE of %s refused: the row with %s = %s is anonymized; %s keep what ANONYMIZE wrote",
		esc.Replace(g.Table), esc.Replace(key), mark, esc.Replace(guarded))
	return fmt.Sprintf(`
BEGIN
  IF %s AND (%s) THEN
    RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = pg_catalog.format(%s, %s),
      SCHEMA = %s, TABLE = %s,
      HINT = 'pgveil guard protects anonymized rows from getting their personal data back';
  END IF;
  RETURN NEW;
END`, set("OLD"), strings.Join(conds, "\n      OR "), SQLLiteral(msg), keyVal, SQLLiteral(g.Schema), SQLLiteral(g.Rel))
}

// SQLLiteral quotes a string constant so that it reads the same whatever
// standard_conforming_strings says.
func SQLLiteral(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(s, `\`, `\\`) + "'"
	}
	return "'" + s + "'"
}

// InstalledGuard is a guard trigger found in the database.
type InstalledGuard struct {
	Table    string // schema.table of the table it is on
	Schema   string
	Rel      string
	Name     string // the trigger's and the function's name
	Function string // the function's name in GuardSchema
	Source   string // the function's prosrc
	Comment  string
}

// Drop is the SQL that removes the trigger and its function.
func (g InstalledGuard) Drop() string {
	return fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s;\nDROP FUNCTION IF EXISTS %s()",
		pgx.Identifier{g.Name}.Sanitize(), pgx.Identifier{g.Schema, g.Rel}.Sanitize(), pgx.Identifier{GuardSchema, g.Function}.Sanitize())
}

// Querier runs a query: *pgx.Conn and pgx.Tx are Queriers.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// installedGuardsSQL lists the triggers (not their clones on partitions)
// that run a guard_ function of GuardSchema. tgparentid exists from
// PostgreSQL 13; to_jsonb reads it as NULL before.
const installedGuardsSQL = `
SELECT n.nspname::text, c.relname::text, t.tgname::text, p.proname::text, p.prosrc,
       COALESCE(pg_catalog.obj_description(p.oid, 'pg_proc'), '')
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE pn.nspname = $1 AND p.proname LIKE 'guard\_%' AND NOT t.tgisinternal
  AND COALESCE((pg_catalog.to_jsonb(t) ->> 'tgparentid')::oid, 0) = 0
ORDER BY 1, 2, 3`

// InstalledGuards lists the guard triggers of the database.
func InstalledGuards(ctx context.Context, q Querier) ([]InstalledGuard, error) {
	rows, err := q.Query(ctx, installedGuardsSQL, GuardSchema)
	if err != nil {
		return nil, fmt.Errorf("reading the guard triggers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InstalledGuard, error) {
		var g InstalledGuard
		err := r.Scan(&g.Schema, &g.Rel, &g.Name, &g.Function, &g.Source, &g.Comment)
		g.Table = g.Schema + "." + g.Rel
		return g, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading the guard triggers: %w", err)
	}
	return out, nil
}

// guardStateSQL gives, for a table and each of its partitions, the state
// of the trigger of that name (tgenabled, empty when there is none).
// pg_partition_tree gives nothing for a table that is neither partitioned
// nor a partition, hence the union with the table itself.
const guardStateSQL = `
WITH pt AS (SELECT $1::regclass AS relid, 0 AS level UNION SELECT relid, level FROM pg_catalog.pg_partition_tree($1::regclass))
SELECT n.nspname || '.' || c.relname, c.oid = $1::regclass,
       COALESCE((SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = $2), '')
FROM pt
JOIN pg_catalog.pg_class c ON c.oid = pt.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f')
ORDER BY pt.level, 1`

// CheckGuards reports, as warnings, how the guard triggers differ from
// what pgveil guard would install for cfg: a table with an
// anonymized_marker whose trigger is missing, disabled or not enabled
// ALWAYS (on the table or one of its partitions), or whose function is
// out of date with the rules; and a guard left on a table that no longer
// declares a marker. Tables missing from the database are left to Check.
func CheckGuards(ctx context.Context, cfg *Config, conn *pgx.Conn) ([]Problem, error) {
	installed, err := InstalledGuards(ctx, conn)
	if err != nil {
		return nil, err
	}
	byName := map[string]InstalledGuard{}
	for _, g := range installed {
		byName[g.Table+"\x00"+g.Name] = g
	}
	var problems []Problem
	warn := func(key, format string, a ...any) {
		problems = append(problems, Problem{Key: key, Message: fmt.Sprintf(format, a...), Warning: true, File: cfg.Path})
	}
	run := "run pgveil guard --config " + configPath(cfg)
	if cfg.scope != "" {
		run += " --database " + cfg.scope
	}
	for _, g := range Guards(cfg) {
		key := "tables." + g.Table + ".anonymized_marker"
		have, ok := byName[g.Table+"\x00"+g.Name]
		delete(byName, g.Table+"\x00"+g.Name)
		if !ok {
			if exists, err := tableExists(ctx, conn, g); err != nil || !exists {
				if err != nil {
					return nil, err
				}
				continue
			}
			warn(key, "no guard trigger %s: any writer can give an anonymized row its personal data back; %s", g.Name, run)
			continue
		}
		if have.Source != g.Body() {
			warn(key, "the guard function %s.%s is out of date with the rules (installed: %s; the rules: %s); %s", GuardSchema, g.Name, have.Comment, g.Describe(), run)
		}
		if err := checkGuardEnabled(ctx, conn, g, warn, key, run); err != nil {
			return nil, err
		}
	}
	for _, g := range byName {
		warn("tables."+g.Table, "a guard trigger %s is installed, but the rules declare no anonymized_marker for %s; %s to remove it", g.Name, g.Table, run)
	}
	cfg.scoped(problems)
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Key < problems[j].Key })
	return problems, nil
}

// checkGuardEnabled warns about a guard trigger that is not enabled ALWAYS
// on the table or one of its partitions.
func checkGuardEnabled(ctx context.Context, conn *pgx.Conn, g Guard, warn func(string, string, ...any), key, run string) error {
	rows, err := conn.Query(ctx, guardStateSQL, pgx.Identifier{g.Schema, g.Rel}.Sanitize(), g.Name)
	if err != nil {
		return fmt.Errorf("reading the guard trigger of %s: %w", g.Table, err)
	}
	var rel, state string
	var root bool
	_, err = pgx.ForEachRow(rows, []any{&rel, &root, &state}, func() error {
		what := "the guard trigger " + g.Name
		if !root {
			what += " on partition " + rel
		}
		switch state {
		case "A":
		case "":
			warn(key, "%s is missing; %s", what, run)
		case "D":
			warn(key, "%s is disabled: anonymized rows can get their personal data back; %s", what, run)
		default:
			warn(key, "%s is enabled only for %s sessions, not ALWAYS: replication apply or restores can bypass it; %s", what, replicationRole(state), run)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the guard trigger of %s: %w", g.Table, err)
	}
	return nil
}

func replicationRole(tgenabled string) string {
	if tgenabled == "R" {
		return "replica"
	}
	return "origin and local"
}

// tableExists reports whether the guarded table exists.
func tableExists(ctx context.Context, conn *pgx.Conn, g Guard) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2)`, g.Schema, g.Rel).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("reading the catalog entry of %s: %w", g.Table, err)
	}
	return ok, nil
}

func configPath(cfg *Config) string {
	if cfg.Path == "" {
		return "FILE"
	}
	return cfg.Path
}
