package rules

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
)

// Change is one difference between two versions of the rules: a table, a
// column, a role or an allowed function added or removed, or one setting
// of a table or column changed. It holds names and strategies only, never
// data.
type Change struct {
	Op     string `json:"op"`               // added, removed or changed
	Kind   string `json:"kind"`             // table, column, role or function
	Table  string `json:"table,omitempty"`  // schema.table, for a table or column
	Column string `json:"column,omitempty"` // for a column
	Role   string `json:"role,omitempty"`   // for a role
	List   string `json:"list,omitempty"`   // roles.unmasked or roles.anonymize, for a role
	Name   string `json:"name,omitempty"`   // for a function of allow_functions
	Field  string `json:"field,omitempty"`  // for changed: key, anonymized_marker, parent, on_anonymize, mask, anonymize, lookup
	Old    string `json:"old,omitempty"`    // for changed, and for what is removed: its settings
	New    string `json:"new,omitempty"`    // for changed, and for what is added: its settings

	// Database is set for a table or column of a database's own rules
	// (databases.NAME.tables); "" for the top-level tables.
	Database string `json:"database,omitempty"`
}

// Attrs gives the change as log attributes, leaving out empty ones.
func (c Change) Attrs() []slog.Attr {
	attrs := []slog.Attr{slog.String("op", c.Op), slog.String("kind", c.Kind)}
	for _, kv := range [][2]string{{"database", c.Database}, {"table", c.Table}, {"column", c.Column}, {"role", c.Role}, {"list", c.List},
		{"name", c.Name}, {"field", c.Field}, {"old", c.Old}, {"new", c.New}} {
		if kv[1] != "" {
			attrs = append(attrs, slog.String(kv[0], kv[1]))
		}
	}
	return attrs
}

// Diff lists what changed from old to new in the rules: the roles lists,
// allow_functions and the tables with their columns, sorted by kind and
// name. A nil old is an empty configuration: everything is added. A table
// added or removed is one change, followed by one per column.
func Diff(old, new *Config) []Change {
	if old == nil {
		old = &Config{}
	}
	if new == nil {
		new = &Config{}
	}
	var out []Change
	out = append(out, diffList("role", "roles.unmasked", old.Roles.Unmasked, new.Roles.Unmasked)...)
	out = append(out, diffList("role", "roles.anonymize", old.Roles.Anonymize, new.Roles.Anonymize)...)
	out = append(out, diffList("function", "", old.AllowFunctions, new.AllowFunctions)...)
	for _, name := range unionKeys(old.Tables, new.Tables) {
		out = append(out, diffTable(name, old.Tables[name], new.Tables[name])...)
	}
	return append(out, diffDatabases(old, new)...)
}

// diffList lists the names added to and removed from a list.
func diffList(kind, list string, old, new []string) []Change {
	var out []Change
	add := func(op, name string) {
		c := Change{Op: op, Kind: kind, List: list}
		if kind == "role" {
			c.Role = name
		} else {
			c.Name = name
		}
		out = append(out, c)
	}
	for _, n := range sortedUnique(new) {
		if !slices.Contains(old, n) {
			add("added", n)
		}
	}
	for _, n := range sortedUnique(old) {
		if !slices.Contains(new, n) {
			add("removed", n)
		}
	}
	return out
}

// diffTable lists the changes of one table and its columns.
func diffTable(name string, old, new *Table) []Change {
	var out []Change
	switch {
	case old == nil && new == nil:
		return nil
	case old == nil:
		out = append(out, Change{Op: "added", Kind: "table", Table: name, New: tableSettings(new)})
		old = &Table{}
	case new == nil:
		out = append(out, Change{Op: "removed", Kind: "table", Table: name, Old: tableSettings(old)})
		new = &Table{}
	default:
		for _, f := range tableFields {
			if o, n := f.get(old), f.get(new); o != n {
				out = append(out, Change{Op: "changed", Kind: "table", Table: name, Field: f.name, Old: o, New: n})
			}
		}
	}
	for _, col := range unionKeys(old.Columns, new.Columns) {
		out = append(out, diffColumn(name, col, old.Columns[col], new.Columns[col])...)
	}
	return out
}

// diffColumn lists the changes of one column.
func diffColumn(table, name string, old, new *Column) []Change {
	switch {
	case old == nil && new == nil:
		return nil
	case old == nil:
		return []Change{{Op: "added", Kind: "column", Table: table, Column: name, New: columnSettings(new)}}
	case new == nil:
		return []Change{{Op: "removed", Kind: "column", Table: table, Column: name, Old: columnSettings(old)}}
	}
	var out []Change
	for _, f := range columnFields {
		if o, n := f.get(old), f.get(new); o != n {
			out = append(out, Change{Op: "changed", Kind: "column", Table: table, Column: name, Field: f.name, Old: o, New: n})
		}
	}
	return out
}

// field is one setting of a table or column, as text.
type field[T any] struct {
	name string
	get  func(T) string
}

var tableFields = []field[*Table]{
	{"key", func(t *Table) string { return t.Key.String() }},
	{"anonymized_marker", func(t *Table) string { return t.AnonymizedMarker }},
	{"parent", func(t *Table) string {
		if t.Parent == nil {
			return ""
		}
		return t.Parent.Table + " via " + t.Parent.Via.String()
	}},
	{"on_anonymize", func(t *Table) string { return t.OnAnonymize }},
}

var columnFields = []field[*Column]{
	{"mask", func(c *Column) string { return c.Mask.String() }},
	{"anonymize", func(c *Column) string { return c.Anonymize.String() }},
	{"lookup", func(c *Column) string { return strconv.FormatBool(c.Lookup) }},
}

// settings writes the non-empty fields as "name: value, ...".
func settings[T any](fields []field[T], v T) string {
	s := ""
	for _, f := range fields {
		val := f.get(v)
		if val == "" || val == "false" {
			continue
		}
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%s: %s", f.name, val)
	}
	return s
}

func tableSettings(t *Table) string   { return settings(tableFields, t) }
func columnSettings(c *Column) string { return settings(columnFields, c) }

// unionKeys returns the keys of both maps, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := sortedKeys(a)
	for _, k := range sortedKeys(b) {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedUnique(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}
