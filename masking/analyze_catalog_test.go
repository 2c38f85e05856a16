package masking

import (
	"github.com/pgveil/pgveil/rules"
)

// testCatalog is the fixed catalog of the analyser tests. Unqualified names
// resolve through pg_catalog, then public (the default search_path).
type testCatalog struct {
	rels  map[string]*Relation // "schema.name"
	funcs map[string]*Function // "schema.name"
}

// Type OIDs used by the test relations.
const (
	oidInt4        = 23
	oidInt8        = 20
	oidText        = 25
	oidNumeric     = 1700
	oidDate        = 1082
	oidTimestamptz = 1184
	oidJSONB       = 3802
	oidName        = 19
	oidFloat4      = 700
)

func tstrategy(spec string) rules.Strategy {
	s, err := rules.ParseStrategy(spec)
	if err != nil {
		panic(err)
	}
	return s
}

func tpii(mask string, lookup bool) *rules.Column {
	return &rules.Column{Mask: tstrategy(mask), Anonymize: tstrategy("redact"), Lookup: lookup}
}

// col builds a column; rule and source are set for PII columns.
func tcol(name string, attnum int16, typ uint32, rule *rules.Column, source string) Column {
	return Column{Name: name, Attnum: attnum, TypeOID: typ, PII: rule, Source: source}
}

func testCustomerColumns() []Column {
	return []Column{
		tcol("id", 1, oidInt8, nil, ""),
		tcol("email", 2, oidText, tpii("email", true), "public.customers.email"),
		tcol("first_name", 3, oidText, tpii("redact", false), "public.customers.first_name"),
		tcol("phone", 4, oidText, tpii("partial:2,2", true), "public.customers.phone"),
		tcol("birth_date", 5, oidDate, tpii("generalize:year", false), "public.customers.birth_date"),
		tcol("country", 6, oidText, nil, ""),
		tcol("created_at", 7, oidTimestamptz, nil, ""),
		tcol("anonymized_at", 8, oidTimestamptz, nil, ""),
	}
}

func newTestCatalog() *testCatalog {
	c := &testCatalog{rels: map[string]*Relation{}, funcs: map[string]*Function{}}
	c.rel(&Relation{OID: 16400, Schema: "public", Name: "customers", Kind: 'p', Columns: testCustomerColumns()})
	c.rel(&Relation{OID: 16410, Schema: "public", Name: "customers_2024", Kind: 'r', Columns: testCustomerColumns()})
	c.rel(&Relation{OID: 16420, Schema: "public", Name: "survey_responses", Kind: 'r', Columns: []Column{
		tcol("id", 1, oidInt8, nil, ""),
		tcol("customer_id", 2, oidInt8, nil, ""),
		tcol("nps", 3, oidInt4, nil, ""),
		tcol("comment", 4, oidText, tpii("redact", false), "public.survey_responses.comment"),
	}})
	c.rel(&Relation{OID: 16430, Schema: "public", Name: "orders", Kind: 'r', Columns: []Column{
		tcol("id", 1, oidInt8, nil, ""),
		tcol("customer_id", 2, oidInt8, nil, ""),
		tcol("amount", 3, oidNumeric, nil, ""),
	}})
	c.rel(&Relation{OID: 16440, Schema: "public", Name: "notes", Kind: 'r', Columns: []Column{
		tcol("id", 1, oidInt8, nil, ""),
		tcol("body", 2, oidJSONB, nil, ""),
		tcol("author", 3, oidText, nil, ""),
	}})
	c.rel(&Relation{OID: 16450, Schema: "crm", Name: "leads", Kind: 'r', Columns: []Column{
		tcol("id", 1, oidInt8, nil, ""),
		tcol("email", 2, oidText, tpii("email", false), "crm.leads.email"),
		tcol("source", 3, oidText, nil, ""),
	}})
	c.views()
	c.catalogRelations()
	c.functions()
	return c
}

func (c *testCatalog) views() {
	c.rel(&Relation{OID: 16500, Schema: "public", Name: "v_customer_emails", Kind: 'v',
		ViewSQL: "SELECT id, email FROM public.customers",
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("email", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16510, Schema: "public", Name: "v_safe", Kind: 'v',
		ViewSQL: "SELECT id, country FROM public.customers",
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("country", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16520, Schema: "public", Name: "v_lower", Kind: 'v',
		ViewSQL: "SELECT id, lower(email) AS e FROM public.customers",
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("e", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16530, Schema: "public", Name: "v_nested", Kind: 'v',
		ViewSQL: "SELECT e.id, e.email FROM public.v_customer_emails e",
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("email", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16540, Schema: "public", Name: "mv_countries", Kind: 'm',
		ViewSQL: "SELECT country, count(*) AS n FROM public.customers GROUP BY country",
		Columns: []Column{tcol("country", 1, oidText, nil, ""), tcol("n", 2, oidInt8, nil, "")}})
	c.rel(&Relation{OID: 16550, Schema: "public", Name: "v_gmail", Kind: 'v',
		ViewSQL: "SELECT id FROM public.customers WHERE email LIKE '%@gmail.com' ORDER BY email",
		Columns: []Column{tcol("id", 1, oidInt8, nil, "")}})
	// A definition that no longer matches the catalog's column list.
	c.rel(&Relation{OID: 16590, Schema: "public", Name: "v_mismatch", Kind: 'v',
		ViewSQL: "SELECT id, country, phone FROM public.customers",
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("country", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16560, Schema: "public", Name: "v_nodef", Kind: 'v',
		Columns: []Column{tcol("id", 1, oidInt8, nil, ""), tcol("email", 2, oidText, nil, "")}})
	// A cycle the server cannot have, to exercise the depth limit.
	c.rel(&Relation{OID: 16570, Schema: "public", Name: "v_cycle_a", Kind: 'v',
		ViewSQL: "SELECT x FROM public.v_cycle_b", Columns: []Column{tcol("x", 1, oidInt8, nil, "")}})
	c.rel(&Relation{OID: 16580, Schema: "public", Name: "v_cycle_b", Kind: 'v',
		ViewSQL: "SELECT x FROM public.v_cycle_a", Columns: []Column{tcol("x", 1, oidInt8, nil, "")}})
}

func (c *testCatalog) catalogRelations() {
	for i, name := range []string{"pg_stats", "pg_statistic", "pg_stats_ext", "pg_stats_ext_exprs"} {
		c.rel(&Relation{OID: uint32(12000 + i), Schema: "pg_catalog", Name: name, Kind: 'v',
			Columns: []Column{tcol("tablename", 1, oidName, nil, ""), tcol("most_common_vals", 2, oidText, nil, "")}})
	}
	c.rel(&Relation{OID: 12100, Schema: "pg_catalog", Name: "pg_stat_activity", Kind: 'v',
		ViewSQL: "SELECT s.pid, s.usename, s.query FROM pg_stat_get_activity(NULL::integer) s(pid, usename, query)",
		Columns: []Column{tcol("pid", 1, oidInt4, nil, ""), tcol("usename", 2, oidName, nil, ""), tcol("query", 3, oidText, nil, "")}})
	c.rel(&Relation{OID: 16610, Schema: "public", Name: "v_stats", Kind: 'v',
		ViewSQL: "SELECT tablename, most_common_vals FROM pg_catalog.pg_stats",
		Columns: []Column{tcol("tablename", 1, oidName, nil, ""), tcol("most_common_vals", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 1259, Schema: "pg_catalog", Name: "pg_class", Kind: 'r', Columns: []Column{
		tcol("oid", 1, 26, nil, ""), tcol("relname", 2, oidName, nil, ""), tcol("reltuples", 3, oidFloat4, nil, ""),
	}})
	c.rel(&Relation{OID: 12200, Schema: "pg_catalog", Name: "pg_settings", Kind: 'v',
		ViewSQL: "SELECT a.name, a.setting FROM pg_show_all_settings() a(name, setting)",
		Columns: []Column{tcol("name", 1, oidText, nil, ""), tcol("setting", 2, oidText, nil, "")}})
	c.rel(&Relation{OID: 16600, Schema: "public", Name: "orders_id_seq", Kind: 'S', Columns: []Column{
		tcol("last_value", 1, oidInt8, nil, ""), tcol("log_cnt", 2, oidInt8, nil, ""), tcol("is_called", 3, 16, nil, ""),
	}})
}

func (c *testCatalog) functions() {
	c.fn(&Function{Schema: "public", Name: "leak", Language: "sql", Volatile: 'v'})
	c.fn(&Function{Schema: "public", Name: "ok_fn", Language: "sql", Volatile: 'i', Allowed: true})
	c.fn(&Function{Schema: "public", Name: "plfn", Language: "plpgsql", Volatile: 'v'})
	c.fn(&Function{Schema: "public", Name: "ext_fn", Language: "c", Volatile: 'v'})
	c.fn(&Function{Schema: "public", Name: "hstore", Language: "c", Volatile: 'i', Allowed: true})
	c.fn(&Function{Schema: "public", Name: "ok_proc", Language: "sql", Volatile: 'v', Allowed: true})
	c.fn(&Function{Schema: "public", Name: "bad_proc", Language: "plpgsql", Volatile: 'v'})
	c.fn(&Function{Schema: "information_schema", Name: "_pg_expandarray", Language: "sql", Volatile: 'i', System: true})
	c.fn(&Function{Schema: "information_schema", Name: "added_later", Language: "sql", Volatile: 'i'})
}

func (c *testCatalog) rel(r *Relation) { c.rels[r.Schema+"."+r.Name] = r }

func (c *testCatalog) fn(f *Function) { c.funcs[f.Schema+"."+f.Name] = f }

var testSearchPath = []string{"pg_catalog", "public"}

// Relation implements Catalog.
func (c *testCatalog) Relation(schema, name string) (*Relation, error) {
	if schema != "" {
		return c.rels[schema+"."+name], nil
	}
	for _, s := range testSearchPath {
		if r := c.rels[s+"."+name]; r != nil {
			return r, nil
		}
	}
	return nil, nil
}

// Function implements Catalog. Any name not declared here resolves, when
// unqualified or in pg_catalog, to a built-in internal function.
func (c *testCatalog) Function(schema, name string) (*Function, error) {
	if schema == "" || schema == "public" {
		if f := c.funcs["public."+name]; f != nil {
			return f, nil
		}
	}
	if schema == "" || schema == "pg_catalog" {
		return &Function{Schema: "pg_catalog", Name: name, Language: "internal", Volatile: 'i'}, nil
	}
	return c.funcs[schema+"."+name], nil
}
