package masking

import (
	"sort"
	"strings"

	"github.com/pgveil/pgveil/rules"
)

// lineage is what the analyser knows of one value: the PII columns it is
// derived from, and whether it is one of them passed through unchanged.
// The zero lineage is an exact value (derived from no PII).
type lineage struct {
	sources  []string // sorted, unique "schema.table.column"
	plain    bool     // the value is the PII column itself, unchanged
	strategy rules.Strategy
	lookup   bool // plain, and the column may be compared with = / IN
}

// pii reports whether the value derives from any PII column.
func (l lineage) pii() bool { return len(l.sources) > 0 }

// derived reports whether the value derives from PII and is not a plain column.
func (l lineage) derived() bool { return l.pii() && !l.plain }

// column names the first source for messages: "customers.email".
func (l lineage) column() string {
	if !l.pii() {
		return ""
	}
	return shortName(l.sources[0])
}

// shortName drops the schema of "schema.table.column".
func shortName(source string) string {
	if i := strings.IndexByte(source, '.'); i >= 0 && strings.Count(source, ".") >= 2 {
		return source[i+1:]
	}
	return source
}

// piiColumn is the lineage of a PII column read directly.
func piiColumn(source string, rule *rules.Column) lineage {
	return lineage{sources: []string{source}, plain: true, strategy: rule.Mask, lookup: rule.Lookup}
}

// derive is the lineage of a value computed from the given ones: it carries
// all their sources and is never plain.
func derive(ls ...lineage) lineage {
	var out lineage
	for _, l := range ls {
		out.sources = unionSorted(out.sources, l.sources)
	}
	return out
}

// merge is the lineage of a value that is one of a and b, depending on the
// row: UNION branches, VALUES rows, the merged column of a FULL JOIN. It is
// plain only when both are plain with the same strategy.
func merge(a, b lineage) lineage {
	out := derive(a, b)
	if a.plain && b.plain && a.strategy == b.strategy {
		out.plain, out.strategy, out.lookup = true, a.strategy, a.lookup && b.lookup
	}
	return out
}

// either is the lineage of a name that may denote a or b (the analyser
// could not tell which): the PII one when only one is, else their merge.
func either(a, b lineage) lineage {
	switch {
	case !a.pii():
		return b
	case !b.pii():
		return a
	}
	return merge(a, b)
}

// unionSorted merges two sorted, unique string slices.
func unionSorted(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	seen := make(map[string]bool, len(a)+len(b))
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// output turns a result column's lineage into the Output the proxy reads.
func (l lineage) output(name string) Output {
	o := Output{Name: name}
	if l.pii() {
		o.Sources = append([]string(nil), l.sources...)
		o.Plain = l.plain
		if l.plain {
			o.Strategy = l.strategy
		}
	}
	return o
}
