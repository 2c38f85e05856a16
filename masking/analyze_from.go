package masking

import (
	"fmt"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rules"
)

// from analyses a FROM list into sc. Every entry sees the entries before
// it (LATERAL, and functions in FROM, which are implicitly lateral).
func (a *analyzer) from(list []*pg.Node, sc *scope) {
	for _, n := range list {
		sc.top = append(sc.top, a.fromItem(n, sc))
	}
}

// fromItem analyses one FROM entry, registers its names in sc and returns
// its columns as a * over it sees them.
func (a *analyzer) fromItem(n *pg.Node, sc *scope) *item {
	var it *item
	switch x := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		it = a.rangeVar(x.RangeVar, sc)
	case *pg.Node_RangeSubselect:
		out := a.query(x.RangeSubselect.GetSubquery(), sc)
		it = out.withAlias("", x.RangeSubselect.GetAlias())
	case *pg.Node_RangeFunction:
		it = a.rangeFunction(x.RangeFunction, sc)
	case *pg.Node_JoinExpr:
		return a.join(x.JoinExpr, sc)
	case *pg.Node_RangeTableFunc:
		it = a.xmlTable(x.RangeTableFunc, sc)
	case *pg.Node_JsonTable:
		it = a.jsonTable(x.JsonTable, sc)
	case *pg.Node_RangeTableSample:
		s := x.RangeTableSample
		for _, arg := range append(append([]*pg.Node{}, s.GetArgs()...), s.GetRepeatable()) {
			a.limit(arg, sc, "TABLESAMPLE") // the sample's size follows its arguments
		}
		return a.fromItem(s.GetRelation(), sc)
	default:
		a.unsupported(n)
	}
	sc.items = append(sc.items, it)
	return it
}

// rangeVar resolves a relation name: a WITH query, else the catalog.
func (a *analyzer) rangeVar(rv *pg.RangeVar, sc *scope) *item {
	name := rv.GetRelname()
	if rv.GetSchemaname() == "" {
		if c := sc.cte(name); c != nil {
			return c.withAlias(name, rv.GetAlias())
		}
	}
	rel := a.relation(rv.GetSchemaname(), name)
	if rel == nil {
		// No such relation: the server raises the error.
		return (&item{}).withAlias(name, rv.GetAlias())
	}
	it := a.relationItem(rel).withAlias(rel.Name, rv.GetAlias())
	if rv.GetAlias() == nil {
		it.schema = rel.Schema
	}
	return it
}

// statsRelations expose sampled column values; masked roles may not read
// them whatever the column.
var statsRelations = map[string]bool{
	"pg_stats": true, "pg_statistic": true, "pg_stats_ext": true,
	"pg_stats_ext_exprs": true, "pg_statistic_ext_data": true,
}

// relation looks a relation up, refusing the statistics catalogs.
func (a *analyzer) relation(schema, name string) *Relation {
	a.refuseStats(schema, name)
	a.st.resolved = true
	rel, err := a.cat.Relation(schema, name)
	if err != nil {
		a.catalogError(err)
	}
	if rel != nil {
		a.refuseStats(rel.Schema, rel.Name)
	}
	return rel
}

func (a *analyzer) refuseStats(schema, name string) {
	if statsRelations[name] && (schema == "" || schema == "pg_catalog") {
		a.refuse("reading pg_catalog."+name, "it holds sampled column values")
	}
}

// relationItem gives a relation's columns with their lineage: the PII rule
// of each column, and for a view what its definition computes. A view is
// analysed once per statement.
func (a *analyzer) relationItem(rel *Relation) *item {
	key := rel.Schema + "." + rel.Name
	e, ok := a.st.relations[key]
	if ok {
		a.read(e.reads)
	} else {
		e.reads = a.readsDuring(func() { e.it = a.columnsOf(rel) })
		a.st.relations[key] = e
	}
	return e.it.renamed(e.it.alias, nil)
}

// columnsOf builds the item of a relation.
func (a *analyzer) columnsOf(rel *Relation) *item {
	it := &item{alias: rel.Name, schema: rel.Schema}
	for _, c := range rel.Columns {
		it.cols = append(it.cols, column{name: c.Name, lin: columnLineage(rel, c)})
	}
	if rel.Kind == 'v' || rel.Kind == 'm' {
		a.viewLineage(rel, it)
	}
	for i, c := range it.cols {
		if c.lin.pii() && i < len(rel.Columns) {
			a.origin(rel.OID, rel.Columns[i].Attnum, c.lin)
		}
	}
	return it
}

// activityColumns are the columns of the statistics views that show the
// text of other sessions' queries, literals included: they are masked like
// PII (redacted) whatever the rules say.
var activityColumns = map[string]string{"pg_stat_activity": "query", "pg_stat_statements": "query"}

var redactRule = &rules.Column{Mask: rules.Strategy{Kind: rules.Redact}}

func columnLineage(rel *Relation, c Column) lineage {
	if activityColumns[rel.Name] == c.Name && c.PII == nil && (rel.Name != "pg_stat_activity" || rel.Schema == "pg_catalog") {
		return piiColumn(rel.Schema+"."+rel.Name+"."+c.Name, redactRule)
	}
	if c.PII == nil {
		return lineage{}
	}
	src := c.Source
	if src == "" {
		src = rel.Schema + "." + rel.Name + "." + c.Name
	}
	return piiColumn(src, c.PII)
}

func (a *analyzer) origin(table uint32, attnum int16, l lineage) {
	key := [2]int64{int64(table), int64(attnum)}
	o := a.st.origins[key]
	o.Table, o.Attnum = table, attnum
	o.Sources = unionSorted(o.Sources, l.sources)
	a.st.origins[key] = o
}

// viewLineage analyses a view's definition and adds what each output
// derives from to the view's columns, by position.
func (a *analyzer) viewLineage(rel *Relation, it *item) {
	if a.views >= a.opt.MaxViewDepth {
		a.refuse(fmt.Sprintf("reading views nested deeper than %d", a.opt.MaxViewDepth), "")
	}
	tree, err := pg.Parse(rel.ViewSQL)
	stmts := tree.GetStmts()
	if err != nil || len(stmts) != 1 {
		a.refuse("reading view "+rel.Schema+"."+rel.Name, "pgveil cannot read its definition")
	}
	a.views++
	outer := a.cat
	if v, ok := a.cat.(viewCatalog); ok {
		a.cat = v.ForViews() // the definition names relations for its own path
	}
	out := a.query(stmts[0].GetStmt(), nil)
	a.cat = outer
	a.views--
	if out.open || len(out.cols) != len(it.cols) {
		all := out.all()
		for i := range it.cols {
			it.cols[i].lin = derive(it.cols[i].lin, all)
		}
		return
	}
	for i := range it.cols {
		it.cols[i].lin = either(it.cols[i].lin, out.cols[i].lin)
	}
}

// join analyses a JOIN. Its own columns are the merged USING/NATURAL
// columns, then the others of each side, as * expands them.
func (a *analyzer) join(j *pg.JoinExpr, sc *scope) *item {
	left := a.fromItem(j.GetLarg(), sc)
	right := a.fromItem(j.GetRarg(), sc)
	names := usingNames(j, left, right)
	merged := map[string]bool{}
	out := &item{open: left.open || right.open, openLin: derive(left.openLin, right.openLin)}
	for _, name := range names {
		ll, _ := left.find(name)
		rl, _ := right.find(name)
		if l := derive(ll, rl); l.pii() && a.views == 0 {
			a.refuseOn(joinKind(j), a.read(l), "")
		}
		merged[name] = true
		out.cols = append(out.cols, column{name: name, lin: merge(ll, rl)})
	}
	for _, side := range []*item{left, right} {
		for _, c := range side.cols {
			if !merged[c.name] {
				out.cols = append(out.cols, c)
			}
		}
	}
	a.pred(j.GetQuals(), sc, "JOIN ... ON")
	if al := j.GetJoinUsingAlias(); al != nil {
		sc.items = append(sc.items, &item{alias: al.GetAliasname(), cols: out.cols[:len(names)]})
	}
	if j.GetAlias() != nil {
		out = out.withAlias("", j.GetAlias())
		sc.items = append(sc.items, out)
	}
	return out
}

func joinKind(j *pg.JoinExpr) string {
	if j.GetIsNatural() {
		return "NATURAL JOIN"
	}
	return "JOIN ... USING"
}

// usingNames lists the merged columns of a USING or NATURAL join.
func usingNames(j *pg.JoinExpr, left, right *item) []string {
	var names []string
	for _, n := range j.GetUsingClause() {
		names = append(names, n.GetString_().GetSval())
	}
	if !j.GetIsNatural() {
		return names
	}
	for _, c := range left.cols {
		if _, ok := right.find(c.name); ok {
			names = append(names, c.name)
		}
	}
	return names
}

// rangeFunction analyses functions in FROM (ROWS FROM too). Every column
// derives from all the arguments of its function; the columns are known
// for the common set-returning functions and column definition lists,
// else the entry is open.
func (a *analyzer) rangeFunction(rf *pg.RangeFunction, sc *scope) *item {
	it := &item{}
	alias := ""
	for _, f := range rf.GetFunctions() {
		parts := f.GetList().GetItems()
		if len(parts) == 0 {
			continue
		}
		l := a.value(parts[0], sc)
		var defs []*pg.Node
		if len(parts) > 1 {
			defs = parts[1].GetList().GetItems()
		}
		if len(defs) == 0 && len(rf.GetFunctions()) == 1 {
			defs = rf.GetColdeflist()
		}
		name := funcCallName(parts[0])
		if alias == "" {
			alias = name
		}
		a.functionColumns(it, name, a.functionColumnNames(name, parts[0], sc), defs, rf.GetAlias(), l)
	}
	if rf.GetOrdinality() {
		it.cols = append(it.cols, column{name: "ordinality"})
	}
	return it.withAlias(alias, rf.GetAlias())
}

// functionColumns adds the columns one function in FROM returns.
func (a *analyzer) functionColumns(it *item, name string, names []string, defs []*pg.Node, al *pg.Alias, l lineage) {
	l = derive(l)
	if len(defs) > 0 {
		for _, d := range defs {
			it.cols = append(it.cols, column{name: d.GetColumnDef().GetColname(), lin: l})
		}
		return
	}
	if names == nil {
		it.open = true
		it.openLin = derive(it.openLin, l)
		return
	}
	if len(names) == 1 && names[0] == "" {
		names[0] = name
		if al != nil {
			names[0] = al.GetAliasname()
		}
	}
	for _, n := range names {
		it.cols = append(it.cols, column{name: n, lin: l})
	}
}

// functionColumnNames gives the result columns of well-known functions in
// FROM ("" is the single column named after the entry), nil when unknown.
func (a *analyzer) functionColumnNames(name string, call *pg.Node, sc *scope) []string {
	switch name {
	case "generate_series", "generate_subscripts", "regexp_matches", "regexp_split_to_table",
		"string_to_table", "json_array_elements", "json_array_elements_text",
		"jsonb_array_elements", "jsonb_array_elements_text", "json_object_keys",
		"jsonb_object_keys", "jsonb_path_query", "jsonb_path_query_tz":
		return []string{""}
	case "json_each", "json_each_text", "jsonb_each", "jsonb_each_text":
		return []string{"key", "value"}
	case "unnest":
		args := call.GetFuncCall().GetArgs()
		if len(args) == 1 && args[0].GetAArrayExpr() != nil && !a.rowArray(args[0], sc) {
			return []string{""}
		}
	}
	return nil
}

// rowArray reports whether an ARRAY[...] may hold row values (whose unnest
// has one column per field).
func (a *analyzer) rowArray(n *pg.Node, sc *scope) bool {
	for _, e := range n.GetAArrayExpr().GetElements() {
		if a.isRow(e, sc) {
			return true
		}
	}
	return false
}

// isRow reports whether n may be a row value: ROW(...), a whole-row
// reference (c, c.*), or anything the analyser cannot tell from a scalar
// but a plain column reference or a constant.
func (a *analyzer) isRow(n *pg.Node, sc *scope) bool {
	switch x := n.GetNode().(type) {
	case *pg.Node_AConst, *pg.Node_ParamRef, *pg.Node_TypeCast:
		return false
	case *pg.Node_ColumnRef:
		fields := x.ColumnRef.GetFields()
		last := lastNode(fields)
		if len(fields) == 0 || last.GetAStar() != nil {
			return true
		}
		if len(fields) == 1 {
			_, isColumn := sc.column(last.GetString_().GetSval())
			return !isColumn
		}
		for _, it := range a.qualified(fields[:len(fields)-1], sc) {
			if _, ok := it.find(last.GetString_().GetSval()); !ok {
				return true
			}
		}
		return false
	}
	return true
}

// funcCallName is the unqualified name of a function call node.
func funcCallName(n *pg.Node) string {
	_, name := funcName(n.GetFuncCall().GetFuncname())
	return name
}

// xmlTable analyses XMLTABLE. Its row pattern selects rows by content, so
// the document may not be PII-derived.
func (a *analyzer) xmlTable(t *pg.RangeTableFunc, sc *scope) *item {
	doc := a.value(t.GetDocexpr(), sc)
	if doc.pii() && a.views == 0 {
		a.refuseOn("XMLTABLE", doc, "")
	}
	l := derive(doc, a.value(t.GetRowexpr(), sc))
	for _, ns := range t.GetNamespaces() {
		a.value(ns, sc)
	}
	it := &item{}
	for _, n := range t.GetColumns() {
		c := n.GetRangeTableFuncCol()
		cl := derive(l, a.value(c.GetColexpr(), sc), a.value(c.GetColdefexpr(), sc))
		it.cols = append(it.cols, column{name: c.GetColname(), lin: cl})
	}
	return it.withAlias("xmltable", t.GetAlias())
}

// jsonTable analyses JSON_TABLE. Its paths filter rows by content, so the
// context item and the PASSING values may not be PII-derived.
func (a *analyzer) jsonTable(t *pg.JsonTable, sc *scope) *item {
	ctx := a.value(&pg.Node{Node: &pg.Node_JsonValueExpr{JsonValueExpr: t.GetContextItem()}}, sc)
	for _, p := range t.GetPassing() {
		ctx = derive(ctx, a.value(p, sc))
	}
	if ctx.pii() && a.views == 0 {
		a.refuseOn("JSON_TABLE", ctx, "")
	}
	it := &item{}
	a.jsonTableColumns(t.GetColumns(), ctx, sc, it)
	return it.withAlias("json_table", t.GetAlias())
}

func (a *analyzer) jsonTableColumns(cols []*pg.Node, l lineage, sc *scope, it *item) {
	for _, n := range cols {
		c := n.GetJsonTableColumn()
		if len(c.GetColumns()) > 0 {
			a.jsonTableColumns(c.GetColumns(), l, sc, it)
			continue
		}
		for _, part := range children(n) {
			l = derive(l, a.value(part, sc))
		}
		it.cols = append(it.cols, column{name: c.GetName(), lin: derive(l)})
	}
}
