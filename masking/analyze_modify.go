package masking

import pg "github.com/pganalyze/pg_query_go/v6"

// modify analyses INSERT, UPDATE, DELETE and MERGE and returns their
// RETURNING columns (nil without RETURNING). No PII-derived value may be
// written; conditions are predicates.
func (a *analyzer) modify(n *pg.Node, outer *scope) *item {
	switch x := n.GetNode().(type) {
	case *pg.Node_InsertStmt:
		return a.insert(x.InsertStmt, outer)
	case *pg.Node_UpdateStmt:
		return a.update(x.UpdateStmt, outer)
	case *pg.Node_DeleteStmt:
		return a.delete(x.DeleteStmt, outer)
	case *pg.Node_MergeStmt:
		return a.merge(x.MergeStmt, outer)
	}
	a.unsupported(n)
	return nil
}

// target adds the written relation to sc. Writing to a relation that
// holds PII counts as reading it: the server's errors quote the rows it
// writes, whole ("Failing row contains (...)" of a NOT NULL or CHECK
// violation, the existing row of ON CONFLICT DO UPDATE), so they are
// scrubbed.
func (a *analyzer) target(rv *pg.RangeVar, sc *scope) *item {
	it := a.rangeVar(rv, sc)
	a.read(it.all())
	sc.items = append(sc.items, it)
	sc.top = append(sc.top, it)
	return it
}

func (a *analyzer) insert(s *pg.InsertStmt, outer *scope) *item {
	sc := newScope(outer)
	a.with(s.GetWithClause(), sc)
	if src := s.GetSelectStmt(); src != nil {
		a.written(a.query(src, sc).all(), "INSERT")
	}
	it := a.target(s.GetRelation(), sc)
	a.values(s.GetCols(), sc)
	if oc := s.GetOnConflictClause(); oc != nil {
		a.onConflict(oc, it, sc)
	}
	return a.returning(s.GetReturningList(), sc)
}

// onConflict analyses ON CONFLICT; excluded holds the proposed row, which
// was checked as written already.
func (a *analyzer) onConflict(oc *pg.OnConflictClause, target *item, sc *scope) {
	excluded := &item{alias: "excluded"}
	for _, c := range target.cols {
		excluded.cols = append(excluded.cols, column{name: c.name})
	}
	excluded.open = target.open
	sc.items = append(sc.items, excluded)
	if inf := oc.GetInfer(); inf != nil {
		a.values(inf.GetIndexElems(), sc)
		a.pred(inf.GetWhereClause(), sc, "ON CONFLICT")
	}
	a.setList(oc.GetTargetList(), sc, "INSERT ... ON CONFLICT DO UPDATE")
	a.pred(oc.GetWhereClause(), sc, "ON CONFLICT DO UPDATE ... WHERE")
}

// setList checks SET col = value lists (UPDATE, ON CONFLICT, MERGE).
func (a *analyzer) setList(list []*pg.Node, sc *scope, construct string) {
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			a.written(a.value(n, sc), construct)
			continue
		}
		a.values(rt.GetIndirection(), sc)
		a.written(a.value(rt.GetVal(), sc), construct)
	}
}

func (a *analyzer) update(s *pg.UpdateStmt, outer *scope) *item {
	sc := newScope(outer)
	a.with(s.GetWithClause(), sc)
	a.target(s.GetRelation(), sc)
	a.from(s.GetFromClause(), sc)
	a.setList(s.GetTargetList(), sc, "UPDATE")
	a.pred(s.GetWhereClause(), sc, "WHERE")
	return a.returning(s.GetReturningList(), sc)
}

func (a *analyzer) delete(s *pg.DeleteStmt, outer *scope) *item {
	sc := newScope(outer)
	a.with(s.GetWithClause(), sc)
	a.target(s.GetRelation(), sc)
	a.from(s.GetUsingClause(), sc)
	a.pred(s.GetWhereClause(), sc, "WHERE")
	return a.returning(s.GetReturningList(), sc)
}

func (a *analyzer) merge(s *pg.MergeStmt, outer *scope) *item {
	sc := newScope(outer)
	a.with(s.GetWithClause(), sc)
	a.target(s.GetRelation(), sc)
	a.from([]*pg.Node{s.GetSourceRelation()}, sc)
	a.pred(s.GetJoinCondition(), sc, "MERGE ... ON")
	for _, n := range s.GetMergeWhenClauses() {
		w := n.GetMergeWhenClause()
		a.pred(w.GetCondition(), sc, "MERGE ... WHEN")
		a.setList(w.GetTargetList(), sc, "MERGE")
		for _, v := range w.GetValues() {
			a.written(a.value(v, sc), "MERGE")
		}
	}
	return a.returning(s.GetReturningList(), sc)
}

// returning analyses a RETURNING list; nil when there is none.
func (a *analyzer) returning(list []*pg.Node, sc *scope) *item {
	if len(list) == 0 {
		return nil
	}
	sc.q.outputs = nil
	return a.targetList(list, sc)
}
