package masking

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// goldenQueries returns the queries of every golden file.
func goldenQueries(t testing.TB) []string {
	files, _ := filepath.Glob("testdata/analyze/*.json")
	var out []string
	for _, path := range files {
		tt, ok := t.(*testing.T)
		if !ok {
			tt = &testing.T{}
		}
		for _, c := range readGolden(tt, path) {
			out = append(out, c.Query)
		}
	}
	return out
}

// FuzzAnalyze checks that no text makes the analyser panic, that it
// returns a plan, a *Rejection or the parser's error, and that plans and
// rejections keep their invariants.
func FuzzAnalyze(f *testing.F) {
	for _, q := range goldenQueries(f) {
		f.Add(q)
	}
	f.Add("SELECT (SELECT (SELECT email FROM customers c2 WHERE c2.id = c.id) FROM orders) FROM customers c")
	f.Add("WITH RECURSIVE a(x) AS (SELECT 1 UNION SELECT x FROM a, b), b(y) AS (SELECT 2) SELECT * FROM a")
	cat := newTestCatalog()
	f.Fuzz(func(t *testing.T, sql string) {
		var plan *Plan
		var err error
		done := make(chan bool)
		go func() {
			defer close(done)
			plan, err = Analyze(sql, cat, goldenOptions)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: analysis takes more than 5s", sql)
		}
		checkResult(t, sql, plan, err)
	})
}

func checkResult(t *testing.T, sql string, plan *Plan, err error) {
	t.Helper()
	var rej *Rejection
	switch {
	case errors.As(err, &rej):
		if plan != nil {
			t.Fatalf("%q: rejection with a plan", sql)
		}
		checkNoLiteral(t, sql, rej.Error()+" "+rej.Hint)
		return
	case err != nil:
		if _, perr := pg.Parse(sql); perr == nil {
			t.Fatalf("%q: error that is neither a rejection nor a parse error: %v", sql, err)
		}
		return
	}
	for _, sp := range plan.Statements {
		checkStatement(t, sql, sp)
	}
}

func checkStatement(t *testing.T, sql string, sp StatementPlan) {
	t.Helper()
	if sp.Tag == "" {
		t.Fatalf("%q: statement without a tag", sql)
	}
	if sp.AllColumns != nil && (sp.Outputs != nil || sp.AllColumns.Plain) {
		t.Fatalf("%q: AllColumns with Outputs or Plain", sql)
	}
	for _, o := range sp.Outputs {
		if o.Plain && len(o.Sources) == 0 || !o.Plain && o.Strategy.Kind != "" {
			t.Fatalf("%q: inconsistent output %+v", sql, o)
		}
		if o.Masked() && !sp.ReadsPII && sp.Tag != "EXPLAIN" {
			t.Fatalf("%q: masked output %s but ReadsPII is false", sql, o.Name)
		}
	}
}

// checkNoLiteral fails when msg quotes a string constant of sql.
func checkNoLiteral(t *testing.T, sql, msg string) {
	t.Helper()
	for _, lit := range stringLiterals(sql) {
		if len(lit) >= 4 && strings.Contains(msg, lit) && identityNames[strings.ToLower(lit)] == "" {
			t.Fatalf("%q: rejection %q quotes the literal %q", sql, msg, lit)
		}
	}
}

// stringLiterals returns the text inside the string constants of sql.
func stringLiterals(sql string) []string {
	res, err := pg.Scan(sql)
	if err != nil {
		return nil
	}
	var out []string
	for _, tok := range res.GetTokens() {
		if tok.GetToken() != pg.Token_SCONST || int(tok.GetEnd()) > len(sql) || tok.GetStart() < 0 || tok.GetStart() >= tok.GetEnd() {
			continue
		}
		text := sql[tok.GetStart():tok.GetEnd()]
		out = append(out, strings.Trim(text, "'$EeUu&"))
	}
	return out
}

// TestRejectionsQuoteNoLiteral runs every golden query and checks the
// invariants FuzzAnalyze checks.
func TestRejectionsQuoteNoLiteral(t *testing.T) {
	cat := newTestCatalog()
	for _, q := range goldenQueries(t) {
		plan, err := Analyze(q, cat, goldenOptions)
		checkResult(t, q, plan, err)
	}
}

// TestPlanIgnoresLiterals changes the literal values of every golden query
// and checks that whenever CacheKey gives the variant the same key, the
// analysis is the same: a cached plan never depends on a literal.
func TestPlanIgnoresLiterals(t *testing.T) {
	cat := newTestCatalog()
	compared := 0
	for _, q := range goldenQueries(t) {
		variant := replaceLiterals(q)
		if variant == q || string(CacheKey(nil, variant)) != string(CacheKey(nil, q)) {
			continue
		}
		compared++
		want := mustJSON(renderResult(Analyze(q, cat, goldenOptions)))
		got := mustJSON(renderResult(Analyze(variant, cat, goldenOptions)))
		if string(got) != string(want) {
			t.Errorf("same cache key, different analysis:\n%s\n  %s\n%s\n  %s", q, want, variant, got)
		}
	}
	if compared < 50 {
		t.Fatalf("only %d queries compared", compared)
	}
}

// replaceLiterals rewrites string and numeric constants of sql.
func replaceLiterals(sql string) string {
	res, err := pg.Scan(sql)
	if err != nil {
		return sql
	}
	var b strings.Builder
	last := 0
	for _, tok := range res.GetTokens() {
		var repl string
		switch tok.GetToken() {
		case pg.Token_SCONST:
			repl = "'zz9'"
		case pg.Token_ICONST:
			repl = "7"
		case pg.Token_FCONST:
			repl = "7.5"
		default:
			continue
		}
		start, end := int(tok.GetStart()), int(tok.GetEnd())
		if start < last || end > len(sql) {
			return sql
		}
		b.WriteString(sql[last:start])
		b.WriteString(repl)
		last = end
	}
	b.WriteString(sql[last:])
	return b.String()
}
