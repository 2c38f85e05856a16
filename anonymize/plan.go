package anonymize

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/rules"
)

// Plan is the one SQL statement that performs, or previews, an ANONYMIZE.
type Plan struct {
	// SQL is the statement to send. Its parameters are the client's
	// ($1..$ClientParams), then the constants moved out of the WHERE
	// clause ($ClientParams+1...).
	SQL string
	// Params are the values of the moved constants, in text format and
	// parameter order. Send them with an unspecified type (OID 0): SQL
	// casts those that need a type.
	Params []string
	// ClientParams is the number of client parameters SQL takes: the
	// larger of the clientParams passed to Plan and Statement.ParamCount.
	ClientParams int
	// Explain is true for EXPLAIN ANONYMIZE. SQL then returns its rows for
	// the client as they are: (table text, key text, action text,
	// columns text), one row per row that would change, and changes
	// nothing. Otherwise SQL returns one row with one int8 column, the
	// number of rows of the named table it anonymized, which becomes the
	// command tag "ANONYMIZE n".
	Explain bool
	// Table is the named table, schema-qualified as in the rules: the
	// table whose rows the count of SQL counts.
	Table string
	// Tables are the tables SQL changes, schema-qualified as in the rules
	// (for a notice that names the tables to VACUUM).
	Tables []string
	// Report is, unless Explain, a statement doing what SQL does with the
	// same parameters, but returning one row per table of the cascade:
	// (table text, action text, rows int8), action being 'anonymize' or
	// 'delete', followed by a row (the named table, 'matched', n) where n
	// counts the distinct keys of the named table that the WHERE clause
	// matches, anonymized before or now. The command line uses it for
	// its summary.
	Report string
}

// target is one table of an ANONYMIZE: the named one or one reached
// through parent links.
type target struct {
	name          string // schema.table, as in the rules
	schema, table string
	rules         *rules.Table
	parent        *target
	cte           string   // the name of its common table expression
	columns       []string // columns with an anonymize strategy, sorted
}

// action is what the statement does to the target's rows: "anonymize",
// "delete", or "" when it only passes the cascade on to its children.
func (t *target) action() string {
	switch {
	case t.rules.OnAnonymize == "delete":
		return "delete"
	case len(t.columns) > 0 || t.rules.AnonymizedMarker != "":
		return "anonymize"
	}
	return ""
}

// Plan builds the one SQL statement that performs (or, for EXPLAIN,
// previews) the statement under the rules. clientParams is the number of
// parameters of the client's text; schemas is the session's search_path
// with "$user" resolved, used for an unqualified table name: the first
// schema in which the rules declare that name wins.
func (s *Statement) Plan(cfg *rules.Config, schemas []string, clientParams int) (*Plan, error) {
	if cfg == nil {
		return nil, errors.New("pgveil: ANONYMIZE needs the rules")
	}
	if s.where == nil {
		return nil, errors.New("pgveil: ANONYMIZE needs a WHERE clause (WHERE true for every row)")
	}
	root, err := resolve(cfg, s.Schema, s.Table, schemas)
	if err != nil {
		return nil, err
	}
	targets, err := cascade(cfg, root)
	if err != nil {
		return nil, err
	}
	first := max(clientParams, s.ParamCount, 0)
	if first > maxParams {
		return nil, fmt.Errorf("pgveil: ANONYMIZE has more than %d parameters and constants", maxParams)
	}
	where := proto.Clone(s.where).(*pg.Node)
	mover := constMover{next: first + 1}
	mover.move(where)
	if mover.next-1 > maxParams {
		return nil, fmt.Errorf("pgveil: ANONYMIZE has more than %d parameters and constants", maxParams)
	}
	cond, text, err := deparseWhere(root, s.Alias, where, s.version)
	if err != nil {
		return nil, err
	}
	if s.Schema == "" {
		cond = "(" + cond + ") AND " + samePath(root, s.Table)
	}
	g := generator{targets: targets, alias: s.Alias, cond: cond, text: text}
	p := &Plan{Params: mover.values, ClientParams: first, Explain: s.Explain, Table: root.name, Tables: g.changed()}
	if s.Explain {
		p.SQL = g.explainSQL()
	} else {
		p.SQL = g.runSQL(false)
		p.Report = g.runSQL(true)
	}
	if err := selfCheck(p); err != nil {
		return nil, err
	}
	return p, nil
}

// resolve finds the rules of the named table.
func resolve(cfg *rules.Config, schema, table string, schemas []string) (*target, error) {
	if schema != "" {
		name := schema + "." + table
		t := cfg.Tables[name]
		if t == nil || len(t.Key) == 0 {
			return nil, fmt.Errorf("pgveil: table %s is not declared in the rules (tables.%s with a key)", name, name)
		}
		return newTarget(name, t), nil
	}
	for _, sch := range schemas {
		name := sch + "." + table
		if t := cfg.Tables[name]; t != nil {
			if len(t.Key) == 0 {
				return nil, fmt.Errorf("pgveil: table %s is not declared in the rules with a key (tables.%s.key)", name, name)
			}
			return newTarget(name, t), nil
		}
	}
	return nil, fmt.Errorf("pgveil: table %s is not declared in the rules for any schema of the search_path (%s); declare tables.<schema>.%s with a key",
		table, strings.Join(schemas, ", "), table)
}

// newTarget makes the target for a table of the rules.
func newTarget(name string, t *rules.Table) *target {
	schema, table, _ := strings.Cut(name, ".")
	tg := &target{name: name, schema: schema, table: table, rules: t}
	for col, c := range t.Columns {
		if c != nil && c.Anonymize.Kind != rules.None {
			tg.columns = append(tg.columns, col)
		}
	}
	sort.Strings(tg.columns)
	return tg
}

// cascade returns root and every table reached from it through parent
// links, parents before children, each checked and given its CTE name.
func cascade(cfg *rules.Config, root *target) ([]*target, error) {
	names := make([]string, 0, len(cfg.Tables))
	for name := range cfg.Tables {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]bool{root.name: true}
	list := []*target{root}
	for i := 0; i < len(list); i++ {
		t := list[i]
		t.cte = fmt.Sprintf("pgveil_%d", i)
		if err := check(t); err != nil {
			return nil, err
		}
		for _, name := range names {
			c := cfg.Tables[name]
			if c == nil || c.Parent == nil || c.Parent.Table != t.name {
				continue
			}
			if seen[name] {
				return nil, fmt.Errorf("pgveil: the parent links of the rules form a cycle through %s; ANONYMIZE cannot follow them", name)
			}
			seen[name] = true
			child := newTarget(name, c)
			child.parent = t
			list = append(list, child)
		}
	}
	for _, t := range list {
		if t.action() != "" {
			return list, nil
		}
	}
	return nil, fmt.Errorf("pgveil: ANONYMIZE %s would change nothing: the rules give no column of it or of its children an anonymize strategy", root.name)
}

// check refuses a table that ANONYMIZE cannot handle safely.
func check(t *target) error {
	if len(t.rules.Key) == 0 && t.parent == nil {
		return fmt.Errorf("pgveil: table %s is not declared in the rules with a key (tables.%s.key)", t.name, t.name)
	}
	if len(t.rules.Key) == 0 {
		return fmt.Errorf("pgveil: table %s (reached from %s) needs a key in the rules (tables.%s.key)", t.name, t.parent.name, t.name)
	}
	for _, k := range t.rules.Key {
		if _, ok := t.rules.Columns[k]; ok {
			return fmt.Errorf("pgveil: %s.%s is both %s and a PII column; ANONYMIZE keeps and logs keys, so a key must not be personal data", t.name, k, t.rules.Key.Role("key"))
		}
	}
	if t.parent != nil && len(t.rules.Parent.Via) != len(t.parent.rules.Key) {
		return fmt.Errorf("pgveil: tables.%s.parent.via names %d columns, but the key of %s has %d", t.name, len(t.rules.Parent.Via), t.parent.name, len(t.parent.rules.Key))
	}
	for _, col := range t.columns {
		s := t.rules.Columns[col].Anonymize
		if s.Derived() {
			return fmt.Errorf("pgveil: %s.%s: %s derives from the original value; ANONYMIZE refuses it", t.name, col, s.Kind)
		}
		switch s.Kind {
		case rules.Redact, rules.Blank, rules.Nullify, rules.Text, rules.RandomEmail, rules.RandomID:
		default:
			return fmt.Errorf("pgveil: %s.%s: ANONYMIZE does not know the strategy %s", t.name, col, s.Kind)
		}
	}
	return nil
}

// samePath writes a condition, for an unqualified table name, that is
// true when the session's search_path still finds the table the rules
// were applied to, and that fails the statement otherwise (a session may
// have changed its search_path since the proxy last read it, so that the
// name now means another schema's table, another tenant's customers): an
// ANONYMIZE never changes rows of a table its text did not mean. The
// error names the path; current_setting keeps the planner from raising
// it before it knows the answer.
func samePath(root *target, table string) string {
	msg := fmt.Sprintf("pgveil: ANONYMIZE %s: this session's search_path finds another table than %s, which the rules were applied to; schema-qualify the table. search_path: ",
		table, root.name)
	return fmt.Sprintf("(CASE WHEN pg_catalog.to_regclass(%s) = %s::pg_catalog.regclass THEN true ELSE (%s || pg_catalog.current_setting('search_path'))::bool END)",
		rules.SQLLiteral(quoteIdent(table)), rules.SQLLiteral(qualified(root)), rules.SQLLiteral(msg))
}

// deparseWhere returns the text of the WHERE condition, to be used on
// the named table (with its alias), and the statement's text for the
// audit log: "ANONYMIZE schema.table WHERE ..." with parameters in place
// of constants.
func deparseWhere(root *target, alias string, where *pg.Node, version int32) (cond, text string, err error) {
	rv := &pg.RangeVar{Schemaname: root.schema, Relname: root.table, Inh: true, Relpersistence: "p", Location: -1}
	if alias != "" {
		rv.Alias = &pg.Alias{Aliasname: alias}
	}
	bare, err := deparseDelete(rv, nil, version)
	if err != nil {
		return "", "", err
	}
	full, err := deparseDelete(rv, where, version)
	if err != nil {
		return "", "", err
	}
	prefix := bare + " WHERE "
	if !strings.HasPrefix(full, prefix) || !strings.HasPrefix(full, deletePrefix) {
		return "", "", errors.New("pgveil: ANONYMIZE could not rewrite its WHERE clause")
	}
	return full[len(prefix):], "ANONYMIZE " + full[len(deletePrefix):], nil
}

// deparseDelete writes DELETE FROM rv [WHERE where] as SQL text; version
// is the parser's, which the deparser checks.
func deparseDelete(rv *pg.RangeVar, where *pg.Node, version int32) (string, error) {
	del := &pg.DeleteStmt{Relation: rv, WhereClause: where}
	tree := &pg.ParseResult{Version: version, Stmts: []*pg.RawStmt{{Stmt: &pg.Node{Node: &pg.Node_DeleteStmt{DeleteStmt: del}}}}}
	out, err := pg.Deparse(tree)
	if err != nil {
		return "", errors.New("pgveil: ANONYMIZE could not rewrite its WHERE clause")
	}
	return out, nil
}

// selfCheck parses the generated statements, so that a rewriting mistake
// is reported here rather than as a syntax error from the server.
func selfCheck(p *Plan) error {
	for _, sql := range []string{p.SQL, p.Report} {
		if sql == "" {
			continue
		}
		if _, err := pg.Parse(sql); err != nil {
			return errors.New("pgveil: ANONYMIZE built a statement that does not parse; please report this with the statement")
		}
	}
	return nil
}
