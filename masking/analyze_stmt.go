package masking

import (
	"slices"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// statement analyses one statement. Every statement type is handled here
// by name; an unknown one is rejected.
func (a *analyzer) statement(n *pg.Node) StatementPlan {
	switch x := n.GetNode().(type) {
	case *pg.Node_RawStmt:
		return a.statement(x.RawStmt.GetStmt())
	case *pg.Node_SelectStmt:
		return a.selectPlan(n, x.SelectStmt)
	case *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt, *pg.Node_MergeStmt:
		return withOutputs(StatementPlan{Tag: modifyTag(n)}, a.modify(n, nil))
	case *pg.Node_ReturnStmt:
		l := a.value(x.ReturnStmt.GetReturnval(), newScope(nil))
		return StatementPlan{Tag: "RETURN", Outputs: []Output{l.output("?column?")}}
	case *pg.Node_ExplainStmt:
		return a.explain(x.ExplainStmt)
	case *pg.Node_CopyStmt:
		return a.copyStmt(x.CopyStmt)
	case *pg.Node_VariableSetStmt:
		return a.setStmt(x.VariableSetStmt)
	case *pg.Node_VariableShowStmt:
		return showPlan(x.VariableShowStmt.GetName())
	case *pg.Node_TransactionStmt:
		return StatementPlan{Tag: transactionTag(x.TransactionStmt.GetKind()), txn: txnOf(x.TransactionStmt)}
	case *pg.Node_CreateTableAsStmt:
		return a.createTableAs(x.CreateTableAsStmt)
	case *pg.Node_ViewStmt:
		a.refuseReads("CREATE VIEW", func() { a.query(x.ViewStmt.GetQuery(), nil) })
		return StatementPlan{Tag: "CREATE VIEW", ChangesCatalog: true}
	case *pg.Node_CreateFunctionStmt:
		return a.createFunction(x.CreateFunctionStmt)
	case *pg.Node_CallStmt:
		return a.call(x.CallStmt)
	}
	if sp, ok := a.sessionStatement(n); ok {
		return sp
	}
	if why, ok := refusedStatements[nodeType(n)]; ok {
		a.refuse(why[0], why[1])
	}
	if _, ok := utilityTags[nodeType(n)]; ok {
		return a.utility(n)
	}
	a.unsupported(n)
	return StatementPlan{}
}

// withOutputs sets the result columns of a plan from an item (nil: no rows).
func withOutputs(sp StatementPlan, out *item) StatementPlan {
	switch {
	case out == nil:
	case out.open:
		all := out.all().output("*")
		sp.AllColumns = &all
	default:
		sp.Outputs = make([]Output, len(out.cols))
		for i, c := range out.cols {
			sp.Outputs[i] = c.lin.output(c.name)
		}
	}
	return sp
}

func modifyTag(n *pg.Node) string {
	return strings.ToUpper(strings.TrimSuffix(nodeType(n), "Stmt"))
}

// selectPlan: SELECT, VALUES, TABLE, and SELECT INTO (which returns no rows).
func (a *analyzer) selectPlan(n *pg.Node, s *pg.SelectStmt) StatementPlan {
	out := a.query(n, nil)
	if s.GetIntoClause() != nil {
		return StatementPlan{Tag: "SELECT", ChangesCatalog: true}
	}
	return withOutputs(StatementPlan{Tag: "SELECT"}, out)
}

// sessionStatement handles cursors, prepared statements and DISCARD.
func (a *analyzer) sessionStatement(n *pg.Node) (StatementPlan, bool) {
	switch x := n.GetNode().(type) {
	case *pg.Node_DeclareCursorStmt:
		sp := StatementPlan{Tag: "DECLARE CURSOR", Cursor: x.DeclareCursorStmt.GetPortalname()}
		return withOutputs(sp, a.query(x.DeclareCursorStmt.GetQuery(), nil)), true
	case *pg.Node_FetchStmt:
		tag := "FETCH"
		a.st.unseen = true
		if x.FetchStmt.GetIsmove() {
			tag = "MOVE"
		}
		return StatementPlan{Tag: tag, Cursor: x.FetchStmt.GetPortalname()}, true
	case *pg.Node_ClosePortalStmt:
		name := x.ClosePortalStmt.GetPortalname()
		if name == "" {
			return StatementPlan{Tag: "CLOSE CURSOR ALL"}, true
		}
		return StatementPlan{Tag: "CLOSE CURSOR", Cursor: name}, true
	case *pg.Node_PrepareStmt:
		sp := StatementPlan{Tag: "PREPARE", Prepared: x.PrepareStmt.GetName()}
		return withOutputs(sp, a.preparable(x.PrepareStmt.GetQuery())), true
	case *pg.Node_ExecuteStmt:
		// The prepared statement was analysed with its parameters taken
		// as the client's constants: a parameter computed from PII would
		// reach whatever the statement does with it (a lookup, set_config).
		for _, l := range a.values(x.ExecuteStmt.GetParams(), newScope(nil)) {
			if l.pii() && a.views == 0 {
				a.refusePII("EXECUTE", "passing it as a parameter of EXECUTE", l, "")
			}
		}
		a.st.unseen = true
		return StatementPlan{Tag: "EXECUTE", Prepared: x.ExecuteStmt.GetName()}, true
	case *pg.Node_DeallocateStmt:
		if x.DeallocateStmt.GetIsall() {
			return StatementPlan{Tag: "DEALLOCATE ALL"}, true
		}
		return StatementPlan{Tag: "DEALLOCATE", Prepared: x.DeallocateStmt.GetName()}, true
	case *pg.Node_DiscardStmt:
		mode := x.DiscardStmt.GetTarget()
		tag := "DISCARD " + strings.TrimPrefix(mode.String(), "DISCARD_")
		sp := StatementPlan{Tag: tag, ChangesCatalog: mode == pg.DiscardMode_DISCARD_ALL || mode == pg.DiscardMode_DISCARD_TEMP}
		if mode == pg.DiscardMode_DISCARD_ALL {
			sp.path = pathReset // DISCARD ALL runs RESET ALL
		}
		return sp, true
	}
	return StatementPlan{}, false
}

// preparable analyses the statement of a PREPARE or EXPLAIN and returns
// what it yields (nil for a data-modifying statement without RETURNING).
func (a *analyzer) preparable(n *pg.Node) *item {
	if n.GetSelectStmt() != nil {
		return a.query(n, nil)
	}
	return a.modify(n, nil)
}

// explain analyses the explained statement under the same rules (EXPLAIN
// ANALYZE runs it; plain EXPLAIN shows estimates drawn from the values).
// Its output derives from every PII column the statement reads.
func (a *analyzer) explain(e *pg.ExplainStmt) StatementPlan {
	if e.GetQuery().GetExecuteStmt() != nil {
		a.refuse("EXPLAIN EXECUTE", "pgveil cannot see the prepared statement")
	}
	inner := a.statement(e.GetQuery())
	l := derive(lineage{sources: a.st.reads})
	return StatementPlan{Tag: "EXPLAIN", Outputs: []Output{l.output("QUERY PLAN")}, ChangesCatalog: inner.ChangesCatalog}
}

// setStmt refuses identity settings: SET ROLE, SET SESSION AUTHORIZATION,
// their RESET, and RESET ALL. SET and RESET of search_path (LOCAL too) are
// followed (searchpath.go).
func (a *analyzer) setStmt(s *pg.VariableSetStmt) StatementPlan {
	a.checkSetting(s)
	if strings.EqualFold(s.GetName(), "search_path") {
		a.pathSetStmt(s)
	}
	a.values(s.GetArgs(), newScope(nil))
	switch s.GetKind() {
	case pg.VariableSetKind_VAR_RESET, pg.VariableSetKind_VAR_RESET_ALL:
		return StatementPlan{Tag: "RESET"}
	}
	return StatementPlan{Tag: "SET"}
}

var identityNames = map[string]string{"role": "ROLE", "session_authorization": "SESSION AUTHORIZATION"}

// checkSetting applies the rules on settings to SET, RESET and ALTER
// ROLE/DATABASE ... SET. search_path may be set: a session follows its
// own changes, and reads what ALTER ROLE or DATABASE set when it starts.
func (a *analyzer) checkSetting(s *pg.VariableSetStmt) {
	if s == nil {
		return
	}
	verb := "SET "
	switch {
	case s.GetKind() == pg.VariableSetKind_VAR_RESET_ALL:
		a.refuse("RESET ALL", "it resets the role and session authorization")
	case s.GetKind() == pg.VariableSetKind_VAR_RESET:
		verb = "RESET "
	case s.GetIsLocal():
		verb = "SET LOCAL "
	}
	if steersPlan(s.GetName()) && verb != "RESET " && s.GetKind() != pg.VariableSetKind_VAR_SET_DEFAULT {
		a.refuseAs(ReasonOracle, verb+strings.ToLower(s.GetName()), planHint)
	}
	name, ok := identityNames[strings.ToLower(s.GetName())]
	if !ok {
		return
	}
	a.refuse(verb+name, "it changes who the session is")
}

// planSettings are the planner's cost settings. With the enable_*
// settings, they can steer a plan to scan an index on a PII column, whose
// rows come back sorted by the hidden values.
var planSettings = []string{"seq_page_cost", "random_page_cost", "cpu_tuple_cost", "cpu_index_tuple_cost",
	"cpu_operator_cost", "effective_cache_size"}

const planHint = "it can steer the plan to an index on a PII column, whose rows come back in the order of the values"

// steersPlan reports whether a setting chooses plans: enable_* and the
// planner's costs.
func steersPlan(name string) bool {
	name = strings.ToLower(name)
	return strings.HasPrefix(name, "enable_") || slices.Contains(planSettings, name)
}

func showPlan(name string) StatementPlan {
	if strings.EqualFold(name, "all") {
		return StatementPlan{Tag: "SHOW", Outputs: []Output{{Name: "name"}, {Name: "setting"}, {Name: "description"}}}
	}
	return StatementPlan{Tag: "SHOW", Outputs: []Output{{Name: name}}}
}

func transactionTag(k pg.TransactionStmtKind) string {
	switch k {
	case pg.TransactionStmtKind_TRANS_STMT_START:
		return "START TRANSACTION"
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return "ROLLBACK"
	case pg.TransactionStmtKind_TRANS_STMT_PREPARE:
		return "PREPARE TRANSACTION"
	}
	return strings.ReplaceAll(strings.TrimPrefix(k.String(), "TRANS_STMT_"), "_", " ")
}

// refuseReads runs f and refuses construct when it read any PII column:
// a stored query or body would read it later, outside the analysis.
func (a *analyzer) refuseReads(construct string, f func()) {
	if l := a.readsDuring(f); l.pii() && a.views == 0 {
		a.refusePII(construct, "reading it in "+construct, l, "")
	}
}

// createTableAs: CREATE TABLE AS may store no PII-derived value; a
// materialized view stores its query, so it may read none.
func (a *analyzer) createTableAs(s *pg.CreateTableAsStmt) StatementPlan {
	q := s.GetQuery()
	if q.GetExecuteStmt() != nil {
		a.refuse("CREATE TABLE AS EXECUTE", "pgveil cannot see the prepared statement")
	}
	if s.GetObjtype() == pg.ObjectType_OBJECT_MATVIEW {
		a.refuseReads("CREATE MATERIALIZED VIEW", func() { a.query(q, nil) })
		return StatementPlan{Tag: "CREATE MATERIALIZED VIEW", ChangesCatalog: true}
	}
	a.written(a.query(q, nil).all(), "CREATE TABLE AS")
	return StatementPlan{Tag: "CREATE TABLE AS", ChangesCatalog: true}
}

// createFunction allows SQL functions whose body reads no PII; pgveil
// cannot see what a body in another language reads.
func (a *analyzer) createFunction(s *pg.CreateFunctionStmt) StatementPlan {
	tag := "CREATE FUNCTION"
	if s.GetIsProcedure() {
		tag = "CREATE PROCEDURE"
	}
	lang, body := functionOptions(s.GetOptions())
	if lang == "" && s.GetSqlBody() != nil {
		lang = "sql"
	}
	if lang != "sql" {
		a.refuse(tag+" in "+languageName(lang), "pgveil cannot see what its body reads")
	}
	a.refuseReads(tag, func() {
		a.values(s.GetParameters(), newScope(nil))
		a.values(s.GetOptions(), newScope(nil))
		if s.GetSqlBody() != nil {
			a.value(s.GetSqlBody(), newScope(nil))
			return
		}
		a.functionBody(tag, body)
	})
	return StatementPlan{Tag: tag, ChangesCatalog: true}
}

// knownLanguages may be named in messages; another name could be a
// literal of the query (LANGUAGE 'x').
var knownLanguages = map[string]bool{"plpgsql": true, "c": true, "internal": true, "plperl": true,
	"plperlu": true, "plpython3u": true, "pltcl": true, "pltclu": true, "plv8": true}

func languageName(lang string) string {
	if knownLanguages[lang] {
		return "language " + lang
	}
	return "a language other than sql"
}

// functionOptions reads LANGUAGE and AS from CREATE FUNCTION options.
func functionOptions(opts []*pg.Node) (lang string, body []string) {
	for _, o := range opts {
		d := o.GetDefElem()
		switch d.GetDefname() {
		case "language":
			lang = strings.ToLower(d.GetArg().GetString_().GetSval())
		case "as":
			body = stringFields(d.GetArg().GetList().GetItems())
		}
	}
	return lang, body
}

// functionBody analyses the statements of a SQL function body.
func (a *analyzer) functionBody(tag string, body []string) {
	if len(body) == 0 {
		return
	}
	tree, err := pg.Parse(body[0])
	if err != nil {
		a.refuse(tag+" with a body pgveil cannot parse", "")
	}
	for _, raw := range tree.GetStmts() {
		a.nested(raw.GetStmt())
	}
}

// call allows CALL of allowlisted procedures only.
func (a *analyzer) call(s *pg.CallStmt) StatementPlan {
	fc := s.GetFunccall()
	schema, name := funcName(fc.GetFuncname())
	a.st.resolved = true
	f, err := a.cat.Function(schema, name)
	if err != nil {
		a.catalogError(err)
	}
	if f == nil || !f.Allowed {
		a.refuse("CALL "+name, "not in allow_functions")
	}
	l := derive(a.values(fc.GetArgs(), newScope(nil))...)
	out := &item{open: true}
	return withOutputs(StatementPlan{Tag: "CALL"}, out.withLineage(l))
}

func (it *item) withLineage(l lineage) *item {
	it.openLin = derive(it.openLin, l)
	return it
}
