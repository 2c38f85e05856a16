package rules

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Columns names the columns of a key or of a parent link, in order. YAML
// takes one column as a string (key: id) and several as a list
// (key: [id, started_at]). Empty means none is declared.
type Columns []string

// UnmarshalYAML reads a column name or a list of them. A name given twice,
// an empty name or an empty list is an error naming its key path and line (nodeError).
func (c *Columns) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			return nodeError(n, "a column name or a list of them, like id or [id, started_at]")
		}
		*c = Columns{n.Value}
		return nil
	case yaml.SequenceNode:
		var out Columns
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode || item.Value == "" {
				return nodeError(item, "a list of column names, like [id, started_at]")
			}
			if slices.Contains(out, item.Value) {
				return nodeError(item, "column %s is named twice", item.Value)
			}
			out = append(out, item.Value)
		}
		if len(out) == 0 {
			return nodeError(n, "an empty list names no column")
		}
		*c = out
		return nil
	}
	return nodeError(n, "a column name or a list of them, like id or [id, started_at]")
}

// MarshalYAML writes one column as a string and several as a list.
func (c Columns) MarshalYAML() (any, error) {
	if len(c) == 1 {
		return c[0], nil
	}
	return []string(c), nil
}

// String writes the columns as the rules do: id, or [id, started_at].
func (c Columns) String() string {
	if len(c) == 1 {
		return c[0]
	}
	if len(c) == 0 {
		return ""
	}
	return "[" + strings.Join(c, ", ") + "]"
}

// Tuple writes the columns as a parenthesised list for messages: (id) or
// (id, started_at).
func (c Columns) Tuple() string { return "(" + strings.Join(c, ", ") + ")" }

// Role says, for messages, what one of the columns is to the key they
// make: "the <noun>" for a one-column key, "part of the <noun> (a, b)"
// for a composite one.
func (c Columns) Role(noun string) string {
	if len(c) == 1 {
		return "the " + noun
	}
	return "part of the " + noun + " " + c.Tuple()
}

// Has reports whether name is one of the columns.
func (c Columns) Has(name string) bool { return slices.Contains(c, name) }
