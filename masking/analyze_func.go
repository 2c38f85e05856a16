package masking

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// funcCall analyses a function, aggregate or window function call.
func (a *analyzer) funcCall(fc *pg.FuncCall, sc *scope) lineage {
	schema, name := funcName(fc.GetFuncname())
	args := a.values(fc.GetArgs(), sc)
	if schema == "" && a.fieldNotation(name, fc, sc) {
		// email(c) reads the column c.email, as c.email reads email(c).
		a.checkFunction(schema, name, nil, args, sc)
	} else {
		a.checkFunction(schema, name, fc, args, sc)
	}
	a.pred(fc.GetAggFilter(), sc, "FILTER")
	result := derive(args...)
	if fc.GetAggWithinGroup() {
		// The WITHIN GROUP keys are the aggregated values (mode, percentiles).
		for _, sb := range fc.GetAggOrder() {
			result = derive(result, a.value(sb.GetSortBy().GetNode(), sc))
		}
	} else {
		a.sortKeys(fc.GetAggOrder(), sc, "ORDER BY in an aggregate", a.value)
	}
	if w := fc.GetOver(); w != nil {
		a.windowDef(w, sc)
	}
	if isCount(schema, name) {
		return a.count(fc, args, sc)
	}
	return result
}

// fieldNotation reports whether f(c) may be the functional notation of the
// column c.f: one argument naming a FROM entry that has a column f.
func (a *analyzer) fieldNotation(name string, fc *pg.FuncCall, sc *scope) bool {
	args := fc.GetArgs()
	if len(args) != 1 || fc.GetAggStar() || fc.GetAggDistinct() || fc.GetOver() != nil {
		return false
	}
	fields := stringFields(args[0].GetColumnRef().GetFields())
	if len(fields) != 1 {
		return false
	}
	for _, it := range sc.named("", fields[0]) {
		if _, ok := it.find(name); ok {
			return true
		}
	}
	return false
}

func isCount(schema, name string) bool {
	return name == "count" && (schema == "" || schema == "pg_catalog")
}

// count returns no part of any value: count(col) and count(DISTINCT col)
// of a plain column are exact. Over a computed value, the number of
// non-NULL or distinct results can tell what the values are.
func (a *analyzer) count(fc *pg.FuncCall, args []lineage, sc *scope) lineage {
	l := derive(args...)
	for _, arg := range args {
		if !arg.derived() {
			continue
		}
		if fc.GetAggDistinct() && a.views == 0 {
			a.refusePII("count(DISTINCT)", "count(DISTINCT) of a value computed from it", arg, "")
		}
		return l
	}
	return lineage{}
}

// jsonAgg analyses JSON_OBJECTAGG and JSON_ARRAYAGG like other aggregates.
func (a *analyzer) jsonAgg(c *pg.JsonAggConstructor, n *pg.Node, sc *scope) lineage {
	var l lineage
	for _, kid := range children(n) {
		if kid.GetJsonAggConstructor() == nil {
			l = derive(l, a.value(kid, sc))
		}
	}
	a.pred(c.GetAggFilter(), sc, "FILTER")
	a.sortKeys(c.GetAggOrder(), sc, "ORDER BY in an aggregate", a.value)
	if w := c.GetOver(); w != nil {
		a.windowDef(w, sc)
	}
	return l
}

// checkFunction applies the rules on calling a function: functions that
// run SQL or read data on their own are refused; so are functions with side
// effects given a PII-derived argument, set-returning functions whose
// number of rows could follow a PII value, and any function outside
// pg_catalog that the rules do not allow (its code runs on raw values).
// fc is nil for the c.f and (c).f notations.
func (a *analyzer) checkFunction(schema, name string, fc *pg.FuncCall, args []lineage, sc *scope) {
	builtin := schema == "" || schema == "pg_catalog"
	if builtin && name == "set_config" {
		a.setConfig(fc) // in a view too: it would change the session's settings under the analyser
	}
	if a.views > 0 {
		return
	}
	l := derive(args...)
	if builtin && runsOnItsOwn(name) {
		a.refuse("function "+name, "it runs SQL or reads data on its own")
	}
	if builtin && hasSideEffect(name) && l.pii() {
		a.refusePIIAs(ReasonSideChannel, "function "+name, "passing it to "+name, l, "")
	}
	if builtin && (name == "div" || name == "mod") {
		a.mayFail(l, "function "+name)
	}
	if builtin && setReturning[name] && l.pii() && !a.fixedRows(name, fc, sc) {
		a.refusePIIAs(ReasonOracle, "function "+name, "the set-returning function "+name+" over it", l,
			"the number of rows it returns can tell what the value is")
	}
	var withPII lineage
	if fc != nil {
		withPII = l
	}
	f := a.allowedFunction(schema, name, withPII)
	if f != nil && f.Schema == "pg_catalog" && fc != nil && l.pii() && !setReturning[name] {
		a.totalCall(name, fc, args, sc)
	}
}

// allowedFunction refuses a function outside pg_catalog that the rules do
// not allow, and returns what the catalog knows of it. information_schema's
// own helpers (created by initdb) are allowed on values that are not PII:
// pgJDBC's getPrimaryKeys and getIndexInfo call _pg_expandarray on
// pg_index.indkey; on a PII value they are refused like any SQL function. A name the catalog
// does not know does not exist (the server raises the error) or is a
// column read in function notation; but a call of an unknown function on
// a PII-derived value is refused (withPII): the function may exist by the
// time the server runs the text, or in a schema the analyser does not
// search (pg_temp, whose functions are refused by name).
func (a *analyzer) allowedFunction(schema, name string, withPII lineage) *Function {
	a.st.resolved = true
	if isTempSchema(schema) {
		a.refuse("function "+schema+"."+name, "functions in pg_temp are not in allow_functions")
	}
	f, err := a.cat.Function(schema, name)
	if err != nil {
		a.catalogError(err)
	}
	switch {
	case f == nil && withPII.pii() && a.views == 0:
		fn := qualifiedName(schema, name)
		a.refusePII("function "+fn, "passing it to function "+fn+", which pgveil does not know,", withPII,
			"the function may exist by the time the statement runs")
	case f == nil || f.Allowed || f.Schema == "pg_catalog":
		return f
	case f.System && f.Schema == "information_schema" && !withPII.pii():
		return f // initdb's own SQL helpers, on values that are not PII
	}
	a.refuse("function "+f.Schema+"."+f.Name, "language "+f.Language+"; not in allow_functions")
	return nil
}

// isTempSchema reports whether schema names a session's temporary schema.
func isTempSchema(schema string) bool {
	s := strings.ToLower(schema)
	return strings.HasPrefix(s, "pg_temp") || strings.HasPrefix(s, "pg_toast_temp")
}

func qualifiedName(schema, name string) string {
	if schema == "" {
		return name
	}
	return schema + "." + name
}

// sqlRunners run a query given as text, read whole tables, files or the
// WAL on their own: pgveil cannot see what they read.
var sqlRunners = map[string]bool{
	"query_to_xml": true, "query_to_xml_and_xmlschema": true, "query_to_xmlschema": true,
	"cursor_to_xml": true, "cursor_to_xmlschema": true,
	"table_to_xml": true, "table_to_xml_and_xmlschema": true, "table_to_xmlschema": true,
	"schema_to_xml": true, "schema_to_xml_and_xmlschema": true, "schema_to_xmlschema": true,
	"database_to_xml": true, "database_to_xml_and_xmlschema": true, "database_to_xmlschema": true,
	"ts_stat": true, "pg_read_file": true, "pg_read_binary_file": true,
	"lo_import": true, "lo_export": true, "pg_mcv_list_items": true,
	"pg_logical_slot_get_changes": true, "pg_logical_slot_peek_changes": true,
	"pg_logical_slot_get_binary_changes": true, "pg_logical_slot_peek_binary_changes": true,
	"get_raw_page": true, "heap_page_items": true, "heap_page_item_attrs": true,
	"tuple_data_split": true, "bt_page_items": true, "brin_page_items": true, "gin_leafpage_items": true,
	"pg_stat_get_activity": true, "pg_stat_statements": true, "pg_stat_get_backend_activity": true,
}

func runsOnItsOwn(name string) bool {
	return sqlRunners[name] || strings.HasPrefix(name, "dblink")
}

// sideEffects keep or send what they are given (settings, notifications,
// locks, sequences, large objects, files) or take time in proportion to it.
var sideEffects = map[string]bool{
	"set_config": true, "pg_notify": true, "nextval": true, "setval": true,
	"pg_file_write": true, "pg_file_rename": true, "pg_file_unlink": true,
	"pg_logical_emit_message": true, "pg_sleep": true, "pg_sleep_for": true, "pg_sleep_until": true,
	"pg_cancel_backend": true, "pg_terminate_backend": true,
}

func hasSideEffect(name string) bool {
	return sideEffects[name] || strings.HasPrefix(name, "lo_") ||
		strings.HasPrefix(name, "pg_advisory_") || strings.HasPrefix(name, "pg_try_advisory_")
}

// setReturning lists pg_catalog's set-returning functions that can take a
// PII-derived argument.
var setReturning = map[string]bool{
	"generate_series": true, "generate_subscripts": true, "unnest": true,
	"regexp_matches": true, "regexp_split_to_table": true, "string_to_table": true,
	"json_array_elements": true, "json_array_elements_text": true,
	"jsonb_array_elements": true, "jsonb_array_elements_text": true,
	"json_each": true, "json_each_text": true, "jsonb_each": true, "jsonb_each_text": true,
	"json_object_keys": true, "jsonb_object_keys": true,
	"json_populate_recordset": true, "jsonb_populate_recordset": true,
	"json_to_recordset": true, "jsonb_to_recordset": true,
	"jsonb_path_query": true, "jsonb_path_query_tz": true,
	"ts_debug": true, "ts_parse": true, "pg_options_to_table": true, "aclexplode": true,
}

// fixedRows reports whether a set-returning call returns a number of rows
// fixed by the text: unnest of ARRAY[...] constructors, and the key/value
// functions over a whole row turned into JSON.
func (a *analyzer) fixedRows(name string, fc *pg.FuncCall, sc *scope) bool {
	args := fc.GetArgs()
	switch name {
	case "unnest":
		return len(args) > 0 && a.scalarArrays(args, sc)
	case "json_each", "json_each_text", "jsonb_each", "jsonb_each_text", "json_object_keys", "jsonb_object_keys":
		return len(args) == 1 && a.rowAsJSON(args[0], sc)
	}
	return false
}

// scalarArrays reports whether every argument is an ARRAY[...] whose
// elements are constants or column references that are not computed: a
// computed element could be an array, making a multi-dimensional array
// that unnest flattens into as many rows as it has elements.
func (a *analyzer) scalarArrays(args []*pg.Node, sc *scope) bool {
	for _, n := range args {
		arr := n.GetAArrayExpr()
		if arr == nil {
			return false
		}
		for _, e := range arr.GetElements() {
			if !isConstant(e) && (e.GetColumnRef() == nil || a.columnRef(e.GetColumnRef(), sc).derived()) {
				return false
			}
		}
	}
	return true
}

// rowAsJSON reports whether n is to_json(row), to_jsonb(row) or
// row_to_json(row) of a whole row or a ROW(...).
func (a *analyzer) rowAsJSON(n *pg.Node, sc *scope) bool {
	fc := n.GetFuncCall()
	_, name := funcName(fc.GetFuncname())
	if name != "to_json" && name != "to_jsonb" && name != "row_to_json" || len(fc.GetArgs()) != 1 {
		return false
	}
	arg := fc.GetArgs()[0]
	return arg.GetRowExpr() != nil || arg.GetColumnRef() != nil && a.isRow(arg, sc)
}

// setConfig allows set_config only with a constant setting name that is
// not an identity setting, and of search_path only in the one form the
// session can follow (pathCall).
func (a *analyzer) setConfig(fc *pg.FuncCall) {
	args := fc.GetArgs()
	if len(args) == 0 {
		return
	}
	name := a.settingsName
	if fc == nil || fc != a.settingsCall {
		c := args[0].GetAConst()
		if c == nil || c.GetSval() == nil {
			a.refuse("set_config with a setting name that is not a constant", "")
		}
		name = strings.ToLower(c.GetSval().GetSval())
	}
	if name == "search_path" {
		a.pathSetConfig(fc)
		return
	}
	if _, ok := identityNames[name]; ok {
		a.refuse("set_config of "+name, "it changes who the session is or how it resolves names")
	}
	if steersPlan(name) {
		a.refuseAs(ReasonOracle, "set_config of "+name, planHint)
	}
}
