package anonymize

import (
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// constMover replaces the constants of a WHERE clause by parameters, so
// that the text the server sees (and may log) holds no value of the
// statement.
type constMover struct {
	next   int      // the number of the next parameter
	values []string // the moved constants, text format, in parameter order
}

// move replaces, in place, every constant below n that can become a
// parameter. Kept verbatim are NULL, true and false, type modifiers, the
// position numbers of ORDER BY, GROUP BY (grouping sets included) and
// DISTINCT ON, and the field
// and form names of EXTRACT and NORMALIZE, none of which can hold
// personal data.
func (c *constMover) move(n *pg.Node) {
	walkTree(n, func(parent protoreflect.Message, field protoreflect.Name, index int, n *pg.Node) bool {
		k := n.GetAConst()
		if k == nil {
			return true
		}
		if !keepsConstant(parent, field, index) {
			c.replace(n, k)
		}
		return false
	})
}

// replace turns the constant node n into a parameter, cast to the type
// the constant would have had so that the server resolves operators and
// functions as it would for the constant.
func (c *constMover) replace(n *pg.Node, k *pg.A_Const) {
	value, typ, ok := constValue(k)
	if !ok {
		return
	}
	ref := pg.MakeParamRefNode(int32(c.next), -1)
	c.next++
	c.values = append(c.values, value)
	if typ != "" {
		ref = &pg.Node{Node: &pg.Node_TypeCast{TypeCast: &pg.TypeCast{
			Arg:      ref,
			TypeName: &pg.TypeName{Names: []*pg.Node{pg.MakeStrNode("pg_catalog"), pg.MakeStrNode(typ)}, Typemod: -1, Location: -1},
			Location: -1,
		}}}
	}
	n.Node = ref.Node
}

// constValue returns a constant's value in text format and the type the
// server gives such a constant ("" for a string, whose type comes from
// its context). ok is false for NULL and booleans, which stay.
func constValue(k *pg.A_Const) (value, typ string, ok bool) {
	switch v := k.Val.(type) {
	case *pg.A_Const_Ival:
		return strconv.FormatInt(int64(v.Ival.Ival), 10), "int4", true
	case *pg.A_Const_Fval:
		if _, err := strconv.ParseInt(v.Fval.Fval, 10, 64); err == nil {
			return v.Fval.Fval, "int8", true
		}
		return v.Fval.Fval, "numeric", true
	case *pg.A_Const_Sval:
		return v.Sval.Sval, "", true
	case *pg.A_Const_Bsval:
		return v.Bsval.Bsval, "varbit", true
	}
	return "", "", false
}

// keepsConstant reports whether a constant in this place must stay
// verbatim: the grammar takes only a constant there, or a number there is
// a position rather than a value.
func keepsConstant(parent protoreflect.Message, field protoreflect.Name, index int) bool {
	if parent == nil {
		return false
	}
	switch p := parent.Interface().(type) {
	case *pg.SortBy:
		return true
	case *pg.SelectStmt:
		return field == "group_clause" || field == "distinct_clause"
	case *pg.GroupingSet:
		return true
	case *pg.FuncCall:
		return field == "args" && p.Funcformat == pg.CoercionForm_COERCE_SQL_SYNTAX && keywordArg(p, index)
	}
	return false
}

// keywordArg reports whether argument index of a function call written in
// SQL syntax is a keyword the grammar stores as a string: EXTRACT's field
// and NORMALIZE's form.
func keywordArg(f *pg.FuncCall, index int) bool {
	if len(f.Funcname) == 0 {
		return false
	}
	switch f.Funcname[len(f.Funcname)-1].GetString_().GetSval() {
	case "extract":
		return index == 0
	case "normalize", "is_normalized":
		return index == 1
	}
	return false
}
