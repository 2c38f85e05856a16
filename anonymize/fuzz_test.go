package anonymize

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rules"
)

// FuzzParsePlan checks that no text makes Parse or Plan panic, that Parse
// accepts only what Is accepts, and that a plan's text holds no string
// constant of the statement.
func FuzzParsePlan(f *testing.F) {
	for _, seed := range []string{
		"ANONYMIZE customers WHERE email = 'kari@example.com'",
		"EXPLAIN ANONYMIZE customers c WHERE c.id IN (8, 9) AND $1",
		"ANONYMIZE customers WHERE id = ANY($1) OR country IN (SELECT 'NO' ORDER BY 1 LIMIT 2)",
		"anonymize public.recordings where audio = '\\x00'::bytea",
		"ANONYMIZE customers WHERE extract(year FROM birth_date) = 1985 AND normalize(first_name, NFC) = U&'\\00e9'",
		"/* x */ ANONYMIZE customers WHERE first_name = $$Kari$$ OR phone LIKE E'+47%' ESCAPE '!'",
		"ANONYMIZE customers WHERE (SELECT count(*) FROM orders o WHERE o.customer_id = id GROUP BY 1) > 3.5",
		"EXPLAIN (ANALYZE) ANONYMIZE customers WHERE true",
		"ANONYMIZE customers WHERE 'a",
	} {
		f.Add(seed)
	}
	cfg := loadRules(f)
	f.Fuzz(func(t *testing.T, sql string) {
		st, err := Parse(sql)
		if err != nil {
			return
		}
		if !Is(sql) {
			t.Fatalf("Parse accepted %q, which Is refuses", sql)
		}
		p, err := st.Plan(cfg, []string{"public"}, 1)
		if err != nil {
			if strings.Contains(err.Error(), "could not rewrite") || strings.Contains(err.Error(), "does not parse") {
				t.Errorf("Plan(%q): %v", sql, err)
			}
			return
		}
		for _, v := range p.Params {
			if len(v) >= 6 && strings.Contains(p.SQL, rules.SQLLiteral(v)) && !strings.Contains(testRules, v) && !strings.Contains(p.SQL, "'ANONYMIZE "+v) {
				t.Errorf("the plan of %q quotes the constant %q", sql, v)
			}
		}
	})
}
