package anonymize

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rules"
)

func TestPlanMovesEveryConstantToParameters(t *testing.T) {
	sql := `ANONYMIZE customers WHERE email = 'kari@example.com' AND id IN (12345, 9876543210) AND nps > 3.25
		AND phone LIKE E'+47\\' AND b'1011' = B'1011' AND first_name = $$Kari$$ AND country IN (SELECT 'NO' ORDER BY 1)
		AND birth_date::varchar(10) = DATE '1985-03-04' AND extract(year FROM birth_date) > 1900 AND notes IS NOT NULL`
	p := plan(t, sql, 2)
	wantParams := []string{"kari@example.com", "12345", "9876543210", "3.25", `+47\`, "b1011", "b1011", "Kari", "NO", "1985-03-04", "1900"}
	if !reflect.DeepEqual(p.Params, wantParams) {
		t.Errorf("Params = %q, want %q", p.Params, wantParams)
	}
	for _, v := range []string{"kari", "Kari", "12345", "9876543210", "3.25", "+47", "1011", "1985", "1900", "'NO'"} {
		if strings.Contains(p.SQL, v) || strings.Contains(p.Report, v) {
			t.Errorf("the plan quotes %q:\n%s", v, p.SQL)
		}
	}
	for _, want := range []string{
		"email = $3 AND id IN ($4::int, $5::bigint) AND nps > $6::numeric AND phone LIKE $7",
		"$8::pg_catalog.varbit = $9::pg_catalog.varbit", "ORDER BY 1", "varchar(10)", "extract ('year' FROM birth_date) > $13::int",
		"'ANONYMIZE public.customers WHERE email = $3 AND",
	} {
		if !strings.Contains(p.SQL, want) {
			t.Errorf("the plan lacks %q:\n%s", want, p.SQL)
		}
	}
	if p.ClientParams != 2 {
		t.Errorf("ClientParams = %d, want 2", p.ClientParams)
	}
}

func TestPlanNumbersAfterTheClientsParameters(t *testing.T) {
	st, err := Parse("ANONYMIZE customers WHERE id = $4 AND email = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadRules(t)
	for _, tt := range []struct{ client, want int }{{0, 4}, {4, 4}, {6, 6}} {
		p, err := st.Plan(cfg, []string{"public"}, tt.client)
		if err != nil {
			t.Fatal(err)
		}
		next := fmt.Sprintf("email = $%d)", tt.want+1)
		if p.ClientParams != tt.want || !strings.Contains(p.SQL, next) {
			t.Errorf("clientParams %d: ClientParams %d, SQL lacks %q:\n%s", tt.client, p.ClientParams, next, p.SQL)
		}
	}
}

func TestPlanShape(t *testing.T) {
	p := plan(t, "ANONYMIZE customers WHERE id = ANY($1)", 1)
	want := []string{"public.customers", "public.conversations", "public.survey_responses", "public.recordings"}
	if !reflect.DeepEqual(p.Tables, want) {
		t.Errorf("Tables = %q, want %q", p.Tables, want)
	}
	for _, s := range []string{
		"UPDATE public.customers SET",
		"WHERE ((id = ANY($1)) AND (CASE WHEN pg_catalog.to_regclass('customers') = 'public.customers'::pg_catalog.regclass THEN true ELSE",
		")) AND anonymized_at IS NULL RETURNING id",
		"UPDATE public.conversations SET",
		"WHERE customer_id = ANY (ARRAY(SELECT k FROM pgveil_0)) AND anonymized_at IS NULL RETURNING id",
		"DELETE FROM public.recordings WHERE conversation_id = ANY (ARRAY(SELECT k FROM pgveil_1)) RETURNING id",
		"INSERT INTO pgveil.anonymize_log",
		"SELECT pg_catalog.count(*) FROM pgveil_0",
	} {
		if !strings.Contains(p.SQL, s) {
			t.Errorf("the plan lacks %q:\n%s", s, p.SQL)
		}
	}
	if p.Explain || len(p.Params) != 0 || p.Report == "" {
		t.Errorf("Explain %v, Params %q, Report empty %v", p.Explain, p.Params, p.Report == "")
	}
	e := plan(t, "EXPLAIN ANONYMIZE customers WHERE id = ANY($1)", 1)
	for _, s := range []string{"UPDATE", "DELETE", "INSERT", "anonymize_log"} {
		if strings.Contains(e.SQL, s) {
			t.Errorf("the EXPLAIN plan holds %q:\n%s", s, e.SQL)
		}
	}
}

func TestPlanDoesNotChangeTheStatement(t *testing.T) {
	st, err := Parse("ANONYMIZE customers WHERE email = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadRules(t)
	a, err := st.Plan(cfg, []string{"public"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Plan(cfg, []string{"public"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.SQL != b.SQL || !reflect.DeepEqual(a.Params, b.Params) {
		t.Errorf("planning twice gives different plans")
	}
}

func TestPlanResolvesUnqualifiedNamesInSearchPathOrder(t *testing.T) {
	cfg := loadRules(t)
	cfg.Tables["app.customers"] = &rules.Table{Key: rules.Columns{"id"}, OnAnonymize: "anonymize",
		Columns: map[string]*rules.Column{"email": {Mask: rules.Strategy{Kind: rules.Redact}, Anonymize: rules.Strategy{Kind: rules.Nullify}}}}
	st, err := Parse("ANONYMIZE customers WHERE true")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path []string
		want string
	}{{[]string{"app", "public"}, "app.customers"}, {[]string{"other", "public", "app"}, "public.customers"}} {
		p, err := st.Plan(cfg, tt.path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if p.Tables[0] != tt.want {
			t.Errorf("search_path %v: %s, want %s", tt.path, p.Tables[0], tt.want)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		sql    string
		change func(*rules.Config)
		want   string
	}{
		{"ANONYMIZE public.foo WHERE x = 'secret'", nil, "pgveil: table public.foo is not declared in the rules (tables.public.foo with a key)"},
		{"ANONYMIZE foo WHERE x = 'secret'", nil, "pgveil: table foo is not declared in the rules for any schema of the search_path (public)"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) {
			c.Tables["public.customers"].Columns["email"].Anonymize = rules.Strategy{Kind: rules.Partial, KeepFirst: 2, KeepLast: 2}
		}, "pgveil: public.customers.email: partial derives from the original value; ANONYMIZE refuses it"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) {
			c.Tables["public.conversations"].Columns["subject"].Anonymize = rules.Strategy{Kind: rules.Pseudonym}
		}, "pgveil: public.conversations.subject: pseudonym derives from the original value"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) { c.Tables["public.customers"].Key = nil },
			"pgveil: table public.customers is not declared in the rules with a key (tables.public.customers.key)"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) { c.Tables["public.recordings"].Key = nil },
			"pgveil: table public.recordings (reached from public.conversations) needs a key"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) { c.Tables["public.customers"].Key = rules.Columns{"email"} },
			"pgveil: public.customers.email is both the key and a PII column"},
		{"ANONYMIZE customers WHERE x = 'secret'", func(c *rules.Config) {
			c.Tables["public.customers"].Parent = &rules.Parent{Table: "public.recordings", Via: rules.Columns{"id"}}
		}, "pgveil: the parent links of the rules form a cycle through public.customers"},
		{"ANONYMIZE recordings WHERE x = 'secret'", func(c *rules.Config) { c.Tables["public.recordings"].OnAnonymize = "anonymize" },
			"pgveil: ANONYMIZE public.recordings would change nothing"},
	}
	for _, tt := range tests {
		cfg := loadRules(t)
		if tt.change != nil {
			tt.change(cfg)
		}
		st, err := Parse(tt.sql)
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Plan(cfg, []string{"public"}, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Plan(%q) = %v, want %q", tt.sql, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("Plan(%q) error quotes a constant: %v", tt.sql, err)
		}
	}
}

func TestQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"customers": "customers", "Customers": `"Customers"`, "user": `"user"`, "order": `"order"`,
		"name": "name", "a b": `"a b"`, `x"y`: `"x""y"`, "1a": `"1a"`, "": `""`, "ñ": `"ñ"`,
	} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{"it's": "'it''s'", `a\b`: `E'a\\b'`, "": "''"} {
		if got := rules.SQLLiteral(in); got != want {
			t.Errorf("rules.SQLLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPlanOfAZeroStatement(t *testing.T) {
	if _, err := (&Statement{Table: "customers"}).Plan(loadRules(t), []string{"public"}, 0); err == nil {
		t.Error("a Statement not made by Parse was planned")
	}
	st, err := Parse("ANONYMIZE customers WHERE true")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Plan(nil, nil, 0); err == nil {
		t.Error("planned without rules")
	}
}
