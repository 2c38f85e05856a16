package rules

import (
	"strings"
	"testing"
)

const databasesYAML = `listen: a:1
upstream: a:1
tables:
  public.customers:
    key: id
    columns: {email: {mask: email}}
databases:
  crm:
    tables:
      public.leads:
        key: id
        columns: {phone: {mask: redact}}
  empty:
    tables: {}
`

func TestForDatabase(t *testing.T) {
	cfg, err := Parse([]byte(databasesYAML))
	if err != nil {
		t.Fatal(err)
	}
	crm := cfg.ForDatabase("crm")
	if crm.Tables["public.leads"] == nil || crm.Tables["public.customers"] != nil || crm.Scope() != "crm" {
		t.Errorf("crm's tables: %v (scope %q)", crm.Tables, crm.Scope())
	}
	if crm.Tables["public.leads"].OnAnonymize != "anonymize" {
		t.Errorf("a database's table gets no defaults: %q", crm.Tables["public.leads"].OnAnonymize)
	}
	if crm.Upstream != "a:1" || crm.ForDatabase("crm") != crm {
		t.Errorf("a view keeps the other settings: %+v", crm)
	}
	if other := cfg.ForDatabase("sales"); other != cfg || other.Tables["public.customers"] == nil {
		t.Errorf("a database not named gets the top-level tables: %v", other.Tables)
	}
	if len(cfg.ForDatabase("empty").Tables) != 0 || !cfg.HasTables() {
		t.Errorf("empty: %v", cfg.ForDatabase("empty").Tables)
	}
	if got := strings.Join(cfg.DatabaseNames(), ","); got != "crm,empty" {
		t.Errorf("DatabaseNames: %s", got)
	}
	only, err := Parse([]byte("listen: a:1\nupstream: a:1\ndatabases: {crm: {tables: {public.x: {columns: {a: {mask: redact}}}}}}\n"))
	if err != nil || !only.HasTables() || len(only.Tables) != 0 {
		t.Errorf("tables under databases only: HasTables %v, %v", only != nil && only.HasTables(), err)
	}
}

func TestDatabasesValidationNamesTheKeyPath(t *testing.T) {
	cases := map[string]string{
		"databases:\n  crm:\n    tables:\n      public.x:\n        columns:\n          y: {}\n":                                                                "databases.crm.tables.public.x.columns.y: needs a mask strategy",
		"databases:\n  crm:\n    tables:\n      x:\n        columns:\n          y: {mask: redact}\n":                                                           "databases.crm.tables.x: table names are schema-qualified",
		"databases:\n  crm:\n    tables:\n      public.x:\n        parent: {table: public.customers, via: c}\n        columns:\n          y: {mask: redact}\n": "databases.crm.tables.public.x.parent.table: public.customers is not declared under databases.crm.tables",
		"databases:\n  crm:\n":                 "databases.crm: empty database entry",
		"databases:\n  crm:\n    tabels: {}\n": "unknown key tabels",
		"audit_config: [a, b]\n":               "audit_config: line 6: true, false, or the name of the database",
	}
	for body, want := range cases {
		_, err := Parse([]byte("listen: a:1\nupstream: a:1\ntables:\n  public.customers:\n    columns: {email: {mask: email}}\n" + body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", body, err, want)
		}
	}
}

func TestAuditConfigForms(t *testing.T) {
	for body, want := range map[string]AuditConfig{
		"":                          {},
		"audit_config: false\n":     {},
		"audit_config: true\n":      {Enabled: true},
		"audit_config: crm\n":       {Enabled: true, Database: "crm"},
		"audit_config: \"my db\"\n": {Enabled: true, Database: "my db"},
	} {
		cfg, err := Parse([]byte("listen: a:1\nupstream: a:1\n" + body))
		if err != nil || cfg.AuditConfig != want {
			t.Errorf("%q: %+v %v, want %+v", body, cfg.AuditConfig, err, want)
		}
	}
}

func TestDiffNamesTheDatabase(t *testing.T) {
	old, err := Parse([]byte(databasesYAML))
	if err != nil {
		t.Fatal(err)
	}
	new, err := Parse([]byte(strings.Replace(databasesYAML, "phone: {mask: redact}", "phone: {mask: nullify}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	changes := Diff(old, new)
	if len(changes) != 1 || changes[0].Database != "crm" || changes[0].Table != "public.leads" || changes[0].Field != "mask" {
		t.Fatalf("changes: %+v", changes)
	}
	var crm []Change
	for _, c := range Diff(nil, old) {
		if c.Database == "crm" {
			crm = append(crm, c)
		}
	}
	if len(crm) != 2 || crm[0].Kind != "table" || crm[1].Column != "phone" {
		t.Errorf("crm at start: %+v", crm)
	}
}
