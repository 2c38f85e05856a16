package masking

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// emptyNode returns a Node whose oneof holds an empty message of field fd.
func emptyNode(fd protoreflect.FieldDescriptor) *pg.Node {
	n := &pg.Node{}
	m := n.ProtoReflect()
	m.Set(fd, m.NewField(fd))
	return n
}

func oneofFields() protoreflect.FieldDescriptors {
	return (&pg.Node{}).ProtoReflect().Descriptor().Oneofs().ByName("node").Fields()
}

// TestEveryNodeTypeClassified enumerates every node type of pg_query's
// Node oneof and fails when one is neither handled nor listed as rejected.
// Handled types must go through the analyser without being reported as
// unsupported (and without panicking, even empty); rejected ones must be
// reported as unsupported.
func TestEveryNodeTypeClassified(t *testing.T) {
	fields := oneofFields()
	seen := map[string]bool{}
	for i := 0; i < fields.Len(); i++ {
		n := emptyNode(fields.Get(i))
		name := nodeType(n)
		seen[name] = true
		class := nodeClassOf(n)
		if class == nodeUnclassified {
			t.Errorf("node type %s (oneof field %s) is not classified in walk.go's nodeClasses", name, fields.Get(i).Name())
			continue
		}
		err := driveNode(n)
		unsupported := "pgveil: " + name + " is not supported for masked roles"
		var rej *Rejection
		if err != nil && !errors.As(err, &rej) {
			t.Errorf("%s: unexpected error %v", name, err)
			continue
		}
		got := rej != nil && rej.Error() == unsupported
		if want := class == nodeRejected; got != want {
			t.Errorf("%s (class %d): reported unsupported = %v, want %v (error: %v)", name, class, got, want, err)
		}
	}
	for name := range nodeClasses {
		if !seen[name] {
			t.Errorf("nodeClasses lists %s, which is not a node type of pg_query", name)
		}
	}
}

// driveNode runs one node through the analyser where it belongs.
func driveNode(n *pg.Node) (err error) {
	a := &analyzer{cat: newTestCatalog(), opt: Options{MaxViewDepth: 4}}
	a.st = newStmtState()
	var plan *Plan
	defer catchBailout(&plan, &err)
	sc := newScope(nil)
	switch x := n.GetNode().(type) {
	case *pg.Node_JoinExpr, *pg.Node_RangeSubselect, *pg.Node_RangeFunction, *pg.Node_RangeTableFunc,
		*pg.Node_RangeTableSample, *pg.Node_JsonTable, *pg.Node_RangeVar:
		a.fromItem(n, sc)
	case *pg.Node_WithClause:
		a.with(x.WithClause, sc)
	case *pg.Node_CommonTableExpr:
		a.with(&pg.WithClause{Ctes: []*pg.Node{n}}, sc)
	default:
		if nodeClassOf(n) == nodeStmt {
			a.statement(n)
		} else {
			a.value(n, sc)
		}
	}
	return nil
}

// TestChildrenCoverEveryField fills every message field of every node
// type and checks that children returns each of them: a field the walker
// skipped would be a PII reference the analyser never sees.
func TestChildrenCoverEveryField(t *testing.T) {
	fields := oneofFields()
	marker := func() *pg.Node { return pg.MakeStrNode("marker") }
	for i := 0; i < fields.Len(); i++ {
		n := emptyNode(fields.Get(i))
		msg := reflect.ValueOf(n.GetNode()).Elem().Field(0).Elem()
		want := 0
		for j := 0; j < msg.NumField(); j++ {
			f := msg.Field(j)
			if !msg.Type().Field(j).IsExported() {
				continue
			}
			want += fillField(f, marker)
		}
		if got := len(children(n)); got != want {
			t.Errorf("%s: children returned %d of %d filled fields", nodeType(n), got, want)
		}
	}
}

// fillField sets a node or node-list field to markers, and a node-message
// field to an empty message; it returns how many children that makes.
func fillField(f reflect.Value, marker func() *pg.Node) int {
	nodeT := reflect.TypeOf(&pg.Node{})
	switch {
	case f.Type() == nodeT:
		f.Set(reflect.ValueOf(marker()))
		return 1
	case f.Kind() == reflect.Slice && f.Type().Elem() == nodeT:
		f.Set(reflect.ValueOf([]*pg.Node{marker(), marker()}))
		return 2
	case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
		f.Set(reflect.New(f.Type().Elem()))
		return 1
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Pointer:
		s := reflect.MakeSlice(f.Type(), 1, 1)
		s.Index(0).Set(reflect.New(f.Type().Elem().Elem()))
		f.Set(s)
		return 1
	}
	return 0
}

// TestNodeClassNames checks the class lists use the names nodeType gives.
func TestNodeClassNames(t *testing.T) {
	n := &pg.Node{Node: &pg.Node_String_{String_: &pg.String{}}}
	if got := nodeType(n); got != "String" {
		t.Fatalf("nodeType = %q, want String", got)
	}
	if !strings.Contains(nodeType(pg.MakeAConstStrNode("x", 0)), "A_Const") {
		t.Fatalf("nodeType of A_Const = %q", nodeType(pg.MakeAConstStrNode("x", 0)))
	}
}
