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

// checkNoLiteral fails when msg quotes a string constant of sql (one that
// is not also a word of the message's own: the role, a setting or a name
// the query uses outside quotes).
func checkNoLiteral(t *testing.T, sql, msg string) {
	t.Helper()
	for _, lit := range stringLiterals(sql) {
		if len(lit) < 4 || !containsWord(msg, lit) || identityNames[strings.ToLower(lit)] != "" || strings.EqualFold(lit, "search_path") ||
			lit == goldenOptions.Role || strings.Contains(unquoted(sql), lit) {
			continue
		}
		t.Fatalf("%q: rejection %q quotes the literal %q", sql, msg, lit)
	}
}

// containsWord reports whether s holds w not glued to other name
// characters.
func containsWord(s, w string) bool {
	isName := func(c byte) bool {
		return c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := strings.Index(s, w); i >= 0; {
		end := i + len(w)
		if (i == 0 || !isName(s[i-1])) && (end == len(s) || !isName(s[end])) {
			return true
		}
		next := strings.Index(s[i+1:], w)
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}

// unquoted returns sql without its string constants.
func unquoted(sql string) string {
	res, err := pg.Scan(sql)
	if err != nil {
		return sql
	}
	var b strings.Builder
	last := 0
	for _, tok := range res.GetTokens() {
		start, end := int(tok.GetStart()), int(tok.GetEnd())
		if tok.GetToken() != pg.Token_SCONST || start < last || end > len(sql) {
			continue
		}
		b.WriteString(sql[last:start])
		last = end
	}
	b.WriteString(sql[last:])
	return b.String()
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

// FuzzAnalyzeSpliced joins the head of one golden query to the tail of
// another at token boundaries, which yields far more statements that parse
// than byte mutations do.
func FuzzAnalyzeSpliced(f *testing.F) {
	queries := goldenQueries(f)
	for i := range queries {
		f.Add(uint16(i), uint16(len(queries)-1-i), uint8(i), uint8(i*7))
	}
	cat := newTestCatalog()
	f.Fuzz(func(t *testing.T, qa, qb uint16, ta, tb uint8) {
		a, b := queries[int(qa)%len(queries)], queries[int(qb)%len(queries)]
		sql := tokenPrefix(a, int(ta)) + " " + tokenSuffix(b, int(tb))
		plan, err := Analyze(sql, cat, goldenOptions)
		checkResult(t, sql, plan, err)
	})
}

// tokenPrefix returns sql up to the end of its n-th token.
func tokenPrefix(sql string, n int) string {
	toks := spliceTokens(sql)
	if len(toks) == 0 {
		return sql
	}
	return sql[:toks[n%len(toks)].GetEnd()]
}

// tokenSuffix returns sql from the start of its n-th token.
func tokenSuffix(sql string, n int) string {
	toks := spliceTokens(sql)
	if len(toks) == 0 {
		return sql
	}
	return sql[toks[n%len(toks)].GetStart():]
}

func spliceTokens(sql string) []*pg.ScanToken {
	res, err := pg.Scan(sql)
	if err != nil {
		return nil
	}
	var out []*pg.ScanToken
	for _, t := range res.GetTokens() {
		if int(t.GetEnd()) <= len(sql) && t.GetStart() >= 0 && t.GetStart() <= t.GetEnd() {
			out = append(out, t)
		}
	}
	return out
}
