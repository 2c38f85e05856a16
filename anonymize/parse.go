package anonymize

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
	pgparser "github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Statement is one parsed ANONYMIZE or EXPLAIN ANONYMIZE statement. It is
// not changed by Plan, so one Statement may be planned many times and
// from several goroutines.
type Statement struct {
	// Explain is true for EXPLAIN ANONYMIZE: a preview that changes nothing.
	Explain bool
	// Schema and Table name the table as written, folded to lower case
	// unless quoted. Schema is "" for an unqualified name.
	Schema, Table string
	// Alias is the table's alias ("" when none), which the WHERE clause
	// may use.
	Alias string
	// ParamCount is the highest $n the statement uses (0 when none). The
	// client must send at least that many parameter values.
	ParamCount int

	where   *pg.Node // the WHERE clause; never changed after Parse
	version int32    // the parse tree's version, for the deparser
}

// deletePrefix turns the text after the ANONYMIZE keyword into a DELETE
// statement, whose grammar (a table, an alias, a WHERE clause) is the one
// ANONYMIZE takes.
const deletePrefix = "DELETE FROM "

// Parse parses a query text holding exactly one ANONYMIZE or EXPLAIN
// ANONYMIZE statement (a trailing ';' is fine). Its errors name the
// problem and never quote a constant of the text.
func Parse(sql string) (*Statement, error) {
	h, ok := readHead(sql)
	switch {
	case !ok:
		return nil, errors.New("pgveil: not an ANONYMIZE statement")
	case h.options:
		return nil, errors.New("pgveil: EXPLAIN ANONYMIZE takes no options: it lists the rows ANONYMIZE would change and changes nothing")
	}
	rest := sql[h.rest:]
	if strings.IndexByte(rest, 0) >= 0 {
		return nil, errors.New("pgveil: ANONYMIZE: the text holds a NUL byte")
	}
	if skipBlank(rest, 0) == len(rest) {
		return nil, errors.New("pgveil: ANONYMIZE needs a table and a WHERE clause: ANONYMIZE <table> WHERE <condition>")
	}
	tree, err := pg.Parse(deletePrefix + rest)
	if err != nil {
		return nil, parseError(err, sql[:h.rest])
	}
	if len(tree.Stmts) != 1 {
		return nil, errors.New("pgveil: ANONYMIZE must be the only statement of its query")
	}
	del := tree.Stmts[0].Stmt.GetDeleteStmt()
	if err := checkShape(del); err != nil {
		return nil, err
	}
	rv := del.Relation
	st := &Statement{Explain: h.explain, Schema: rv.Schemaname, Table: rv.Relname, where: del.WhereClause, version: tree.Version}
	if rv.Alias != nil {
		st.Alias = rv.Alias.Aliasname
	}
	high, low := paramRange(del.WhereClause)
	if low < 1 || high > maxParams {
		return nil, fmt.Errorf("pgveil: ANONYMIZE: parameters are numbered from $1 to $%d", maxParams)
	}
	st.ParamCount = high
	return st, nil
}

// checkShape refuses the parts of DELETE's grammar that ANONYMIZE does not
// take.
func checkShape(del *pg.DeleteStmt) error {
	switch {
	case del == nil:
		return errors.New("pgveil: ANONYMIZE takes a table and a WHERE clause: ANONYMIZE <table> WHERE <condition>")
	case del.Relation.Catalogname != "":
		return errors.New("pgveil: ANONYMIZE takes schema.table, not a database name")
	case !del.Relation.Inh:
		return errors.New("pgveil: ANONYMIZE does not take ONLY: it always covers partitions")
	case len(del.UsingClause) > 0:
		return errors.New("pgveil: ANONYMIZE does not take USING; use a subquery in the WHERE clause")
	case len(del.ReturningList) > 0:
		return errors.New("pgveil: ANONYMIZE does not take RETURNING; EXPLAIN ANONYMIZE lists the rows")
	case del.WhereClause == nil:
		return errors.New("pgveil: ANONYMIZE needs a WHERE clause (WHERE true for every row)")
	case del.WhereClause.GetCurrentOfExpr() != nil:
		return errors.New("pgveil: ANONYMIZE does not take WHERE CURRENT OF")
	}
	return nil
}

// parseError rewrites a parser error for the original text: the position
// is counted in the user's text, and the "at or near" part, which can
// quote a constant, is left out.
func parseError(err error, before string) error {
	var pe *pgparser.Error
	if !errors.As(err, &pe) {
		return fmt.Errorf("pgveil: ANONYMIZE: %w", err)
	}
	msg := pe.Message
	if i := strings.IndexAny(msg, `"'`); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), " at or near"))
	if pe.Cursorpos > len(deletePrefix) && !strings.HasSuffix(msg, "end of input") {
		pos := pe.Cursorpos - len(deletePrefix) + utf8.RuneCountInString(before)
		return fmt.Errorf("pgveil: ANONYMIZE: %s at character %d", msg, pos)
	}
	return fmt.Errorf("pgveil: ANONYMIZE: %s", msg)
}

// maxParams is the most parameters the protocol can bind.
const maxParams = 65535

// paramRange returns the highest and lowest $n in the tree below n (0 and
// 1 when there is none).
func paramRange(n *pg.Node) (high, low int) {
	low = 1
	walkTree(n, func(_ protoreflect.Message, _ protoreflect.Name, _ int, c *pg.Node) bool {
		if p := c.GetParamRef(); p != nil {
			high = max(high, int(p.Number))
			low = min(low, int(p.Number))
		}
		return true
	})
	return high, low
}

// walkTree calls visit for n and every Node below it, depth first, as
// walkNodes does; n itself is visited with a nil parent.
func walkTree(n *pg.Node, visit func(parent protoreflect.Message, field protoreflect.Name, index int, n *pg.Node) bool) {
	walkChild(nil, "", 0, n.ProtoReflect(), visit)
}

// walkNodes calls visit for every Node below m, depth first, with the
// message and field holding it (and its index in a list field). Where
// visit returns false the walk does not descend into that Node. It never
// descends into TypeName, whose constants (type modifiers) are part of
// the type and not values.
func walkNodes(m protoreflect.Message, visit func(parent protoreflect.Message, field protoreflect.Name, index int, n *pg.Node) bool) {
	if _, ok := m.Interface().(*pg.TypeName); ok {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		if !fd.IsList() {
			walkChild(m, fd.Name(), 0, v.Message(), visit)
			return true
		}
		l := v.List()
		for i := 0; i < l.Len(); i++ {
			walkChild(m, fd.Name(), i, l.Get(i).Message(), visit)
		}
		return true
	})
}

// walkChild visits one child message of parent and walks below it.
func walkChild(parent protoreflect.Message, field protoreflect.Name, index int, m protoreflect.Message,
	visit func(protoreflect.Message, protoreflect.Name, int, *pg.Node) bool) {
	if n, ok := m.Interface().(*pg.Node); ok && !visit(parent, field, index, n) {
		return
	}
	walkNodes(m, visit)
}
