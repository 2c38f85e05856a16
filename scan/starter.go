package scan

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Strategies written by StarterRules.
const (
	anonPhone   = "text:[anonphonenumber]"
	anonComment = "text:This comment has been anonymised based on customer request"
	// randomEmailLen is the length of what random_email writes:
	// anon-<uuid>@anonymized.invalid.
	randomEmailLen = 60
	// randomIDLen is the length of what random_id writes: anon-<uuid>.
	randomIDLen = 41
)

// ColumnRule is the rule StarterRules writes for one finding.
type ColumnRule struct {
	Mask      string
	Anonymize string // "" leaves it out
	Lookup    bool
	Why       string // why anonymize is left out, when it is
}

// RuleFor picks a mask and an anonymize strategy for a finding that fit
// its column as pgveil check requires: text strategies only on text
// columns, generalize only on dates and timestamps, no anonymize on key or
// foreign key columns or in a materialized view, nothing that writes NULL
// into a NOT NULL column, no fixed value in a unique column, and no fixed
// text longer than a varchar(n) allows.
func RuleFor(f Finding) ColumnRule {
	c := f.Column
	r := ColumnRule{Mask: maskFor(f.Kind, c.Class), Lookup: f.Kind == Email || f.Kind == NationalID}
	switch {
	case f.Table.Kind == 'm':
		r.Why = "a materialized view: anonymize the tables it reads"
		return r
	case c.Key:
		r.Why = "a primary or foreign key column: keys are never anonymized"
		return r
	}
	for _, s := range anonymizePrefs(f.Kind, c.Class) {
		if anonymizeFits(s, c) {
			r.Anonymize = s
			return r
		}
	}
	r.Why = "NOT NULL and unique: no anonymize strategy fits"
	return r
}

func maskFor(k Kind, class TypeClass) string {
	text := class == TextType
	switch {
	case k == Email && text:
		return "email"
	case k == Phone && text:
		return "partial:0,2"
	case k == CardNumber && text:
		return "partial:0,4"
	case k == BankAcct && text:
		return "partial:2,2"
	case k == BirthDate && (class == DateType || class == TimestampType):
		return "generalize:year"
	}
	return "redact"
}

// anonymizePrefs lists the anonymize strategies for a kind, best first.
func anonymizePrefs(k Kind, class TypeClass) []string {
	if class != TextType {
		return []string{"nullify"}
	}
	var first []string
	switch k {
	case Email:
		first = []string{"random_email"}
	case Phone:
		first = []string{anonPhone}
	case FreeText:
		first = []string{anonComment}
	case BirthDate:
		first = []string{"nullify"}
	}
	return append(first, "redact", "nullify", "random_id")
}

// anonymizeFits mirrors the anonymize checks of rules.Check.
func anonymizeFits(s string, c *Column) bool {
	text := c.Class == TextType
	var fixed string
	isFixed := false
	switch {
	case s == "random_email":
		return text && (c.MaxLen == 0 || c.MaxLen >= randomEmailLen)
	case s == "random_id":
		return text && (c.MaxLen == 0 || c.MaxLen >= randomIDLen)
	case strings.HasPrefix(s, "text:"):
		fixed, isFixed = strings.TrimPrefix(s, "text:"), true
	case s == "redact" && text:
		fixed, isFixed = "***", true
	}
	if isFixed {
		return text && !c.Unique && (c.MaxLen == 0 || utf8.RuneCountInString(fixed) <= c.MaxLen)
	}
	// nullify, or redact on a non-text column: NULL
	return !c.NotNull && !(c.Unique && c.NullsNotDistinct)
}

// StarterRules writes a rules file for the findings: one entry per table
// with a finding, keyed by schema.table, with its single-column primary
// key as key and an anonymized_at column as anonymized_marker when it has
// them, and each finding's rule with its evidence as a comment. listen and
// upstream are written as given, so that the file is a whole
// configuration that pgveil check accepts.
func StarterRules(findings []Finding, listen, upstream string) ([]byte, error) {
	root := mapping(false)
	root.HeadComment = "Starter rules written by pgveil scan. Review every column before use:\n" +
		"scan judges by names and a sample of values, and can be wrong both ways.\n" +
		"Every login role is masked until listed under roles.unmasked."
	add(root, "listen", scalar(listen))
	add(root, "upstream", scalar(upstream))
	tables := mapping(false)
	var cur *yaml.Node
	var curTable *Table
	for _, f := range findings {
		if f.Table != curTable {
			curTable, cur = f.Table, tableNode(f.Table)
			add(tables, f.Table.Name, cur)
		}
		add(cur.Content[len(cur.Content)-1], f.Column.Name, columnNode(f))
	}
	if len(tables.Content) == 0 {
		root.FootComment = "pgveil scan found no personal data."
	} else {
		add(root, "tables", tables)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("writing the rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing the rules: %w", err)
	}
	return out.Bytes(), nil
}

// tableNode is a table's entry; its last value is the columns mapping.
func tableNode(t *Table) *yaml.Node {
	n := mapping(false)
	switch {
	case len(t.Key) == 1:
		add(n, "key", scalar(t.Key[0]))
	case len(t.Key) > 1:
		add(n, "key", flowList(t.Key))
	case t.Kind != 'm':
		n.HeadComment = "no primary key: set key to a unique column (or columns) before using ANONYMIZE"
	}
	if t.Marker != "" && t.Kind != 'm' {
		add(n, "anonymized_marker", scalar(t.Marker))
	}
	add(n, "columns", mapping(false))
	return n
}

func columnNode(f Finding) *yaml.Node {
	r := RuleFor(f)
	n := mapping(true)
	add(n, "mask", scalar(r.Mask))
	if r.Anonymize != "" {
		add(n, "anonymize", scalar(r.Anonymize))
	}
	if r.Lookup {
		add(n, "lookup", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	n.LineComment = fmt.Sprintf("%s, %s confidence: %s", f.Kind, f.Confidence, f.Evidence())
	if r.Why != "" {
		n.LineComment += "; no anonymize: " + r.Why
	}
	return n
}

func mapping(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, scalar(key), v)
}

// flowList is a YAML list of strings written on one line: [id, started_at].
func flowList(vals []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, v := range vals {
		n.Content = append(n.Content, scalar(v))
	}
	return n
}
