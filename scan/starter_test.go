package scan

import (
	"strings"
	"testing"
)

func TestRuleForHonoursConstraints(t *testing.T) {
	tbl := &Table{Name: "public.t", Kind: 'r'}
	mv := &Table{Name: "public.mv", Kind: 'm'}
	cases := []struct {
		name        string
		table       *Table
		kind        Kind
		col         Column
		mask, anon  string
		lookup      bool
		whyContains string
	}{
		{"email", tbl, Email, Column{Class: TextType}, "email", "random_email", true, ""},
		{"unique NOT NULL email", tbl, Email, Column{Class: TextType, Unique: true, NotNull: true}, "email", "random_email", true, ""},
		{"email in varchar(40)", tbl, Email, Column{Class: TextType, MaxLen: 40}, "email", "redact", true, ""},
		{"phone", tbl, Phone, Column{Class: TextType}, "partial:0,2", anonPhone, false, ""},
		{"phone in varchar(12)", tbl, Phone, Column{Class: TextType, MaxLen: 12}, "partial:0,2", "redact", false, ""},
		{"unique phone", tbl, Phone, Column{Class: TextType, Unique: true}, "partial:0,2", "nullify", false, ""},
		{"unique NOT NULL phone", tbl, Phone, Column{Class: TextType, Unique: true, NotNull: true}, "partial:0,2", "random_id", false, ""},
		{"unique NOT NULL varchar(64) fnr", tbl, NationalID, Column{Class: TextType, Unique: true, NotNull: true, MaxLen: 64}, "redact", "random_id", true, ""},
		{"unique NOT NULL email", tbl, Email, Column{Class: TextType, Unique: true, NotNull: true}, "email", "random_email", true, ""},
		{"unique NULLS NOT DISTINCT name", tbl, PersonName, Column{Class: TextType, Unique: true, NullsNotDistinct: true}, "redact", "random_id", false, ""},
		{"numeric phone", tbl, Phone, Column{Class: NumberType}, "redact", "nullify", false, ""},
		{"NOT NULL numeric fnr", tbl, NationalID, Column{Class: NumberType, NotNull: true}, "redact", "", true, "no anonymize strategy fits"},
		{"NOT NULL unique varchar(20) fnr", tbl, NationalID, Column{Class: TextType, NotNull: true, Unique: true, MaxLen: 20}, "redact", "", true, "no anonymize strategy fits"},
		{"birth date", tbl, BirthDate, Column{Class: DateType}, "generalize:year", "nullify", false, ""},
		{"NOT NULL birth date", tbl, BirthDate, Column{Class: DateType, NotNull: true}, "generalize:year", "", false, "no anonymize strategy fits"},
		{"birth date as text", tbl, BirthDate, Column{Class: TextType}, "redact", "nullify", false, ""},
		{"comment", tbl, FreeText, Column{Class: TextType}, "redact", anonComment, false, ""},
		{"comment in varchar(2)", tbl, FreeText, Column{Class: TextType, MaxLen: 2}, "redact", "nullify", false, ""},
		{"card", tbl, CardNumber, Column{Class: TextType}, "partial:0,4", "redact", false, ""},
		{"key column", tbl, Email, Column{Class: TextType, Key: true}, "email", "", true, "keys are never anonymized"},
		{"materialized view", mv, Email, Column{Class: TextType}, "email", "", true, "materialized view"},
		{"inet", tbl, IPAddress, Column{Class: InetType}, "redact", "nullify", false, ""},
	}
	for _, c := range cases {
		col := c.col
		r := RuleFor(Finding{Table: c.table, Column: &col, Kind: c.kind})
		if r.Mask != c.mask || r.Anonymize != c.anon || r.Lookup != c.lookup || !strings.Contains(r.Why, c.whyContains) || (c.whyContains == "") != (r.Why == "") {
			t.Errorf("%s: got %+v, want mask %s anonymize %q lookup %v why …%s…", c.name, r, c.mask, c.anon, c.lookup, c.whyContains)
		}
	}
}
