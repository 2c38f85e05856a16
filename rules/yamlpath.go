package rules

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The YAML decoder's errors name a line ("line 5: cannot unmarshal !!seq
// into string"), never the key. To name it, the file is parsed a second time
// into a node tree, and each node is indexed by its line with its key path
// (tables.public.customers.key) and the Go type the decoder fills from it.
// An error's line, what it says it found and the type it names then pick
// out one node: several can share a line in flow style ({a: [1], b: x}),
// but not with the same tag and type.

// located is one node of the document with where it sits.
type located struct {
	node  *yaml.Node
	path  string       // key path; for a key, the path of its mapping
	key   bool         // the node is a mapping key
	want  reflect.Type // what the decoder fills from a value node; nil when unknown
	inTyp reflect.Type // for a key: the type of its mapping
	used  bool         // already named by an earlier error
}

// yamlIndex holds the nodes of a document by line, in document order.
type yamlIndex map[int][]*located

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	typeErrorLine   = regexp.MustCompile(`^line (\d+)(?: column (\d+))?: (.*)$`)
	cannotUnmarshal = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	fieldNotFound   = regexp.MustCompile(`^field (.+) not found in type (.+)$`)
	keyDefined      = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
)

// indexYAML parses data into nodes typed after Config. A document that does
// not parse gives an empty index (the decoder has said why already).
func indexYAML(data []byte) yamlIndex {
	var doc yaml.Node
	idx := yamlIndex{}
	if yaml.Unmarshal(data, &doc) == nil {
		idx.walk(&doc, "", reflect.TypeFor[Config]())
	}
	return idx
}

func (x yamlIndex) add(l *located) { x[l.node.Line] = append(x[l.node.Line], l) }

// walk indexes n and its children; want is the Go type filled from n (nil
// below a type that decodes itself or one the schema does not describe).
func (x yamlIndex) walk(n *yaml.Node, path string, want reflect.Type) {
	for want != nil && want.Kind() == reflect.Pointer {
		want = want.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			x.walk(c, path, want)
		}
		return
	}
	x.add(&located{node: n, path: path, want: want})
	if want != nil && reflect.PointerTo(want).Implements(unmarshalerType) {
		want = nil // its own UnmarshalYAML reads the children
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			x.add(&located{node: k, path: path, key: true, inTyp: want})
			x.walk(v, joinPath(path, k.Value), childType(want, k.Value))
		}
	case yaml.SequenceNode:
		var elem reflect.Type
		if want != nil && (want.Kind() == reflect.Slice || want.Kind() == reflect.Array) {
			elem = want.Elem()
		}
		for i, c := range n.Content {
			x.walk(c, fmt.Sprintf("%s[%d]", path, i), elem)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// childType is the type decoded from the value of key in a mapping that
// fills t: a struct field by its yaml tag, or a map's element.
func childType(t reflect.Type, key string) reflect.Type {
	switch {
	case t == nil:
		return nil
	case t.Kind() == reflect.Map:
		return t.Elem()
	case t.Kind() != reflect.Struct:
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f.Type
		}
	}
	return nil
}

// find returns the first node on line that match accepts and that no
// earlier error named.
func (x yamlIndex) find(line int, match func(*located) bool) *located {
	for _, l := range x[line] {
		if !l.used && match(l) {
			l.used = true
			return l
		}
	}
	return nil
}

// cleanYAMLError rewrites the decoder's error: each of its lines becomes
// "key.path: line N: what is wrong". A line it cannot place is kept as the
// decoder wrote it.
func cleanYAMLError(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err // a syntax error: "yaml: line 3: mapping values are not allowed here"
	}
	idx := indexYAML(data)
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = idx.explain(e)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// explain rewrites one line of a TypeError.
func (x yamlIndex) explain(e string) string {
	m := typeErrorLine.FindStringSubmatch(e)
	if m == nil {
		return e
	}
	line, _ := strconv.Atoi(m[1])
	l, msg := x.place(line, m[2], m[3])
	if l == nil {
		return e
	}
	if l.path == "" {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Sprintf("%s: line %d: %s", l.path, line, msg)
}

// place finds the node an error is about and says what is wrong with it.
func (x yamlIndex) place(line int, column, msg string) (*located, string) {
	if column != "" { // from nodeError
		col, _ := strconv.Atoi(column)
		return x.find(line, func(l *located) bool { return l.node.Column == col }), msg
	}
	if m := cannotUnmarshal.FindStringSubmatch(msg); m != nil {
		l := x.find(line, func(l *located) bool {
			return !l.key && l.want != nil && l.want.String() == m[3] && l.node.ShortTag() == m[1]
		})
		if l == nil {
			return nil, ""
		}
		return l, fmt.Sprintf("expected %s, got %s", describeType(l.want), describeNode(l.node))
	}
	if m := fieldNotFound.FindStringSubmatch(msg); m != nil {
		l := x.find(line, func(l *located) bool {
			return l.key && l.node.Value == m[1] && (l.inTyp == nil || l.inTyp.String() == m[2])
		})
		return l, "unknown key " + m[1]
	}
	if m := keyDefined.FindStringSubmatch(msg); m != nil {
		l := x.find(line, func(l *located) bool { return l.key && l.node.Value == m[1] })
		return l, fmt.Sprintf("key %s is given twice (first at line %s)", m[1], m[2])
	}
	return nil, ""
}

// describeType says in words what a value of type t is written as.
func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// describeNode says what the file holds at n. Configuration values are not
// personal data; long ones are cut.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

// nodeError is the error an UnmarshalYAML method returns for node n. It is
// a *yaml.TypeError, so the decoder goes on and reports every error of the
// file at once; cleanYAMLError puts the key path of n in front.
func nodeError(n *yaml.Node, format string, a ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d column %d: %s", n.Line, n.Column, fmt.Sprintf(format, a...))}}
}
