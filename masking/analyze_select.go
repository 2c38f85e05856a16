package masking

import (
	pg "github.com/pganalyze/pg_query_go/v6"
)

const orderHint = "add an ORDER BY on non-PII columns"

// query analyses a query used as a value or a relation (a subquery, a CTE,
// a view definition, the query of a DECLARE, COPY or PREPARE) and returns
// its result columns. Data-modifying statements return their RETURNING.
func (a *analyzer) query(n *pg.Node, outer *scope) *item {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		out, unordered := a.selectStmt(x.SelectStmt, outer)
		if unordered != nil && a.views == 0 {
			a.fail(unordered)
		}
		return out
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		if out := a.modify(n, outer); out != nil {
			return out
		}
		return &item{}
	}
	a.unsupported(n)
	return nil
}

// selectStmt analyses a SELECT, VALUES or set operation. It returns the
// result and, when the query groups or de-duplicates a plain PII value
// without an ORDER BY of its own, the rejection that is due unless an
// enclosing set operation orders the rows.
func (a *analyzer) selectStmt(s *pg.SelectStmt, outer *scope) (*item, *Rejection) {
	sc := newScope(outer)
	a.with(s.GetWithClause(), sc)
	var out *item
	switch {
	case s.GetOp() == pg.SetOperation_SETOP_UNION || s.GetOp() == pg.SetOperation_SETOP_INTERSECT ||
		s.GetOp() == pg.SetOperation_SETOP_EXCEPT:
		out = a.setOp(s, sc)
	case len(s.GetValuesLists()) > 0:
		out = a.valuesLists(s.GetValuesLists(), sc)
	default:
		out = a.simpleSelect(s, sc)
	}
	a.orderBy(s.GetSortClause(), sc, "ORDER BY")
	a.limit(s.GetLimitCount(), sc, "LIMIT")
	a.limit(s.GetLimitOffset(), sc, "OFFSET")
	if s.GetIntoClause() != nil {
		a.written(out.all(), "SELECT INTO")
	}
	if len(s.GetSortClause()) > 0 {
		if sc.q.unordered != nil {
			a.breakTies(s, sc.q.unordered)
		}
		return out, nil
	}
	return out, sc.q.unordered
}

// simpleSelect analyses SELECT ... FROM ... WHERE ... GROUP BY ... HAVING.
func (a *analyzer) simpleSelect(s *pg.SelectStmt, sc *scope) *item {
	a.from(s.GetFromClause(), sc)
	out := a.targetList(s.GetTargetList(), sc)
	sc.q.outputs = out
	a.pred(s.GetWhereClause(), sc, "WHERE")
	a.groupBy(s.GetGroupClause(), sc)
	a.pred(s.GetHavingClause(), sc, "HAVING")
	for _, w := range s.GetWindowClause() {
		a.windowDef(w.GetWindowDef(), sc)
	}
	a.distinct(s.GetDistinctClause(), sc)
	return out
}

// setOp analyses UNION, INTERSECT and EXCEPT: column by column, a value
// comes from one branch or the other. Without ALL, and always for
// INTERSECT and EXCEPT, rows are compared: that is a grouping.
func (a *analyzer) setOp(s *pg.SelectStmt, sc *scope) *item {
	left, lu := a.selectStmt(s.GetLarg(), sc)
	right, ru := a.selectStmt(s.GetRarg(), sc)
	out := mergeItems(left, right)
	sc.q.outputs = out
	for _, u := range []*Rejection{lu, ru} {
		if u != nil && sc.q.unordered == nil {
			sc.q.unordered = u
		}
	}
	if !s.GetAll() || s.GetOp() != pg.SetOperation_SETOP_UNION {
		construct := setOpName(s)
		for _, c := range out.cols {
			a.grouped(c.lin, construct, sc)
		}
		a.grouped(out.openLin, construct, sc)
	}
	return out
}

func setOpName(s *pg.SelectStmt) string {
	name := map[pg.SetOperation]string{pg.SetOperation_SETOP_UNION: "UNION",
		pg.SetOperation_SETOP_INTERSECT: "INTERSECT", pg.SetOperation_SETOP_EXCEPT: "EXCEPT"}[s.GetOp()]
	if s.GetAll() {
		return name + " ALL"
	}
	return name
}

// valuesLists analyses VALUES lists: column by column, one of the rows.
func (a *analyzer) valuesLists(rows []*pg.Node, sc *scope) *item {
	var out *item
	for _, row := range rows {
		it := &item{}
		for i, e := range row.GetList().GetItems() {
			it.cols = append(it.cols, column{name: valuesColumnName(i), lin: a.value(e, sc)})
		}
		if out == nil {
			out = it
		} else {
			out = mergeItems(out, it)
		}
	}
	sc.q.outputs = out
	return out
}

func valuesColumnName(i int) string {
	return "column" + itoa(i+1)
}

// targetList analyses a select list or RETURNING list.
func (a *analyzer) targetList(list []*pg.Node, sc *scope) *item {
	out := &item{}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			out.cols = append(out.cols, column{name: "?column?", lin: a.value(n, sc)})
			continue
		}
		if a.star(rt.GetVal(), sc, out) {
			continue
		}
		name := rt.GetName()
		if name == "" {
			name = figureName(rt.GetVal())
		}
		out.cols = append(out.cols, column{name: name, lin: a.value(rt.GetVal(), sc)})
	}
	return out
}

// star expands *, t.* and (expr).* into out; false when n is not one.
func (a *analyzer) star(n *pg.Node, sc *scope, out *item) bool {
	if ind := n.GetAIndirection(); ind != nil {
		path := ind.GetIndirection()
		if len(path) == 0 || path[len(path)-1].GetAStar() == nil {
			return false
		}
		l := a.value(n, sc)
		out.open, out.openLin = true, derive(out.openLin, l)
		return true
	}
	fields := n.GetColumnRef().GetFields()
	if len(fields) == 0 || fields[len(fields)-1].GetAStar() == nil {
		return false
	}
	var items []*item
	if len(fields) == 1 {
		items = sc.top
	} else {
		items = a.qualified(fields[:len(fields)-1], sc)
	}
	for _, it := range items {
		a.read(it.all())
		out.add(it)
	}
	return true
}

// qualified finds the FROM entries named by a qualifier: t, s.t or db.s.t.
func (a *analyzer) qualified(q []*pg.Node, sc *scope) []*item {
	names := stringFields(q)
	switch len(names) {
	case 1:
		return sc.named("", names[0])
	case 2, 3:
		return sc.named(names[len(names)-2], names[len(names)-1])
	}
	return nil
}

// orderBy checks a query's ORDER BY keys: none may be PII-derived.
func (a *analyzer) orderBy(list []*pg.Node, sc *scope, construct string) {
	a.sortKeys(list, sc, construct, a.sortKey)
}

// sortKeys checks sort keys resolved by key: a query's ORDER BY (output
// positions and names) or an aggregate's (plain expressions).
func (a *analyzer) sortKeys(list []*pg.Node, sc *scope, construct string, key func(*pg.Node, *scope) lineage) {
	for _, n := range list {
		if l := key(n.GetSortBy().GetNode(), sc); l.pii() && a.views == 0 {
			a.refuseOn(construct, l, "")
		}
		for _, op := range n.GetSortBy().GetUseOp() {
			a.value(op, sc)
		}
	}
}

// sortKey resolves an ORDER BY or DISTINCT ON key: an output position, an
// output name, or an expression over the FROM entries. When a name could be
// either, the analyser takes both.
func (a *analyzer) sortKey(n *pg.Node, sc *scope) lineage {
	out := sc.q.outputs
	if out == nil {
		out = &item{}
	}
	if k, ok := intConst(n); ok {
		switch {
		case out.open:
			return out.all() // positions after an unknown width are unknown
		case k >= 1 && int(k) <= len(out.cols):
			return out.cols[k-1].lin
		}
		return lineage{}
	}
	l := a.value(n, sc)
	if name, ok := singleName(n); ok {
		if ol, found := out.find(name); found {
			l = either(l, ol)
		}
	}
	return l
}

// groupBy checks GROUP BY keys (grouping sets too).
func (a *analyzer) groupBy(list []*pg.Node, sc *scope) {
	for _, n := range list {
		if gs := n.GetGroupingSet(); gs != nil {
			a.groupBy(gs.GetContent(), sc)
			continue
		}
		if n.GetRowExpr() != nil {
			a.groupBy(n.GetRowExpr().GetArgs(), sc)
			continue
		}
		a.grouped(a.sortKey(n, sc), "GROUP BY", sc)
	}
}

// grouped checks a value the query groups, de-duplicates or partitions by.
// A plain PII column is allowed when the rows are put in a non-PII order
// (else their order can follow the sorted values); anything derived from
// one is refused, since grouping compares the values.
func (a *analyzer) grouped(l lineage, construct string, sc *scope) {
	if !l.pii() || a.views > 0 {
		return
	}
	a.read(l)
	if l.derived() {
		a.refusePII(construct, construct+" on a value computed from it", l, "")
	}
	if sc.q.unordered == nil {
		col := l.column()
		sc.q.unordered = &Rejection{Construct: construct, Column: col, Hint: orderHint,
			Message: "pgveil: column " + col + " is PII; " + construct + " on it without an ORDER BY on non-PII columns is not allowed for " + a.who()}
	}
}

// distinct checks DISTINCT (all outputs) and DISTINCT ON (its keys).
func (a *analyzer) distinct(list []*pg.Node, sc *scope) {
	if len(list) == 0 {
		return
	}
	if len(list) == 1 && list[0].GetNode() == nil {
		out := sc.q.outputs
		for _, c := range out.cols {
			a.grouped(c.lin, "DISTINCT", sc)
		}
		a.grouped(out.openLin, "DISTINCT", sc)
		return
	}
	for _, n := range list {
		if l := a.sortKey(n, sc); l.pii() && a.views == 0 {
			a.refuseOn("DISTINCT ON", l, "")
		}
	}
}

// windowDef checks a window: PARTITION BY groups, ORDER BY and the frame
// bounds may not be PII-derived.
func (a *analyzer) windowDef(w *pg.WindowDef, sc *scope) {
	for _, n := range w.GetPartitionClause() {
		a.grouped(a.value(n, sc), "PARTITION BY", sc)
	}
	a.sortKeys(w.GetOrderClause(), sc, "window ORDER BY", a.value)
	a.limit(w.GetStartOffset(), sc, "a window frame")
	a.limit(w.GetEndOffset(), sc, "a window frame")
}

// limit checks a LIMIT, OFFSET or frame bound expression.
func (a *analyzer) limit(n *pg.Node, sc *scope, construct string) {
	if l := a.value(n, sc); l.pii() && a.views == 0 {
		a.refuseOn(construct, l, "")
	}
}

// with analyses a WITH clause into sc.
func (a *analyzer) with(w *pg.WithClause, sc *scope) {
	if w == nil {
		return
	}
	if sc.ctes == nil {
		sc.ctes = map[string]*item{}
	}
	ctes := make([]*pg.CommonTableExpr, len(w.GetCtes()))
	for i, n := range w.GetCtes() {
		if ctes[i] = n.GetCommonTableExpr(); ctes[i] == nil {
			a.unsupported(n)
		}
	}
	if w.GetRecursive() {
		ctes = dependencyOrder(ctes)
	}
	for _, c := range ctes {
		sc.ctes[c.GetCtename()] = a.cte(c, sc, w.GetRecursive())
	}
}

// dependencyOrder sorts the queries of a WITH RECURSIVE so that each comes
// after those it names: there, a query may name one defined after it.
func dependencyOrder(ctes []*pg.CommonTableExpr) []*pg.CommonTableExpr {
	byName := map[string]*pg.CommonTableExpr{}
	for _, c := range ctes {
		byName[c.GetCtename()] = c
	}
	var out []*pg.CommonTableExpr
	state := map[*pg.CommonTableExpr]int{} // 1 visiting, 2 done
	var visit func(c *pg.CommonTableExpr)
	visit = func(c *pg.CommonTableExpr) {
		if state[c] != 0 {
			return
		}
		state[c] = 1
		for name := range relationNames(c.GetCtequery()) {
			if d := byName[name]; d != nil && d != c {
				visit(d)
			}
		}
		state[c] = 2
		out = append(out, c)
	}
	for _, c := range ctes {
		visit(c)
	}
	return out
}

// relationNames collects the unqualified relation names under n.
func relationNames(n *pg.Node) map[string]bool {
	names := map[string]bool{}
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		if rv := n.GetRangeVar(); rv != nil && rv.GetSchemaname() == "" {
			names[rv.GetRelname()] = true
		}
		for _, kid := range children(n) {
			walk(kid)
		}
	}
	walk(n)
	return names
}

// maxRecursion bounds the fixpoint of a recursive WITH query. Lineage only
// grows (sources are added, plain turns derived), so it settles long before.
const maxRecursion = 64

// cte analyses one WITH query. A recursive one is analysed again with its
// own lineage bound to its name until that lineage stops changing.
func (a *analyzer) cte(c *pg.CommonTableExpr, sc *scope, recursive bool) *item {
	name := c.GetCtename()
	sel := c.GetCtequery().GetSelectStmt()
	if !recursive || sel == nil || sel.GetOp() != pg.SetOperation_SETOP_UNION {
		return a.cteResult(c, a.query(c.GetCtequery(), sc))
	}
	seed, _ := a.selectStmt(sel.GetLarg(), sc)
	cur := a.cteResult(c, seed)
	for i := 0; i < maxRecursion; i++ {
		sc.ctes[name] = cur
		next := mergeItems(cur, a.cteResult(c, a.query(c.GetCtequery(), sc)))
		if sameItem(next, cur) {
			return next
		}
		cur = next
	}
	a.refuse("recursive query "+name, "its lineage did not settle")
	return nil
}

// cteResult names a WITH query's columns and checks SEARCH and CYCLE.
func (a *analyzer) cteResult(c *pg.CommonTableExpr, out *item) *item {
	it := out.renamed(c.GetCtename(), c.GetAliascolnames())
	if s := c.GetSearchClause(); s != nil {
		a.cteKeys(it, s.GetSearchColList(), "SEARCH")
		it.cols = append(it.cols, column{name: s.GetSearchSeqColumn()})
	}
	if cy := c.GetCycleClause(); cy != nil {
		a.cteKeys(it, cy.GetCycleColList(), "CYCLE")
		it.cols = append(it.cols, column{name: cy.GetCycleMarkColumn()}, column{name: cy.GetCyclePathColumn()})
	}
	return it
}

// cteKeys checks the columns a SEARCH or CYCLE clause orders or compares.
func (a *analyzer) cteKeys(it *item, names []*pg.Node, construct string) {
	for _, n := range names {
		if l, _ := it.find(n.GetString_().GetSval()); l.pii() && a.views == 0 {
			a.refuseOn(construct, l, "")
		}
	}
}
