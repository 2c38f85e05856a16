package masking

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Errors are an oracle: a computation that fails for some values and not
// for others tells them apart, even when the proxy withholds the error's
// text (power(0, position('k' in email) - 1) fails exactly when the email
// holds no 'k'; ascii(email) * 20000000 fails when its first letter comes
// after 'k'). So a PII-derived value may only flow through operations that
// cannot fail whatever the value: the functions and operators listed
// below, in the argument positions listed, text casts, and the
// constructors (ROW, ARRAY, CASE results, COALESCE, JSON and XML
// elements). Anything else applied to it is refused.

const errorHint = "it can fail for some values, which tells them apart"

// argsAny allows PII-derived values in every argument position.
const argsAny = -1

// totalFunctions lists the pg_catalog functions that cannot fail on a
// PII-derived argument in the given positions (argsAny: all of them). A
// position not listed is one where some values raise an error: a length,
// a count or a position (negative, zero or huge), a pattern, a format
// string, a JSON key (NULL).
var totalFunctions = map[string][]int{
	// text
	"lower": {argsAny}, "upper": {argsAny}, "initcap": {argsAny}, "length": {argsAny},
	"char_length": {argsAny}, "character_length": {argsAny}, "octet_length": {argsAny},
	"bit_length": {argsAny}, "md5": {argsAny}, "reverse": {argsAny}, "quote_ident": {argsAny},
	"quote_literal": {argsAny}, "quote_nullable": {argsAny}, "concat": {argsAny},
	"concat_ws": {argsAny}, "btrim": {argsAny}, "ltrim": {argsAny}, "rtrim": {argsAny},
	"ascii": {argsAny}, "position": {argsAny},
	"strpos": {argsAny}, "starts_with": {argsAny}, "text": {argsAny}, "varchar": {argsAny},
	"bpchar": {argsAny}, "name": {argsAny}, "left": {0}, "right": {0}, "substr": {0},
	"substring": {0}, "split_part": {0, 1}, "lpad": {0, 2}, "rpad": {0, 2}, "overlay": {0, 1},
	"regexp_match": {0}, "regexp_like": {0}, "regexp_count": {0},
	"regexp_instr": {0}, "regexp_substr": {0}, "array_to_string": {argsAny}, "to_char": {0},
	"encode": {0}, "textsend": {argsAny}, "sha224": {argsAny}, "sha256": {argsAny}, "sha384": {argsAny},
	"sha512": {argsAny}, "hashtext": {argsAny}, "hashtextextended": {0}, "to_hex": {argsAny},
	// dates
	"date_part": {1}, "extract": {1}, "date_trunc": {1}, "age": {argsAny}, "isfinite": {argsAny},
	"timezone": {1},
	// JSON
	"to_json": {argsAny}, "to_jsonb": {argsAny}, "row_to_json": {argsAny},
	"array_to_json": {argsAny}, "json_build_array": {argsAny}, "jsonb_build_array": {argsAny},
	"json_strip_nulls": {argsAny}, "jsonb_strip_nulls": {argsAny}, "jsonb_pretty": {argsAny},
	"json_typeof": {argsAny}, "jsonb_typeof": {argsAny}, "json_extract_path": {argsAny},
	"jsonb_extract_path": {argsAny}, "json_extract_path_text": {argsAny},
	"jsonb_extract_path_text": {argsAny},
	// The base record is copied; the JSON's values are converted (a failure).
	"json_populate_record": {0}, "jsonb_populate_record": {0},
	// arrays
	"array_length": {argsAny}, "cardinality": {argsAny}, "array_ndims": {argsAny},
	"array_dims": {argsAny}, "array_upper": {argsAny}, "array_lower": {argsAny},
	"array_position": {argsAny}, "array_positions": {argsAny}, "array_append": {argsAny},
	"array_prepend": {argsAny}, "array_remove": {argsAny},
	// anything
	"num_nulls": {argsAny}, "num_nonnulls": {argsAny}, "pg_column_size": {argsAny},
	"pg_typeof": {argsAny}, "count": {argsAny},
	// aggregates
	"max": {argsAny}, "min": {argsAny}, "array_agg": {argsAny}, "string_agg": {argsAny},
	"json_agg": {argsAny}, "jsonb_agg": {argsAny}, "json_object_agg": {1},
	"jsonb_object_agg": {1}, "xmlagg": {argsAny}, "bool_and": {argsAny}, "bool_or": {argsAny},
	"every": {argsAny}, "sum": {argsAny}, "avg": {argsAny},
	// window functions
	"lag": {0, 2}, "lead": {0, 2}, "first_value": {0}, "last_value": {0}, "nth_value": {0},
}

// json_build_object and jsonb_build_object take keys (a NULL or
// non-scalar key fails) and values alternately: values may be PII.
var objectBuilders = map[string]bool{"json_build_object": true, "jsonb_build_object": true}

// format's first argument is the format string (a bad one fails).
// convert_to is not listed: an encoding that lacks a character fails, and
// the plan may not depend on the encoding's name (a literal).
const formatFunction = "format"

// totalCall refuses a built-in function given a PII-derived argument in a
// position where some values make it fail.
func (a *analyzer) totalCall(name string, fc *pg.FuncCall, args []lineage, sc *scope) {
	for i, l := range args {
		if !l.pii() || a.argIsTotal(name, fc, i) {
			continue
		}
		a.refusePII("function "+name, "function "+name+" of it", l, errorHint)
	}
	if name == "array_agg" {
		for i, n := range fc.GetArgs() {
			if args[i].pii() && a.mayBeArray(n, args[i], sc) {
				a.refusePII("array_agg of arrays", "array_agg of arrays computed from it", args[i],
					"arrays of different sizes cannot be aggregated, which tells them apart")
			}
		}
	}
}

// argIsTotal reports whether argument i of the named function cannot
// make it fail, whatever its value.
func (a *analyzer) argIsTotal(name string, fc *pg.FuncCall, i int) bool {
	switch {
	case objectBuilders[name]:
		return i%2 == 1
	case name == formatFunction:
		return i > 0
	}
	for _, p := range totalFunctions[name] {
		if p == argsAny || p == i {
			return true
		}
	}
	return false
}

// totalOperators cannot fail on PII-derived operands; patternOperators
// neither, as long as the pattern (the right operand) is not PII-derived.
var totalOperators = map[string]bool{
	"=": true, "<>": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true,
	"||": true, "->": true, "->>": true, "#>": true, "#>>": true, "?": true, "?|": true,
	"?&": true, "@>": true, "<@": true, "&&": true,
}

var patternOperators = map[string]bool{
	"~~": true, "!~~": true, "~~*": true, "!~~*": true, "~": true, "!~": true, "~*": true, "!~*": true,
}

// totalOperator refuses an operator that can fail on its PII-derived
// operands: arithmetic (overflow, out-of-range dates), patterns built from
// a value, and concatenation of arrays whose shapes follow a value.
func (a *analyzer) totalOperator(e *pg.A_Expr, left, right lineage, sc *scope) {
	if !left.pii() && !right.pii() {
		return
	}
	op := opName(e)
	refuse := func(l lineage, hint string) {
		a.refusePII("operator "+op, "the operator "+op+" on it", l, hint)
	}
	switch e.GetKind() {
	case pg.A_Expr_Kind_AEXPR_OP:
		switch {
		case patternOperators[op]:
			if right.pii() {
				refuse(right, "a pattern built from a value can be invalid, which tells values apart")
			}
		case op == "||":
			a.arrayConcat(e, left, right, sc)
		case !totalOperators[op]:
			refuse(derive(left, right), errorHint)
		}
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		switch {
		case patternOperators[op]:
			if right.pii() {
				refuse(right, "a pattern built from a value can be invalid, which tells values apart")
			}
		case !totalOperators[op] || op == "||":
			refuse(derive(left, right), errorHint)
		}
	case pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE, pg.A_Expr_Kind_AEXPR_SIMILAR:
		if right.pii() {
			refuse(right, "a pattern built from a value can be invalid, which tells values apart")
		}
	}
}

// arrayConcat refuses || of two operands that may both be arrays when one
// derives from PII: arrays of incompatible shapes fail to concatenate. A
// string constant may be read as an array literal of any shape.
func (a *analyzer) arrayConcat(e *pg.A_Expr, left, right lineage, sc *scope) {
	l, r := e.GetLexpr(), e.GetRexpr()
	leftArr := isConstant(l) || a.mayBeArray(l, left, sc)
	rightArr := isConstant(r) || a.mayBeArray(r, right, sc)
	if leftArr && rightArr && (left.pii() && a.mayBeArray(l, left, sc) || right.pii() && a.mayBeArray(r, right, sc)) {
		a.refusePII("operator ||", "concatenating arrays computed from it", derive(left, right),
			"arrays of incompatible shapes fail to concatenate, which tells them apart")
	}
}

// arrayFunctions return arrays.
var arrayFunctions = map[string]bool{
	"string_to_array": true, "regexp_split_to_array": true, "regexp_match": true, "array_agg": true,
	"array_append": true, "array_prepend": true, "array_cat": true, "array_remove": true,
	"array_replace": true, "array_fill": true, "array_positions": true, "regexp_matches": true,
}

// mayBeArray reports whether an expression may be an array (whose shape can
// follow a value). l is its lineage. A plain column is taken as a scalar;
// a computed column of a subquery or WITH query may be anything.
func (a *analyzer) mayBeArray(n *pg.Node, l lineage, sc *scope) bool {
	switch x := n.GetNode().(type) {
	case *pg.Node_AConst, *pg.Node_ParamRef, *pg.Node_RowExpr, *pg.Node_NullTest,
		*pg.Node_BooleanTest, *pg.Node_BoolExpr, *pg.Node_XmlExpr, *pg.Node_SqlvalueFunction:
		return false
	case *pg.Node_ColumnRef:
		return l.derived()
	case *pg.Node_FuncCall:
		_, name := funcName(x.FuncCall.GetFuncname())
		if arrayFunctions[name] {
			return true
		}
		_, known := totalFunctions[name]
		return !known && !objectBuilders[name] && name != formatFunction
	case *pg.Node_TypeCast:
		return len(x.TypeCast.GetTypeName().GetArrayBounds()) > 0
	case *pg.Node_AExpr:
		if x.AExpr.GetKind() != pg.A_Expr_Kind_AEXPR_OP || opName(x.AExpr) != "||" {
			return false
		}
		return a.mayBeArray(x.AExpr.GetLexpr(), l, sc) || a.mayBeArray(x.AExpr.GetRexpr(), l, sc)
	case *pg.Node_AIndirection:
		for _, step := range x.AIndirection.GetIndirection() {
			if ind := step.GetAIndices(); ind != nil && ind.GetIsSlice() {
				return true
			}
		}
		return false
	case *pg.Node_CoalesceExpr:
		for _, arg := range x.CoalesceExpr.GetArgs() {
			if a.mayBeArray(arg, l, sc) {
				return true
			}
		}
		return false
	case *pg.Node_CaseExpr:
		for _, w := range x.CaseExpr.GetArgs() {
			if a.mayBeArray(w.GetCaseWhen().GetResult(), l, sc) {
				return true
			}
		}
		return a.mayBeArray(x.CaseExpr.GetDefresult(), l, sc)
	case nil:
		return false
	}
	return true
}

// arrayConstructor refuses ARRAY[...] of several elements when a
// PII-derived one may itself be an array: sub-arrays of different shapes
// fail to build a multi-dimensional array.
func (a *analyzer) arrayConstructor(arr *pg.A_ArrayExpr, sc *scope) lineage {
	elems := arr.GetElements()
	ls := a.values(elems, sc)
	l := derive(ls...)
	if len(elems) < 2 || !l.pii() || a.views > 0 {
		return l
	}
	for i, n := range elems {
		if ls[i].pii() && a.mayBeArray(n, ls[i], sc) {
			a.refusePII("ARRAY[...] of arrays", "ARRAY[...] of arrays computed from it", ls[i],
				"arrays of different sizes cannot be combined, which tells them apart")
		}
	}
	return l
}

// totalNode refuses the expression nodes that can fail on a PII-derived
// value: XMLPI and XMLROOT content, XMLSERIALIZE, SQL/JSON queries, JSON
// object keys, and values read as JSON (FORMAT JSON).
func (a *analyzer) totalNode(n *pg.Node, l lineage, sc *scope) {
	if !l.pii() || a.views > 0 {
		return
	}
	refuse := func(l lineage, construct string) {
		if l.pii() {
			a.refusePII(construct, construct+" of it", l, errorHint)
		}
	}
	switch x := n.GetNode().(type) {
	case *pg.Node_XmlExpr:
		switch x.XmlExpr.GetOp() {
		case pg.XmlExprOp_IS_XMLPI, pg.XmlExprOp_IS_XMLROOT:
			refuse(l, strings.ToUpper(xmlExprNames[x.XmlExpr.GetOp()]))
		}
	case *pg.Node_XmlSerialize:
		refuse(l, "XMLSERIALIZE")
	case *pg.Node_JsonFuncExpr:
		refuse(l, "JSON_"+strings.ToUpper(figureName(n)))
	case *pg.Node_JsonSerializeExpr:
		refuse(l, "JSON_SERIALIZE")
	case *pg.Node_JsonValueExpr:
		if f := x.JsonValueExpr.GetFormat(); f != nil && f.GetFormatType() != pg.JsonFormatType_JS_FORMAT_DEFAULT {
			refuse(l, "FORMAT JSON")
		}
	case *pg.Node_JsonKeyValue:
		refuse(a.value(x.JsonKeyValue.GetKey(), sc), "a JSON object key")
	}
}
