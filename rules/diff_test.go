package rules

import (
	"reflect"
	"strings"
	"testing"
)

func mustParse(t *testing.T, body string) *Config {
	t.Helper()
	cfg, err := Parse([]byte("listen: 127.0.0.1:0\nupstream: 127.0.0.1:5432\n" + body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const diffOld = `
roles: {unmasked: [postgres, app], anonymize: [dpo]}
allow_functions: [public.f]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email: {mask: email, anonymize: random_email, lookup: true}
      phone: {mask: redact}
  public.gone:
    columns:
      x: {mask: redact}
`

const diffNew = `
roles: {unmasked: [postgres], anonymize: [dpo, dpo2]}
allow_functions: [public.f, public.g]
tables:
  public.customers:
    key: id
    columns:
      email: {mask: redact, anonymize: random_email}
      phone: {mask: redact, anonymize: blank}
      born:  {mask: "generalize:year", anonymize: nullify}
  public.orders:
    key: id
    parent: {table: public.customers, via: customer_id}
    on_anonymize: delete
    columns:
      note: {mask: redact}
`

func TestDiff(t *testing.T) {
	got := Diff(mustParse(t, diffOld), mustParse(t, diffNew))
	want := []Change{
		{Op: "removed", Kind: "role", List: "roles.unmasked", Role: "app"},
		{Op: "added", Kind: "role", List: "roles.anonymize", Role: "dpo2"},
		{Op: "added", Kind: "function", Name: "public.g"},
		{Op: "changed", Kind: "table", Table: "public.customers", Field: "anonymized_marker", Old: "anonymized_at"},
		{Op: "added", Kind: "column", Table: "public.customers", Column: "born", New: "mask: generalize:year, anonymize: nullify"},
		{Op: "changed", Kind: "column", Table: "public.customers", Column: "email", Field: "mask", Old: "email", New: "redact"},
		{Op: "changed", Kind: "column", Table: "public.customers", Column: "email", Field: "lookup", Old: "true", New: "false"},
		{Op: "changed", Kind: "column", Table: "public.customers", Column: "phone", Field: "anonymize", New: "blank"},
		{Op: "removed", Kind: "table", Table: "public.gone", Old: "on_anonymize: anonymize"},
		{Op: "removed", Kind: "column", Table: "public.gone", Column: "x", Old: "mask: redact"},
		{Op: "added", Kind: "table", Table: "public.orders", New: "key: id, parent: public.customers via customer_id, on_anonymize: delete"},
		{Op: "added", Kind: "column", Table: "public.orders", Column: "note", New: "mask: redact"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n%s\nwant\n%s", changeList(got), changeList(want))
	}
	if d := Diff(mustParse(t, diffNew), mustParse(t, diffNew)); len(d) != 0 {
		t.Errorf("Diff of equal rules: %v", d)
	}
	first := Diff(nil, mustParse(t, diffOld))
	if len(first) != 9 {
		t.Errorf("Diff from nothing:\n%s", changeList(first))
	}
	for _, c := range first {
		if c.Op != "added" {
			t.Errorf("Diff from nothing: %+v", c)
		}
	}
}

func changeList(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString("  ")
		for _, a := range c.Attrs() {
			b.WriteString(a.String() + " ")
		}
		b.WriteString("\n")
	}
	return b.String()
}
