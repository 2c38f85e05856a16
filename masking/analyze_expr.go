package masking

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// value analyses an expression and returns its lineage. Rules that hold in
// every position (CASE conditions, comparisons inside NULLIF and GREATEST,
// functions with side effects, casts that can fail, set-returning
// functions) are checked here; the caller checks what its position forbids.
func (a *analyzer) value(n *pg.Node, sc *scope) lineage {
	a.step()
	switch x := n.GetNode().(type) {
	case nil:
		return lineage{}
	case *pg.Node_ColumnRef:
		return a.read(a.columnRef(x.ColumnRef, sc))
	case *pg.Node_AConst, *pg.Node_ParamRef, *pg.Node_SqlvalueFunction, *pg.Node_SetToDefault,
		*pg.Node_CurrentOfExpr, *pg.Node_MergeSupportFunc, *pg.Node_AStar:
		return lineage{}
	case *pg.Node_FuncCall:
		return a.funcCall(x.FuncCall, sc)
	case *pg.Node_AExpr:
		return a.aExpr(x.AExpr, sc)
	case *pg.Node_TypeCast:
		return a.typeCast(x.TypeCast, sc)
	case *pg.Node_SubLink:
		return a.subLink(x.SubLink, sc)
	case *pg.Node_CaseExpr:
		return a.caseExpr(x.CaseExpr, sc)
	case *pg.Node_MinMaxExpr:
		return a.minMax(x.MinMaxExpr, sc)
	case *pg.Node_NullTest:
		return a.nullTest(a.value(x.NullTest.GetArg(), sc))
	case *pg.Node_GroupingFunc:
		a.values(x.GroupingFunc.GetArgs(), sc)
		return lineage{}
	case *pg.Node_AIndirection:
		return a.indirection(x.AIndirection, sc)
	case *pg.Node_SelectStmt:
		return derive(a.query(n, sc).all())
	case *pg.Node_JsonObjectAgg:
		return a.jsonAgg(x.JsonObjectAgg.GetConstructor(), n, sc)
	case *pg.Node_JsonArrayAgg:
		return a.jsonAgg(x.JsonArrayAgg.GetConstructor(), n, sc)
	case *pg.Node_JsonParseExpr:
		return a.mayFail(a.childValues(n, sc), "JSON()")
	case *pg.Node_XmlExpr:
		l := a.childValues(n, sc)
		if x.XmlExpr.GetOp() == pg.XmlExprOp_IS_XMLPARSE {
			a.mayFail(l, "XMLPARSE")
		}
		a.totalNode(n, l, sc)
		return l
	case *pg.Node_AArrayExpr:
		return a.arrayConstructor(x.AArrayExpr, sc)
	case *pg.Node_Constraint:
		a.constraint(x.Constraint, sc)
		return a.childValues(n, sc)
	case *pg.Node_JoinExpr, *pg.Node_RangeSubselect, *pg.Node_RangeFunction, *pg.Node_RangeTableFunc,
		*pg.Node_RangeTableSample, *pg.Node_JsonTable, *pg.Node_WithClause, *pg.Node_CommonTableExpr:
		a.unsupported(n) // FROM and WITH parts outside their place
	}
	switch nodeClassOf(n) {
	case nodeStmt:
		return derive(a.nested(n))
	case nodeValue, nodePart:
		l := a.childValues(n, sc)
		a.totalNode(n, l, sc)
		return l
	}
	a.unsupported(n)
	return lineage{}
}

// childValues derives a value from all the children of n.
func (a *analyzer) childValues(n *pg.Node, sc *scope) lineage {
	return derive(a.values(children(n), sc)...)
}

func (a *analyzer) values(list []*pg.Node, sc *scope) []lineage {
	out := make([]lineage, len(list))
	for i, n := range list {
		out[i] = a.value(n, sc)
	}
	return out
}

// columnRef resolves a column reference: a column, a whole row (c), a
// qualified column (c.email, public.customers.email), c.* in a value
// position, or c.f, which PostgreSQL also reads as the function call f(c).
func (a *analyzer) columnRef(cr *pg.ColumnRef, sc *scope) lineage {
	fields := cr.GetFields()
	if len(fields) == 0 {
		return lineage{}
	}
	last := fields[len(fields)-1]
	if len(fields) == 1 {
		name := last.GetString_().GetSval()
		l, _ := sc.column(name)
		for _, it := range sc.named("", name) {
			l = either(l, it.all())
		}
		return l
	}
	var l lineage
	for _, it := range a.qualified(fields[:len(fields)-1], sc) {
		if last.GetAStar() != nil {
			l = either(l, it.all())
			continue
		}
		name := last.GetString_().GetSval()
		if cl, ok := it.find(name); ok {
			l = either(l, cl)
			continue
		}
		whole := it.all()
		a.checkFunction("", name, nil, []lineage{whole}, sc)
		l = either(l, whole)
	}
	return l
}

// indirection analyses subscripts and field selections: x[i], (x).f, (x).*.
// The result derives from the whole of x; (c).email is derived from every
// PII column of c.
func (a *analyzer) indirection(ind *pg.A_Indirection, sc *scope) lineage {
	l := a.value(ind.GetArg(), sc)
	for _, step := range ind.GetIndirection() {
		if f := step.GetString_(); f != nil {
			a.checkFunction("", f.GetSval(), nil, []lineage{l}, sc)
			continue
		}
		l = derive(l, a.value(step, sc))
	}
	return derive(l)
}

// nullTest: IS [NOT] NULL of a plain column tells only what the masked
// value shows anyway; of a computed value it can tell more.
func (a *analyzer) nullTest(l lineage) lineage {
	if l.derived() {
		return derive(l)
	}
	return lineage{}
}

// aExpr analyses operators. NULLIF compares; division and modulo by a
// PII-derived value fail for some values (an error oracle).
func (a *analyzer) aExpr(e *pg.A_Expr, sc *scope) lineage {
	return a.aExprOf(e, a.value(e.GetLexpr(), sc), a.value(e.GetRexpr(), sc), sc)
}

// aExprOf checks an operator given the lineage of its operands, in the
// order they are written.
func (a *analyzer) aExprOf(e *pg.A_Expr, left, right lineage, sc *scope) lineage {
	l := derive(left, right)
	if !l.pii() || a.views > 0 {
		return l
	}
	switch schema := opSchema(e); {
	case schema != "" && schema != "pg_catalog":
		a.refusePII("operator "+schema+"."+opName(e), "the operator "+schema+"."+opName(e)+" on it", l,
			"an operator outside pg_catalog runs its function on the raw value")
	case e.GetKind() == pg.A_Expr_Kind_AEXPR_NULLIF:
		a.refuseOn("NULLIF", l, "")
	case e.GetKind() == pg.A_Expr_Kind_AEXPR_OP && (opName(e) == "/" || opName(e) == "%"):
		a.refusePII("division", "dividing by or into it", l, "")
	}
	a.totalOperator(e, left, right, sc)
	return l
}

// opSchema is the schema of an OPERATOR(schema.op), "" when unqualified.
func opSchema(e *pg.A_Expr) string {
	names := stringFields(e.GetName())
	if len(names) < 2 {
		return ""
	}
	return names[len(names)-2]
}

// opName is the unqualified operator name of an A_Expr.
func opName(e *pg.A_Expr) string {
	names := e.GetName()
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1].GetString_().GetSval()
}

// textTypes are the cast targets that accept any value: a cast of a PII
// value to another type can fail for some values, which tells them apart.
var textTypes = map[string]bool{"text": true, "varchar": true, "bpchar": true, "char": true,
	"character": true, "character varying": true, "name": true, "citext": true}

func (a *analyzer) typeCast(tc *pg.TypeCast, sc *scope) lineage {
	l := derive(a.value(tc.GetArg(), sc))
	tn := tc.GetTypeName()
	names := stringFields(tn.GetNames())
	builtin := len(names) == 1 || len(names) == 2 && names[0] == "pg_catalog"
	if !builtin || len(tn.GetArrayBounds()) > 0 || !textTypes[names[len(names)-1]] {
		a.mayFail(l, "a cast to "+strings.Join(names, "."))
	}
	return l
}

// mayFail refuses an operation that raises an error for some PII values.
func (a *analyzer) mayFail(l lineage, construct string) lineage {
	if l.pii() && a.views == 0 {
		a.refusePII(construct, construct+" of it", l, "it can fail for some values, which tells them apart; cast to text instead")
	}
	return l
}

// subLink analyses a subquery used as a value.
func (a *analyzer) subLink(s *pg.SubLink, sc *scope) lineage {
	out := a.query(s.GetSubselect(), sc)
	test := a.value(s.GetTestexpr(), sc)
	a.values(s.GetOperName(), sc)
	if s.GetSubLinkType() == pg.SubLinkType_EXISTS_SUBLINK {
		return lineage{}
	}
	if names := stringFields(s.GetOperName()); len(names) > 0 && a.views == 0 {
		a.subLinkOperator(names[len(names)-1], test, out.all())
	}
	return derive(test, out.all())
}

// subLinkOperator checks the operator of x op ANY/ALL (subquery) as
// totalOperator does: no pattern built from a value, nothing that can fail.
func (a *analyzer) subLinkOperator(op string, test, rows lineage) {
	switch {
	case patternOperators[op] && rows.pii():
		a.refusePII("operator "+op, "the operator "+op+" on it", rows,
			"a pattern built from a value can be invalid, which tells values apart")
	case !patternOperators[op] && (!totalOperators[op] || op == "||") && derive(test, rows).pii():
		a.refusePII("operator "+op, "the operator "+op+" on it", derive(test, rows), errorHint)
	}
}

// caseExpr analyses CASE. Its conditions are predicates wherever the CASE
// stands; CASE x WHEN v compares x = v.
func (a *analyzer) caseExpr(c *pg.CaseExpr, sc *scope) lineage {
	arg := c.GetArg()
	argL := a.value(arg, sc)
	results := []lineage{argL}
	for _, n := range c.GetArgs() {
		w := n.GetCaseWhen()
		if arg == nil {
			a.pred(w.GetExpr(), sc, "CASE WHEN")
		} else {
			a.caseCompare(argL, w.GetExpr(), sc)
		}
		results = append(results, a.value(w.GetResult(), sc))
	}
	results = append(results, a.value(c.GetDefresult(), sc))
	return derive(results...)
}

// caseCompare checks CASE arg WHEN v as the comparison arg = v.
func (a *analyzer) caseCompare(argL lineage, v *pg.Node, sc *scope) {
	a.comparison(argL, a.value(v, sc), isConstant(v), "CASE")
}

// minMax: GREATEST and LEAST compare their arguments.
func (a *analyzer) minMax(m *pg.MinMaxExpr, sc *scope) lineage {
	l := derive(a.values(m.GetArgs(), sc)...)
	if l.pii() && len(m.GetArgs()) > 1 && a.views == 0 {
		name := "GREATEST"
		if m.GetOp() == pg.MinMaxOp_IS_LEAST {
			name = "LEAST"
		}
		a.refuseOn(name, l, "")
	}
	return l
}

// nested analyses a statement met inside another one (a statement of a
// CREATE SCHEMA, the body of a function) and returns what it yields.
func (a *analyzer) nested(n *pg.Node) lineage {
	sp := a.statement(n)
	var l lineage
	for _, o := range sp.Outputs {
		l = derive(l, lineage{sources: o.Sources})
	}
	if sp.AllColumns != nil {
		l = derive(l, lineage{sources: sp.AllColumns.Sources})
	}
	return l
}

// pred checks an expression in a predicate position: WHERE, JOIN ... ON,
// HAVING, FILTER, CASE WHEN... The rows it keeps or the branch it takes
// tell something of the values it reads, so it may not read PII except:
// IS [NOT] NULL of a column, and for a column declared lookup, = / IN /
// = ANY against constants or parameters. AND, OR and NOT combine these.
func (a *analyzer) pred(n *pg.Node, sc *scope, construct string) {
	switch x := n.GetNode().(type) {
	case nil:
		return
	case *pg.Node_BoolExpr:
		for _, arg := range x.BoolExpr.GetArgs() {
			a.pred(arg, sc, construct)
		}
		return
	case *pg.Node_AExpr:
		a.step()
		e := x.AExpr
		left, right := a.value(e.GetLexpr(), sc), a.value(e.GetRexpr(), sc)
		col, other := left, right
		if isConstant(e.GetLexpr()) {
			col, other = right, left
		}
		a.comparison(col, other, isLookupShape(e), construct)
		a.aExprOf(e, left, right, sc)
		return
	case *pg.Node_NullTest:
		arg := a.value(x.NullTest.GetArg(), sc)
		if l := a.nullTest(arg); l.pii() && a.views == 0 {
			a.refuseOn(construct, l, "")
		}
		if arg.pii() && (construct == "WHERE" || construct == "JOIN ... ON") {
			a.mark(x.NullTest, unindexed) // an index scan would return rows in the order of the values
		}
		return
	}
	if l := a.value(n, sc); l.pii() && a.views == 0 {
		a.refuseOn(construct, l, "")
	}
}

const lookupHint = "only columns declared lookup may be compared, with = or IN, and only with constants or parameters"

// comparison checks an operator in a predicate position, given the
// lineage of its operands (the constant one, if any, second). Only a lookup
// passes: a plain lookup column compared with =, IN or = ANY against
// constants or parameters (lookupShape).
func (a *analyzer) comparison(col, other lineage, lookupShape bool, construct string) {
	if !col.pii() && !other.pii() || a.views > 0 {
		return
	}
	if lookupShape && !other.pii() && col.plain {
		if col.lookup {
			return
		}
		a.refuseOn(construct, col, lookupHint)
	}
	a.refuseOn(construct, derive(col, other), "")
}

// isLookupShape reports whether e is col = const, const = col,
// col IN (consts) or col = ANY(const).
func isLookupShape(e *pg.A_Expr) bool {
	left, right := e.GetLexpr(), e.GetRexpr()
	if s := opSchema(e); s != "" && s != "pg_catalog" {
		return false
	}
	switch e.GetKind() {
	case pg.A_Expr_Kind_AEXPR_OP:
		return opName(e) == "=" && (lookupConstant(left) || lookupConstant(right))
	case pg.A_Expr_Kind_AEXPR_IN:
		return (opName(e) == "=" || opName(e) == "<>") && lookupConstant(right)
	case pg.A_Expr_Kind_AEXPR_OP_ANY:
		return opName(e) == "=" && lookupConstant(right)
	}
	return false
}

// lookupTypes are the built-in types a lookup constant may be cast to.
// Another type (a domain, or citext) or a COLLATE clause could bring a
// collation under which = matches more than the value itself: a
// nondeterministic collation that ignores case, accents or chosen
// characters turns a lookup into a pattern match.
var lookupTypes = map[string]bool{"text": true, "varchar": true, "bpchar": true, "char": true,
	"character": true, "character varying": true, "name": true, "int2": true, "int4": true,
	"int8": true, "int": true, "integer": true, "smallint": true, "bigint": true, "numeric": true,
	"decimal": true, "date": true, "timestamp": true, "timestamptz": true, "uuid": true,
	"bool": true, "boolean": true, "float4": true, "float8": true, "bytea": true, "oid": true}

// lookupConstant reports whether n is a constant or parameter a lookup
// may compare with: constants and parameters, cast to built-in types,
// arrays and lists of them; no COLLATE.
func lookupConstant(n *pg.Node) bool {
	switch x := n.GetNode().(type) {
	case *pg.Node_AConst, *pg.Node_ParamRef:
		return true
	case *pg.Node_TypeCast:
		names := stringFields(x.TypeCast.GetTypeName().GetNames())
		builtin := len(names) == 1 || len(names) == 2 && names[0] == "pg_catalog"
		return builtin && lookupTypes[names[len(names)-1]] && lookupConstant(x.TypeCast.GetArg())
	case *pg.Node_AArrayExpr:
		return allLookupConstant(x.AArrayExpr.GetElements())
	case *pg.Node_List:
		return allLookupConstant(x.List.GetItems())
	}
	return false
}

func allLookupConstant(list []*pg.Node) bool {
	for _, n := range list {
		if !lookupConstant(n) {
			return false
		}
	}
	return true
}

// isConstant reports whether n is made of constants and parameters only.
func isConstant(n *pg.Node) bool {
	switch x := n.GetNode().(type) {
	case *pg.Node_AConst, *pg.Node_ParamRef:
		return true
	case *pg.Node_TypeCast:
		return isConstant(x.TypeCast.GetArg())
	case *pg.Node_CollateClause:
		return isConstant(x.CollateClause.GetArg())
	case *pg.Node_AArrayExpr:
		return allConstant(x.AArrayExpr.GetElements())
	case *pg.Node_List:
		return allConstant(x.List.GetItems())
	}
	return false
}

func allConstant(list []*pg.Node) bool {
	for _, n := range list {
		if !isConstant(n) {
			return false
		}
	}
	return true
}

// written refuses writing a PII-derived value anywhere.
func (a *analyzer) written(l lineage, construct string) {
	if l.pii() && a.views == 0 {
		a.refusePII(construct, "writing it with "+construct, l, "")
	}
}

// constraint checks a FOREIGN KEY: its check on every write tells whether
// a value exists in the referenced columns.
func (a *analyzer) constraint(c *pg.Constraint, sc *scope) {
	if c.GetContype() != pg.ConstrType_CONSTR_FOREIGN || c.GetPktable() == nil || a.views > 0 {
		return
	}
	it := a.rangeVar(c.GetPktable(), &scope{})
	keys := stringFields(c.GetPkAttrs())
	if len(keys) == 0 && it.holdsPII() {
		a.refuse("a FOREIGN KEY to "+it.alias+" without a column list", "the table holds PII")
	}
	for _, k := range keys {
		if l, _ := it.find(k); l.pii() {
			a.refuseOn("FOREIGN KEY", l, "")
		}
	}
}

// figureName gives the column name PostgreSQL reports for an expression
// without an alias (informational).
func figureName(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		if s := lastNode(x.ColumnRef.GetFields()).GetString_(); s != nil {
			return s.GetSval()
		}
	case *pg.Node_FuncCall:
		_, name := funcName(x.FuncCall.GetFuncname())
		return name
	case *pg.Node_TypeCast:
		if name := figureName(x.TypeCast.GetArg()); name != "?column?" {
			return name
		}
		names := stringFields(x.TypeCast.GetTypeName().GetNames())
		if len(names) > 0 {
			return names[len(names)-1]
		}
	case *pg.Node_AIndirection:
		if s := lastNode(x.AIndirection.GetIndirection()).GetString_(); s != nil {
			return s.GetSval()
		}
		return figureName(x.AIndirection.GetArg())
	case *pg.Node_JsonFuncExpr:
		return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(x.JsonFuncExpr.GetOp().String(), "JSON_"), "_OP"))
	case *pg.Node_CaseExpr:
		return "case"
	case *pg.Node_CoalesceExpr:
		return "coalesce"
	case *pg.Node_MinMaxExpr:
		if x.MinMaxExpr.GetOp() == pg.MinMaxOp_IS_LEAST {
			return "least"
		}
		return "greatest"
	case *pg.Node_SubLink:
		return subLinkName(x.SubLink)
	case *pg.Node_RowExpr:
		return "row"
	case *pg.Node_AArrayExpr:
		return "array"
	case *pg.Node_XmlExpr:
		return xmlExprNames[x.XmlExpr.GetOp()]
	case *pg.Node_JsonObjectConstructor:
		return "json_object"
	case *pg.Node_JsonArrayConstructor, *pg.Node_JsonArrayQueryConstructor:
		return "json_array"
	case *pg.Node_JsonObjectAgg:
		return "json_objectagg"
	case *pg.Node_JsonArrayAgg:
		return "json_arrayagg"
	}
	return "?column?"
}

var xmlExprNames = map[pg.XmlExprOp]string{
	pg.XmlExprOp_IS_XMLCONCAT: "xmlconcat", pg.XmlExprOp_IS_XMLELEMENT: "xmlelement",
	pg.XmlExprOp_IS_XMLFOREST: "xmlforest", pg.XmlExprOp_IS_XMLPARSE: "xmlparse",
	pg.XmlExprOp_IS_XMLPI: "xmlpi", pg.XmlExprOp_IS_XMLROOT: "xmlroot",
	pg.XmlExprOp_IS_XMLSERIALIZE: "xmlserialize", pg.XmlExprOp_IS_DOCUMENT: "?column?",
}

func subLinkName(s *pg.SubLink) string {
	switch s.GetSubLinkType() {
	case pg.SubLinkType_EXISTS_SUBLINK:
		return "exists"
	case pg.SubLinkType_ARRAY_SUBLINK:
		return "array"
	case pg.SubLinkType_EXPR_SUBLINK:
		if list := s.GetSubselect().GetSelectStmt().GetTargetList(); len(list) > 0 {
			rt := list[0].GetResTarget()
			if rt.GetName() != "" {
				return rt.GetName()
			}
			return figureName(rt.GetVal())
		}
	}
	return "?column?"
}

// lastNode returns the last node of a list, nil when it is empty.
func lastNode(list []*pg.Node) *pg.Node {
	if len(list) == 0 {
		return nil
	}
	return list[len(list)-1]
}

// funcName splits a function name into schema and name.
func funcName(names []*pg.Node) (schema, name string) {
	s := stringFields(names)
	switch len(s) {
	case 0:
		return "", ""
	case 1:
		return "", s[0]
	}
	return s[len(s)-2], s[len(s)-1]
}

// stringFields returns the String values of a name list.
func stringFields(list []*pg.Node) []string {
	var out []string
	for _, n := range list {
		if s := n.GetString_(); s != nil {
			out = append(out, s.GetSval())
		}
	}
	return out
}

// intConst reads an integer constant (an ORDER BY position).
func intConst(n *pg.Node) (int32, bool) {
	c := n.GetAConst()
	if c == nil || c.GetIval() == nil {
		return 0, false
	}
	return c.GetIval().GetIval(), true
}

// singleName reads an unqualified column name.
func singleName(n *pg.Node) (string, bool) {
	f := n.GetColumnRef().GetFields()
	if len(f) != 1 || f[0].GetString_() == nil {
		return "", false
	}
	return f[0].GetString_().GetSval(), true
}

func itoa(i int) string { return strconv.Itoa(i) }
