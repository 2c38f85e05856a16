package masking

import pg "github.com/pganalyze/pg_query_go/v6"

// column is one named value of a relation, a query result or a FROM entry.
type column struct {
	name string
	lin  lineage
}

// item is a set of columns: a FROM entry as the query sees it, or the
// result of a query. When open, the analyser does not know the columns (a
// function in FROM returning a record): every name resolves to openLin, and
// a * over it has an unknown width.
type item struct {
	alias   string // the name qualified references use
	schema  string // schema of an unaliased relation, for schema.table.column
	cols    []column
	open    bool
	openLin lineage
}

// find resolves a column name in the item.
func (it *item) find(name string) (lineage, bool) {
	var l lineage
	found := false
	for _, c := range it.cols {
		if c.name == name {
			l, found = either(l, c.lin), true
		}
	}
	if it.open {
		return either(l, it.openLin), true
	}
	return l, found
}

// all is the lineage of the whole row: derived from every column.
func (it *item) all() lineage {
	l := it.openLin
	for _, c := range it.cols {
		l = derive(l, c.lin)
	}
	return derive(l)
}

// holdsPII reports whether any column of the item is PII-derived.
func (it *item) holdsPII() bool { return it.all().pii() }

// add appends the columns of other (a * expansion).
func (it *item) add(other *item) {
	it.cols = append(it.cols, other.cols...)
	if other.open {
		it.open = true
		it.openLin = derive(it.openLin, other.openLin)
	}
}

// renamed returns a copy of it named alias, its first columns renamed.
func (it *item) renamed(alias string, colnames []*pg.Node) *item {
	out := &item{alias: alias, schema: it.schema, open: it.open, openLin: it.openLin}
	out.cols = append([]column(nil), it.cols...)
	for i, n := range colnames {
		if i < len(out.cols) {
			out.cols[i].name = n.GetString_().GetSval()
		}
	}
	return out
}

// withAlias applies a FROM-clause alias (or keeps name when there is none).
func (it *item) withAlias(name string, al *pg.Alias) *item {
	if al == nil {
		return it.renamed(name, nil)
	}
	out := it.renamed(al.GetAliasname(), al.GetColnames())
	out.schema = ""
	return out
}

// mergeItems is the result of a set operation or a recursive step: column
// by column, each value is one of the two.
func mergeItems(a, b *item) *item {
	out := &item{alias: a.alias, open: a.open || b.open, openLin: derive(a.openLin, b.openLin)}
	if len(a.cols) != len(b.cols) {
		out.open = true
		out.openLin = derive(out.openLin, a.all(), b.all())
	}
	for i, c := range a.cols {
		if i < len(b.cols) {
			c.lin = merge(c.lin, b.cols[i].lin)
		}
		out.cols = append(out.cols, c)
	}
	return out
}

// sameItem reports whether two items carry the same lineage (fixpoints).
func sameItem(a, b *item) bool {
	if a.open != b.open || len(a.cols) != len(b.cols) || !sameLineage(a.openLin, b.openLin) {
		return false
	}
	for i := range a.cols {
		if !sameLineage(a.cols[i].lin, b.cols[i].lin) {
			return false
		}
	}
	return true
}

func sameLineage(a, b lineage) bool {
	if a.plain != b.plain || a.strategy != b.strategy || a.lookup != b.lookup || len(a.sources) != len(b.sources) {
		return false
	}
	for i := range a.sources {
		if a.sources[i] != b.sources[i] {
			return false
		}
	}
	return true
}

// scope is one level of name resolution: a query and its FROM entries.
type scope struct {
	parent *scope
	items  []*item          // every named FROM entry, joins included
	top    []*item          // the FROM list itself, for an unqualified *
	ctes   map[string]*item // WITH queries defined at this level
	q      *queryState      // the SELECT level; nil outside a SELECT
}

// queryState holds what the rules need to know of one SELECT level.
type queryState struct {
	outputs *item
	// unordered is the rejection due when the level groups or
	// de-duplicates a plain PII value and has no ORDER BY.
	unordered *Rejection
}

func newScope(parent *scope) *scope {
	return &scope{parent: parent, q: &queryState{}}
}

// cte finds a WITH query by name, innermost first.
func (s *scope) cte(name string) *item {
	for l := s; l != nil; l = l.parent {
		if it, ok := l.ctes[name]; ok {
			return it
		}
	}
	return nil
}

// column resolves an unqualified column name. PostgreSQL takes the
// innermost level that has the name; the analyser takes the union over all
// levels, which is never less than what the server reads.
func (s *scope) column(name string) (lineage, bool) {
	var l lineage
	found := false
	for lv := s; lv != nil; lv = lv.parent {
		for _, it := range lv.items {
			if cl, ok := it.find(name); ok {
				l, found = either(l, cl), true
			}
		}
	}
	return l, found
}

// named finds the FROM entries a qualifier names: "c", or "public.customers"
// given as (schema, table).
func (s *scope) named(schema, name string) []*item {
	var out []*item
	for lv := s; lv != nil; lv = lv.parent {
		for _, it := range lv.items {
			if it.alias == name && (schema == "" || it.schema == schema) {
				out = append(out, it)
			}
		}
	}
	return out
}
