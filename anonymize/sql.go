package anonymize

import (
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rules"
)

// AuditTable is the table every ANONYMIZE appends its record to.
const AuditTable = "pgveil.anonymize_log"

// textTypes are the OIDs of the types that get the text of a strategy:
// text, varchar, bpchar and name get it as it is, json and jsonb as a
// JSON string. Every other type gets NULL.
const textTypes = "'{25,1043,1042,19,114,3802}'::pg_catalog.oid[]"

// generator writes the SQL of one plan.
type generator struct {
	targets []*target // the named table first, parents before children
	alias   string    // the named table's alias, "" when none
	cond    string    // the WHERE condition on the named table, constants moved to parameters
	text    string    // the statement for the audit log
}

// changed returns the names of the tables the statement changes.
func (g *generator) changed() []string {
	var names []string
	for _, t := range g.targets {
		if t.action() != "" {
			names = append(names, t.name)
		}
	}
	return names
}

// runSQL writes the statement that anonymizes: one CTE per table, the
// audit record, and a final SELECT of the count (or, for report, of the
// rows per table).
func (g *generator) runSQL(report bool) string {
	var b strings.Builder
	b.WriteString("WITH ")
	for _, t := range g.targets {
		b.WriteString(g.matched(t, ",\n"))
		fmt.Fprintf(&b, "%s(%s) AS (\n  %s),\n", t.cte, keyNames(t), g.change(t))
	}
	b.WriteString(g.audit())
	if report {
		b.WriteString(g.reportSelect())
	} else {
		fmt.Fprintf(&b, "SELECT pg_catalog.count(*) FROM %s", g.targets[0].cte)
	}
	return b.String()
}

// explainSQL writes the preview: the same row selection without changes,
// one output row per row that would change.
func (g *generator) explainSQL() string {
	var b strings.Builder
	b.WriteString("WITH ")
	for i, t := range g.targets {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString(g.matched(t, ",\n"))
		fmt.Fprintf(&b, "%s(%s) AS (\n  SELECT %s FROM %s WHERE %s)", t.cte, keyNames(t), keyList(t.rules.Key), g.from(t), g.pred(t))
	}
	b.WriteString("\nSELECT \"table\", \"key\", \"action\", \"columns\" FROM (")
	n := 0
	for i, t := range g.targets {
		if t.action() == "" {
			continue
		}
		if n > 0 {
			b.WriteString("\n  UNION ALL")
		}
		n++
		fmt.Fprintf(&b, "\n  SELECT %d AS o, pg_catalog.row_number() OVER (ORDER BY %s) AS n, %s::text AS \"table\", %s::text AS \"key\", %s::text AS \"action\", %s::text AS \"columns\" FROM %s",
			i, keyNames(t), rules.SQLLiteral(t.name), keyJSON(t), rules.SQLLiteral(t.action()), changedColumns(t), t.cte)
	}
	b.WriteString("\n) AS r ORDER BY o, n")
	return b.String()
}

// change writes the body of a table's CTE: UPDATE or DELETE returning the
// key, or a SELECT of the keys for a table that only passes the cascade on.
func (g *generator) change(t *target) string {
	key := keyList(t.rules.Key)
	switch t.action() {
	case "delete":
		return fmt.Sprintf("DELETE FROM %s WHERE %s RETURNING %s", g.from(t), g.pred(t), key)
	case "anonymize":
		return fmt.Sprintf("UPDATE %s SET %s\n  WHERE %s RETURNING %s", g.from(t), setList(t), g.pred(t), key)
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s", key, g.from(t), g.pred(t))
}

// from writes the table reference, with the alias for the named table.
func (g *generator) from(t *target) string {
	if t == g.targets[0] && g.alias != "" {
		return qualified(t) + " AS " + quoteIdent(g.alias)
	}
	return qualified(t)
}

// pred writes the condition choosing the rows a table's CTE changes:
// those its base condition matches, less the rows already anonymized
// (marker set; without a marker, every anonymize column holding what its
// strategy writes).
func (g *generator) pred(t *target) string {
	p := g.base(t)
	if m := t.rules.AnonymizedMarker; m != "" && t.action() != "delete" {
		p += " AND " + quoteIdent(m) + " IS NULL"
	}
	if skipsDone(t) {
		p += " AND NOT (" + alreadyDone(t) + ")"
	}
	return p
}

// base writes the condition choosing a table's rows: the statement's
// WHERE for the named table, the parent's keys for a child.
func (g *generator) base(t *target) string {
	if t.parent == nil {
		return "(" + g.cond + ")"
	}
	via := t.rules.Parent.Via
	if len(via) == 1 {
		return fmt.Sprintf("%s = ANY (ARRAY(SELECT k FROM %s))", quoteIdent(via[0]), passOn(t.parent))
	}
	return fmt.Sprintf("(%s) IN (SELECT %s FROM %s)", keyList(via), keyNames(t.parent), passOn(t.parent))
}

// skipsDone reports whether a table without a marker skips the rows whose
// anonymize columns already hold what the strategies write.
func skipsDone(t *target) bool {
	return t.rules.AnonymizedMarker == "" && t.action() == "anonymize" && len(t.columns) > 0
}

// passOn names the CTE whose keys a table passes on to its children: the
// keys it changed, or, for a table that skips rows already holding what
// ANONYMIZE writes, every key it matched, so that a child row added since
// the last run is still reached. (A table with a marker does not cascade
// from rows anonymized before.)
func passOn(t *target) string {
	if skipsDone(t) {
		return t.cte + "_m"
	}
	return t.cte
}

// matched writes, followed by sep, the CTE of every key a table matches
// when its children cascade from it (see passOn); "" when they need none.
func (g *generator) matched(t *target, sep string) string {
	if passOn(t) == t.cte || !g.hasChildren(t) {
		return ""
	}
	return fmt.Sprintf("%s(%s) AS (\n  SELECT %s FROM %s WHERE %s)%s", passOn(t), keyNames(t), keyList(t.rules.Key), g.from(t), g.base(t), sep)
}

func (g *generator) hasChildren(t *target) bool {
	for _, c := range g.targets {
		if c.parent == t {
			return true
		}
	}
	return false
}

// alreadyDone writes a condition true when every anonymize column of the
// row holds what its strategy writes: NULL, the fixed text (compared as
// text, which json has no equality for), an address of random_email, or
// an id of random_id.
func alreadyDone(t *target) string {
	var parts []string
	for _, col := range t.columns {
		c := quoteIdent(col)
		switch s := t.rules.Columns[col].Anonymize; s.Kind {
		case rules.RandomEmail:
			parts = append(parts, fmt.Sprintf("CASE WHEN (SELECT %s) THEN COALESCE(%s::text LIKE %s::text, false) ELSE %s IS NULL END",
				isText(t, col), c, asColumn(t, col, "'anon-%@anonymized.invalid'"), c))
		case rules.RandomID:
			parts = append(parts, fmt.Sprintf("CASE WHEN (SELECT %s) THEN COALESCE(pg_catalog.btrim(%s::text, '\"') ~ %s, false) WHEN (SELECT %s) THEN false ELSE %s IS NULL END",
				isText(t, col), c, rules.SQLLiteral(randomIDPattern), isUUID(t, col), c))
		case rules.Nullify:
			parts = append(parts, c+" IS NULL")
		default:
			parts = append(parts, fmt.Sprintf("%s::text IS NOT DISTINCT FROM %s::text", c, strategyExpr(t, col, s)))
		}
	}
	return strings.Join(parts, " AND ")
}

// setList writes the SET list of a table's UPDATE.
func setList(t *target) string {
	var parts []string
	for _, col := range t.columns {
		parts = append(parts, quoteIdent(col)+" = "+strategyExpr(t, col, t.rules.Columns[col].Anonymize))
	}
	if m := t.rules.AnonymizedMarker; m != "" {
		parts = append(parts, quoteIdent(m)+" = pg_catalog.now()")
	}
	return strings.Join(parts, ",\n    ")
}

// strategyExpr writes the new value of a column. None depends on the
// old value: the column is named only to learn its type.
func strategyExpr(t *target, col string, s rules.Strategy) string {
	switch s.Kind {
	case rules.Redact:
		return constantExpr(t, col, "'***'")
	case rules.Blank:
		return constantExpr(t, col, "''")
	case rules.Text:
		return constantExpr(t, col, rules.SQLLiteral(s.Text))
	case rules.RandomEmail:
		return fmt.Sprintf("CASE WHEN (SELECT %s) THEN %s END", isText(t, col),
			asColumn(t, col, "'anon-' || pg_catalog.gen_random_uuid() || '@anonymized.invalid'"))
	case rules.RandomID:
		return fmt.Sprintf("CASE WHEN (SELECT %s) THEN %s WHEN (SELECT %s) THEN %s END", isText(t, col),
			asColumn(t, col, "'anon-' || pg_catalog.gen_random_uuid()"), isUUID(t, col),
			asColumn(t, col, "pg_catalog.gen_random_uuid()::text"))
	}
	return "NULL"
}

// constantExpr writes a constant text for the column: the text converted
// to the column's type when that is a text or JSON type, else NULL. It is
// an uncorrelated subquery, which the server evaluates once.
func constantExpr(t *target, col, literal string) string {
	return fmt.Sprintf("(SELECT %s WHERE %s)", asColumn(t, col, literal), isText(t, col))
}

// asColumn writes an expression converting a text expression to the
// column's type, whatever that is, by populating a record of the table's
// row type.
func asColumn(t *target, col, text string) string {
	return fmt.Sprintf("(pg_catalog.jsonb_populate_record(NULL::%s, pg_catalog.jsonb_build_object(%s, %s))).%s",
		qualified(t), rules.SQLLiteral(col), text, quoteIdent(col))
}

// isText writes a condition true when the column's type takes text.
func isText(t *target, col string) string {
	return fmt.Sprintf("pg_catalog.pg_typeof((NULL::%s).%s)::pg_catalog.oid = ANY (%s)", qualified(t), quoteIdent(col), textTypes)
}

// isUUID writes a condition true when the column is a uuid.
func isUUID(t *target, col string) string {
	return fmt.Sprintf("pg_catalog.pg_typeof((NULL::%s).%s)::pg_catalog.oid = 2950", qualified(t), quoteIdent(col))
}

// randomIDPattern matches exactly what random_id writes to a text column.
// A uuid column cannot tell a random_id from the original value, so a
// table without a marker anonymizes such rows again.
const randomIDPattern = "^anon-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

// changedColumns writes the EXPLAIN list of the columns a row change sets.
func changedColumns(t *target) string {
	if t.action() == "delete" {
		return "NULL"
	}
	cols := t.columns
	if m := t.rules.AnonymizedMarker; m != "" {
		cols = append(cols[:len(cols):len(cols)], m)
	}
	return rules.SQLLiteral(strings.Join(cols, ", "))
}

// audit writes the CTE appending the audit record.
func (g *generator) audit() string {
	return fmt.Sprintf("pgveil_audit AS (\n  INSERT INTO %s (logged_at, login_role, table_name, anonymized, deleted, statement)\n"+
		"  SELECT pg_catalog.now(), session_user, %s,\n    %s,\n    %s,\n    %s)\n",
		AuditTable, rules.SQLLiteral(g.targets[0].name), g.keysObject("anonymize"), g.keysObject("delete"), rules.SQLLiteral(g.text))
}

// keysObject writes a jsonb object mapping each table with the given
// action to the array of its keys changed.
func (g *generator) keysObject(action string) string {
	var parts []string
	for _, t := range g.targets {
		if t.action() == action {
			parts = append(parts, fmt.Sprintf("pg_catalog.jsonb_build_object(%s, (SELECT COALESCE(pg_catalog.jsonb_agg(%s ORDER BY %s), '[]'::jsonb) FROM %s))",
				rules.SQLLiteral(t.name), keyJSON(t), keyNames(t), t.cte))
		}
	}
	if len(parts) == 0 {
		return "'{}'::jsonb"
	}
	return strings.Join(parts, "\n    || ")
}

// reportSelect writes the final SELECT of a report: rows per table, then
// the keys of the named table that the WHERE clause matches.
func (g *generator) reportSelect() string {
	var b strings.Builder
	for _, t := range g.targets {
		if t.action() != "" {
			fmt.Fprintf(&b, "SELECT %s::text, %s::text, pg_catalog.count(*) FROM %s\nUNION ALL ", rules.SQLLiteral(t.name), rules.SQLLiteral(t.action()), t.cte)
		}
	}
	root := g.targets[0]
	distinct := keyList(root.rules.Key)
	if len(root.rules.Key) > 1 {
		distinct = "(" + distinct + ")"
	}
	fmt.Fprintf(&b, "SELECT %s, 'matched', (SELECT pg_catalog.count(DISTINCT %s) FROM %s WHERE (%s))",
		rules.SQLLiteral(root.name), distinct, g.from(root), g.cond)
	return b.String()
}

// keyList writes columns as a quoted, comma-separated list.
func keyList(cols rules.Columns) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}

// keyNames writes the column names of a target's CTEs, which hold its
// key: k for a one-column key, k1, k2, ... for a composite one.
func keyNames(t *target) string {
	if len(t.rules.Key) == 1 {
		return "k"
	}
	names := make([]string, len(t.rules.Key))
	for i := range names {
		names[i] = fmt.Sprintf("k%d", i+1)
	}
	return strings.Join(names, ", ")
}

// keyJSON writes a key of a target's CTE as the audit log and EXPLAIN
// ANONYMIZE show it: the value for a one-column key, a jsonb array of the
// values for a composite one.
func keyJSON(t *target) string {
	if len(t.rules.Key) == 1 {
		return "k"
	}
	return "pg_catalog.jsonb_build_array(" + keyNames(t) + ")"
}

// qualified writes a target's schema-qualified, quoted name.
func qualified(t *target) string {
	return quoteIdent(t.schema) + "." + quoteIdent(t.table)
}

// quoteIdent quotes an identifier unless it reads the same bare: lower
// case letters, digits and underscores, and no keyword but an unreserved
// one (as PostgreSQL's quote_ident decides).
func quoteIdent(s string) string {
	if bareIdent(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// bareIdent reports whether s needs no quotes.
func bareIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	res, err := pg.Scan(s)
	return err == nil && len(res.Tokens) == 1 && res.Tokens[0].KeywordKind <= pg.KeywordKind_UNRESERVED_KEYWORD
}
