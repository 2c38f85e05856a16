package rules

import (
	"strings"
	"testing"
)

// TestParseErrorsNameTheKeyPath feeds files with type errors of many shapes
// (block and flow style, lists, nested tables, custom types) and checks that
// each message names the key path and the line once, in plain words.
func TestParseErrorsNameTheKeyPath(t *testing.T) {
	const base = "listen: 127.0.0.1:6432\nupstream: 127.0.0.1:5432\n" // lines 1 and 2
	const table = "tables:\n  public.c:\n    key: id\n    columns:\n" // lines 3 to 6
	cases := []struct{ yaml, want string }{
		{"max_message_size: abc\n", `max_message_size: line 3: expected a whole number, got "abc"`},
		{"max_message_size: [1]\n", `max_message_size: line 3: expected a whole number, got a list`},
		{"audit_config: maybe\n", `audit_config: line 3: expected true or false, got "maybe"`},
		{"roles: {unmasked: 3}\n", `roles.unmasked: line 3: expected a list of strings, got 3`},
		{"roles:\n  unmasked: [a, [b]]\n", `roles.unmasked[1]: line 4: expected a string, got a list`},
		{"roles: [a]\n", `roles: line 3: expected a mapping, got a list`},
		{"allow_functions: public.f\n", `allow_functions: line 3: expected a list of strings, got "public.f"`},
		{"tls: {cert: [a], key: b}\n", `tls.cert: line 3: expected a string, got a list`},
		{"tables: [public.c]\n", `tables: line 3: expected a mapping, got a list`},
		{table + "      - email\n", `tables.public.c.columns: line 7: expected a mapping, got a list`},
		{table + "      email: {mask: email, lookup: [1]}\n", `tables.public.c.columns.email.lookup: line 7: expected true or false, got a list`},
		{table + "      email: redact\n", `tables.public.c.columns.email: line 7: expected a mapping, got "redact"`},
		{table + "      email:\n        mask: email\n        lookup: yes please\n", `tables.public.c.columns.email.lookup: line 9: expected true or false, got "yes please"`},
		{"tables:\n  public.c:\n    parent: {table: [x], via: id}\n    columns: {a: {mask: redact}}\n", `tables.public.c.parent.table: line 5: expected a string, got a list`},
		{"tables:\n  public.c:\n    on_anonymize: {x: 1}\n", `tables.public.c.on_anonymize: line 5: expected a string, got a mapping`},
		// Custom UnmarshalYAML methods: the path once, not twice.
		{table + "      email: {mask: shout}\n", `tables.public.c.columns.email.mask: line 7: unknown strategy "shout"`},
		{table + "      email: {mask: redact, anonymize: [redact]}\n", `tables.public.c.columns.email.anonymize: line 7: a strategy is a string`},
		{"shutdown_timeout: soon\n", `shutdown_timeout: line 3: "soon" is not a duration like 30s`},
		{"peer_id: 1\npeers: {2: [a]}\n", `peers.2: line 4: not host:port`},
		// Unknown and repeated keys.
		{"lisen: x\n", `line 3: unknown key lisen`},
		{"roles: {unmaskd: [a]}\n", `roles: line 3: unknown key unmaskd`},
		{table + "      email: {mask: email, lookp: true}\n", `tables.public.c.columns.email: line 7: unknown key lookp`},
		{"roles:\n  unmasked: [a]\n  unmasked: [b]\n", `roles: line 5: key unmasked is given twice (first at line 4)`},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(base + tc.yaml))
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.yaml, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
		if strings.Count(err.Error(), "line ") != strings.Count(tc.want, "line ") || strings.Contains(err.Error(), "!!") || strings.Contains(err.Error(), "rules.") {
			t.Errorf("%q: %v: want one line number and no decoder jargon", tc.yaml, err)
		}
	}
}

// TestParseReportsEveryError: one run names every bad key, in file order,
// the custom types' errors included.
func TestParseReportsEveryError(t *testing.T) {
	_, err := Parse([]byte("listen: 127.0.0.1:6432\nupstream: 127.0.0.1:5432\nmax_message_size: abc\nshutdown_timeout: soon\n" +
		"tables:\n  public.c:\n    columns:\n      email: {mask: shout, lookup: 2}\n"))
	want := `max_message_size: line 3: expected a whole number, got "abc"; ` +
		`shutdown_timeout: line 4: "soon" is not a duration like 30s; ` +
		`tables.public.c.columns.email.mask: line 8: unknown strategy "shout"`
	if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), `tables.public.c.columns.email.lookup: line 8: expected true or false, got 2`) {
		t.Errorf("got %v\nwant %s; tables.public.c.columns.email.lookup: ...", err, want)
	}
}
