package rules

import (
	"reflect"
	"strings"
	"testing"
)

const keysBase = "listen: 127.0.0.1:6432\nupstream: 127.0.0.1:5432\ntables:\n"

func TestKeyTakesAColumnOrAList(t *testing.T) {
	cfg, err := Parse([]byte(keysBase + `  public.customers: {key: id, columns: {email: {mask: email}}}
  public.conversations:
    key: [id, started_at]
    columns: {transcript: {mask: redact}}
  public.notes:
    key: id
    parent: {table: public.conversations, via: [conversation_id, conversation_started_at]}
    columns: {note: {mask: redact}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Tables["public.customers"].Key; !reflect.DeepEqual(got, Columns{"id"}) || got.String() != "id" {
		t.Errorf("customers key = %#v (%s)", got, got)
	}
	if got := cfg.Tables["public.conversations"].Key; !reflect.DeepEqual(got, Columns{"id", "started_at"}) || got.String() != "[id, started_at]" {
		t.Errorf("conversations key = %#v (%s)", got, got)
	}
	if got := cfg.Tables["public.notes"].Parent.Via; got.Tuple() != "(conversation_id, conversation_started_at)" {
		t.Errorf("notes via = %#v", got)
	}
}

func TestKeyErrorsNameTheProblem(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"  public.t: {key: [], columns: {a: {mask: redact}}}\n", "an empty list names no column"},
		{"  public.t: {key: [id, id], columns: {a: {mask: redact}}}\n", "column id is named twice"},
		{"  public.t: {key: {id: 1}, columns: {a: {mask: redact}}}\n", "a column name or a list of them"},
		{"  public.t: {key: [[id]], columns: {a: {mask: redact}}}\n", "a list of column names"},
		{"  public.p: {key: [id, at], columns: {a: {mask: redact}}}\n  public.c: {key: id, parent: {table: public.p, via: p_id}, columns: {a: {mask: redact}}}\n",
			"tables.public.c.parent.via: names 1 column, but the key of public.p has 2 columns (id, at)"},
		{"  public.t: {key: id, columns: {a: {mask: random_id}}}\n", "tables.public.t.columns.a.mask: random_id is an anonymize strategy"},
	} {
		_, err := Parse([]byte(keysBase + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want …%s…", c.yaml, err, c.want)
		}
	}
}
