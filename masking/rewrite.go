package masking

import (
	"slices"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Some texts are safe only when the server runs them slightly changed: the
// order of the rows they return would otherwise follow hidden values.
//
//   - Ties. A level that groups, de-duplicates or partitions by a plain PII
//     column is allowed when it has an ORDER BY on non-PII keys, but rows
//     that tie on those keys come back in the order the plan produced them:
//     sorted by the hidden value (GroupAggregate) or by its hash (HashAggregate).
//     The analyser appends random() as a last ORDER BY key, which leaves
//     the order PostgreSQL promises unchanged. A level with DISTINCT or a set
//     operation cannot sort by an expression outside its result, so it is
//     wrapped: SELECT * FROM (<the level>) AS pgveil_rows ORDER BY <its keys
//     as output names or positions>, random() LIMIT ... OFFSET ...
//   - Index order. col IS [NOT] NULL of a PII column can be answered with a
//     scan of an index on the column, which returns the rows sorted by the
//     hidden value. The analyser writes it as CASE WHEN col IS NOT NULL
//     THEN true ELSE false END, which no index matches.
//
// The analyser marks the nodes it changes; a plan keeps them as positions
// in a pre-order walk of the parse tree (rewriteStep), which texts with the
// same cache key share, and rewriteText applies them to each text the plan
// serves and deparses it.

// rewriteKind is one change to a parse tree node.
type rewriteKind int

const (
	tieBreak  rewriteKind = iota + 1 // SelectStmt: append random() to ORDER BY
	tieWrap                          // SelectStmt: wrap it, then tieBreak
	unindexed                        // NullTest: hide it from index matching
)

// rewriteStep changes the node at position at of a pre-order walk of the
// statements' parse trees.
type rewriteStep struct {
	at   int
	kind rewriteKind
}

// wrappedAlias names the subquery of a tieWrap.
const wrappedAlias = "pgveil_rows"

// mark records that node (a *pg.SelectStmt or *pg.NullTest) must change.
// Nodes of view definitions are never marked: the server reads the view.
func (a *analyzer) mark(node any, kind rewriteKind) {
	if a.views > 0 {
		return
	}
	if a.marks == nil {
		a.marks = map[any]rewriteKind{}
	}
	a.marks[node] = kind
}

// breakTies marks an ordered SELECT level whose rows group a PII value.
func (a *analyzer) breakTies(s *pg.SelectStmt, why *Rejection) {
	if s.GetLimitOption() == pg.LimitOption_LIMIT_OPTION_WITH_TIES && a.views == 0 {
		a.fail(&Rejection{Kind: ReasonGrouping, Construct: "FETCH ... WITH TIES", Column: why.Column,
			Message: "pgveil: column " + why.Column + " is PII; " + why.Construct +
				" on it with FETCH ... WITH TIES is not allowed for " + a.who(),
			Hint: "rows that tie would come back in the order of the hidden values; use LIMIT"})
	}
	if !needsWrap(s) {
		a.mark(s, tieBreak)
		return
	}
	if _, ok := outputKeys(s); !ok && a.views == 0 {
		a.fail(&Rejection{Kind: ReasonGrouping, Construct: why.Construct, Column: why.Column,
			Hint: "order by output column names or positions",
			Message: "pgveil: column " + why.Column + " is PII; " + why.Construct +
				" on it ordered by an expression is not allowed for " + a.who()})
	}
	a.mark(s, tieWrap)
}

// needsWrap reports whether a level cannot sort by random() itself: a set
// operation, or DISTINCT (whose ORDER BY may name only its outputs).
// DISTINCT ON can: its keys lead its ORDER BY, and a later key does not
// change which row it keeps beyond what PostgreSQL leaves unspecified.
func needsWrap(s *pg.SelectStmt) bool {
	d := s.GetDistinctClause()
	return s.GetOp() != pg.SetOperation_SETOP_NONE || len(d) == 1 && d[0].GetNode() == nil
}

// rewriteSteps turns the marks into positions in the tree of the whole text.
func (a *analyzer) rewriteSteps(tree *pg.ParseResult) []rewriteStep {
	if len(a.marks) == 0 {
		return nil
	}
	var out []rewriteStep
	preorder(tree, func(i int, n *pg.Node) {
		if kind, ok := a.marks[markKey(n)]; ok {
			out = append(out, rewriteStep{i, kind})
		}
	})
	return out
}

// markKey is the key a node is marked under.
func markKey(n *pg.Node) any {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return x.SelectStmt
	case *pg.Node_NullTest:
		return x.NullTest
	}
	return nil
}

// preorder visits every node of the statements, numbering them.
func preorder(tree *pg.ParseResult, visit func(int, *pg.Node)) {
	i := 0
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		visit(i, n)
		i++
		for _, c := range children(n) {
			walk(c)
		}
	}
	for _, raw := range tree.GetStmts() {
		walk(raw.GetStmt())
	}
}

// rewriteText applies a plan's steps to sql and returns the text to run.
func rewriteText(sql string, steps []rewriteStep) (string, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return "", errRewrite
	}
	nodes := map[int]*pg.Node{}
	preorder(tree, func(i int, n *pg.Node) {
		if slices.ContainsFunc(steps, func(s rewriteStep) bool { return s.at == i }) {
			nodes[i] = n
		}
	})
	for _, s := range steps {
		if err := apply(nodes[s.at], s.kind); err != nil {
			return "", err
		}
	}
	text, err := pg.Deparse(tree)
	if err != nil {
		return "", errRewrite // the deparser's message may quote the text
	}
	return text, nil
}

// errRewrite means a text did not have the shape its cached plan was made
// for; the proxy refuses it rather than run it unchanged.
var errRewrite = &Rejection{Kind: ReasonUnsupported, Construct: "a query pgveil could not rewrite",
	Message: "pgveil: internal error: the query could not be rewritten to hide the order of PII values"}

// apply makes one change.
func apply(n *pg.Node, kind rewriteKind) error {
	switch {
	case kind == unindexed && n.GetNullTest() != nil:
		n.Node = hiddenNullTest(n.GetNullTest()).Node
	case kind == tieBreak && n.GetSelectStmt() != nil:
		s := n.GetSelectStmt()
		s.SortClause = append(s.SortClause, randomKey())
	case kind == tieWrap && n.GetSelectStmt() != nil:
		return wrap(n.GetSelectStmt())
	default:
		return errRewrite
	}
	return nil
}

// hiddenNullTest writes CASE WHEN <t> THEN true ELSE false END.
func hiddenNullTest(t *pg.NullTest) *pg.Node {
	when := pg.MakeCaseWhenNode(&pg.Node{Node: &pg.Node_NullTest{NullTest: t}}, boolConst(true), -1)
	c := pg.MakeCaseExprNode(nil, []*pg.Node{when}, -1)
	c.GetCaseExpr().Defresult = boolConst(false)
	return c
}

func boolConst(v bool) *pg.Node {
	return &pg.Node{Node: &pg.Node_AConst{AConst: &pg.A_Const{
		Val: &pg.A_Const_Boolval{Boolval: &pg.Boolean{Boolval: v}}, Location: -1}}}
}

// randomKey is the sort key random().
func randomKey() *pg.Node {
	f := pg.MakeFuncCallNode([]*pg.Node{pg.MakeStrNode("pg_catalog"), pg.MakeStrNode("random")}, nil, -1)
	return pg.MakeSortByNode(f, pg.SortByDir_SORTBY_DEFAULT, pg.SortByNulls_SORTBY_NULLS_DEFAULT, -1)
}

// wrap turns s into SELECT * FROM (<s without its ORDER BY, LIMIT and
// WITH>) AS pgveil_rows ORDER BY <its keys>, random() LIMIT ... with
// the WITH clause on the outside, where a data-modifying one must be.
func wrap(s *pg.SelectStmt) error {
	keys, ok := outputKeys(s)
	if !ok {
		return errRewrite
	}
	inner := &pg.SelectStmt{
		DistinctClause: s.DistinctClause, TargetList: s.TargetList, FromClause: s.FromClause,
		WhereClause: s.WhereClause, GroupClause: s.GroupClause, GroupDistinct: s.GroupDistinct,
		HavingClause: s.HavingClause, WindowClause: s.WindowClause, ValuesLists: s.ValuesLists,
		LockingClause: s.LockingClause, Op: s.Op, All: s.All, Larg: s.Larg, Rarg: s.Rarg,
		LimitOption: pg.LimitOption_LIMIT_OPTION_DEFAULT,
	}
	s.DistinctClause, s.WhereClause, s.GroupClause, s.GroupDistinct = nil, nil, nil, false
	s.HavingClause, s.WindowClause, s.ValuesLists, s.LockingClause = nil, nil, nil, nil
	s.Op, s.All, s.Larg, s.Rarg = pg.SetOperation_SETOP_NONE, false, nil, nil
	s.TargetList = []*pg.Node{pg.MakeResTargetNodeWithVal(pg.MakeColumnRefNode([]*pg.Node{pg.MakeAStarNode()}, -1), -1)}
	s.FromClause = []*pg.Node{{Node: &pg.Node_RangeSubselect{RangeSubselect: &pg.RangeSubselect{
		Subquery: &pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: inner}}, Alias: &pg.Alias{Aliasname: wrappedAlias}}}}}
	s.SortClause = append(keys, randomKey())
	return nil
}

// outputKeys returns a level's ORDER BY keys written against its output
// columns, as the wrapper of tieWrap sees them: positions, output names,
// and expressions that are one of the outputs, as its position. ok is
// false when a key is none of these.
func outputKeys(s *pg.SelectStmt) (keys []*pg.Node, ok bool) {
	targets := levelTargets(s)
	for _, n := range s.GetSortClause() {
		sb := n.GetSortBy()
		key, ok := outputKey(sb.GetNode(), targets, s.GetOp() != pg.SetOperation_SETOP_NONE)
		if !ok {
			return nil, false
		}
		keys = append(keys, &pg.Node{Node: &pg.Node_SortBy{SortBy: &pg.SortBy{
			Node: key, SortbyDir: sb.GetSortbyDir(), SortbyNulls: sb.GetSortbyNulls(), UseOp: sb.GetUseOp(), Location: -1}}})
	}
	return keys, true
}

// levelTargets is the target list that names a level's outputs: a set
// operation's come from its leftmost branch.
func levelTargets(s *pg.SelectStmt) []*pg.Node {
	for s.GetOp() != pg.SetOperation_SETOP_NONE {
		s = s.GetLarg()
	}
	return s.GetTargetList()
}

// outputKey writes one ORDER BY key against a level's outputs. As in
// PostgreSQL, an output name wins over a column of the FROM list; a set
// operation's ORDER BY may name only outputs. For DISTINCT, a key that is
// not an output name but one of the output expressions (c.country, or
// country read as c.country) becomes that output's position.
func outputKey(n *pg.Node, targets []*pg.Node, setOp bool) (*pg.Node, bool) {
	if _, ok := intConst(n); ok {
		return n, true
	}
	name, single := singleName(n)
	if single {
		for _, t := range targets {
			if outputName(t.GetResTarget()) == name {
				return n, true
			}
		}
		if slices.ContainsFunc(targets, func(t *pg.Node) bool { return isStar(t.GetResTarget().GetVal()) }) {
			return n, true // a name among the columns of a *
		}
	}
	if setOp {
		return nil, false
	}
	for i, t := range targets {
		val := t.GetResTarget().GetVal()
		if sameColumnRef(n, val) || single && lastField(val) == name {
			return pg.MakeAConstIntNode(int64(i+1), -1), true
		}
	}
	return nil, false
}

// isStar reports whether n is * or a qualified x.*.
func isStar(n *pg.Node) bool {
	f := n.GetColumnRef().GetFields()
	return len(f) > 0 && f[len(f)-1].GetAStar() != nil
}

// outputName is the name the server gives a target's column, when it is
// written or taken from a column.
func outputName(rt *pg.ResTarget) string {
	if rt.GetName() != "" {
		return rt.GetName()
	}
	return lastField(rt.GetVal())
}

// lastField is the column name of a column reference, "" for anything else.
func lastField(n *pg.Node) string {
	f := n.GetColumnRef().GetFields()
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1].GetString_().GetSval()
}

// sameColumnRef reports whether a and b are the same column reference,
// written the same way.
func sameColumnRef(a, b *pg.Node) bool {
	fa, fb := a.GetColumnRef().GetFields(), b.GetColumnRef().GetFields()
	if len(fa) == 0 || len(fa) != len(fb) {
		return false
	}
	for i := range fa {
		if fa[i].GetString_() == nil || fa[i].GetString_().GetSval() != fb[i].GetString_().GetSval() {
			return false
		}
	}
	return true
}
