package masking

import (
	"fmt"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

const pgbenchSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"

func TestCacheKey(t *testing.T) {
	cases := []struct{ in, want string }{
		// pgbench's statements.
		{pgbenchSelect, "SELECT abalance FROM pgbench_accounts WHERE aid = {i};"},
		{"UPDATE pgbench_accounts SET abalance = abalance + -4107 WHERE aid = 48213;",
			"UPDATE pgbench_accounts SET abalance = abalance + -{i} WHERE aid = {i};"},
		{"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4107, CURRENT_TIMESTAMP);",
			"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({i}, {i}, {i}, -{i}, CURRENT_TIMESTAMP);"},
		// Whitespace, comments and case.
		{"  select A\n\tfrom T   where B=1  ", "select A from T where B={i}"},
		{"SELECT /* a /* nested */ b */ 1 -- tail\nFROM t", "SELECT {i} FROM t"},
		{"SELECT 1 -- comment", "SELECT {i}"},
		{"SELECT a-/**/-b, a--b\n", "SELECT a- -b, a"},
		{"", ""},
		{" \n\t ", ""},
		{"-- only a comment", ""},
		// Strings of every kind.
		{"SELECT E'it\\'s', 'it''s', e'\\\\'", "SELECT E{s}, {s}, e{s}"},
		{"SELECT $$secret$$, $tag$a$$b$tag$, $_$x$_$", "SELECT {s}, {s}, {s}"},
		{"SELECT U&'dat', u&'x''y', B'0101', X'1F', N'abc'", "SELECT U&{s}, u&{s}, B{s}, X{s}, N{s}"},
		{`SELECT U&"d\0061t", U & 'x'`, `SELECT U&"d\0061t", U & {s}`},
		// Escapes the parser validates keep the constant verbatim.
		{`SELECT E'\xff', E'\101', E'\u00e9', E'it\'s\n'`, `SELECT E'\xff', E'\101', E'\u00e9', E{s}`},
		{`SELECT U&'d\0061t', 'x'`, `SELECT U&'d\0061t', {s}`},
		{"SELECT e'\\\xd8', e'\xd8'", "SELECT e'\\\xd8', e{s}"},
		{"SELECT U&'d!0061t' UESCAPE '!', 'x'", "SELECT U&'d!0061t' UESCAPE '!', 'x'"},
		{"SELECT B'01''10'", "SELECT B{s}{s}"},
		{"SELECT 'a'\n'b', 'c' 'd'", "SELECT {s}, {s} {s}"},
		{"SELECT 'a' -- c\n  'b'", "SELECT {s} {s}"},
		{"SELECT 'a' \v\n \v'b'", "SELECT {s}"},
		{"SELECT 'a' /* c */\n'b'", "SELECT {s} {s}"},
		{"SELECT '{1,2}'::int[], date '2020-01-01', interval '1 day'", "SELECT {s}::int[], date {s}, interval {s}"},
		{"SELECT x AT TIME ZONE 'UTC', 'set_config', '::regclass' FROM t", "SELECT x AT TIME ZONE {s}, {s}, {s} FROM t"},
		{"SELECT naïve FROM t WHERE x = 'é'", "SELECT naïve FROM t WHERE x = {s}"},
		// Numbers.
		{"SELECT 1.5, .5, 1e10, 0x1F, 1_000, 3000000000, 2147483647, 2147483648, 1., 0b101, 0o17, 1E-3",
			"SELECT {f}, {f}, {f}, {i}, {i}, {f}, {i}, {f}, {f}, {i}, {i}, {f}"},
		{"SELECT 0x7FFFFFFF, 0x80000000, arr[1:2]", "SELECT {i}, {f}, arr[{i}:{i}]"},
		// Identifiers and parameters are kept.
		{`SELECT "Weird ""Name""", 'v' FROM "T"`, `SELECT "Weird ""Name""", {s} FROM "T"`},
		{"SELECT $1, $2::int FROM t WHERE a = $1", "SELECT $1, $2::int FROM t WHERE a = $1"},
		{"SELECT a$1, $ FROM t", "SELECT a$1, $ FROM t"},
		// Output positions are kept.
		{"SELECT a, b FROM t ORDER BY 2", "SELECT a, b FROM t ORDER BY 2"},
		{"SELECT a FROM t ORDER BY 2 DESC LIMIT 10 OFFSET 5", "SELECT a FROM t ORDER BY 2 DESC LIMIT {i} OFFSET {i}"},
		{"SELECT a, count(*) FROM t GROUP BY 1 HAVING count(*) > 5 ORDER BY 2",
			"SELECT a, count(*) FROM t GROUP BY 1 HAVING count(*) > {i} ORDER BY 2"},
		{"SELECT DISTINCT ON (1) a, b FROM t WHERE x = 3", "SELECT DISTINCT ON (1) a, b FROM t WHERE x = {i}"},
		{"SELECT DISTINCT ON (a, (2)) 3 FROM t", "SELECT DISTINCT ON (a, (2)) {i} FROM t"},
		{"SELECT DISTINCT a, 2 FROM t WHERE f(1) = 2", "SELECT DISTINCT a, {i} FROM t WHERE f({i}) = {i}"},
		{"SELECT a FROM t WHERE b IN (1, 2) ORDER BY a, 3", "SELECT a FROM t WHERE b IN ({i}, {i}) ORDER BY a, 3"},
		{"SELECT * FROM (SELECT a FROM t ORDER BY 1 LIMIT 5) s ORDER BY (SELECT 1 LIMIT 1), 2",
			"SELECT * FROM (SELECT a FROM t ORDER BY 1 LIMIT {i}) s ORDER BY (SELECT 1 LIMIT 1), 2"},
		{"SELECT string_agg(x, ',' ORDER BY 1) FROM t WHERE y = 7", "SELECT string_agg(x, {s} ORDER BY 1) FROM t WHERE y = {i}"},
		{"SELECT a FROM t GROUP BY ROLLUP (1, 2) UNION SELECT 3", "SELECT a FROM t GROUP BY ROLLUP (1, 2) UNION SELECT {i}"},
		{"SELECT a FROM t ORDER BY t.limit, 2", "SELECT a FROM t ORDER BY t.limit, 2"},
		{"SELECT a FROM t ORDER BY a IS DISTINCT FROM b, 2", "SELECT a FROM t ORDER BY a IS DISTINCT FROM b, 2"},
		{"SELECT a FROM t ORDER BY substring(a FROM 1 FOR 2), 3 FOR UPDATE", "SELECT a FROM t ORDER BY substring(a FROM 1 FOR 2), 3 FOR UPDATE"},
		// Literals that name objects, settings or formats keep every literal.
		{"SELECT 'customers'::regclass, 1", "SELECT 'customers'::regclass, 1"},
		{"SELECT oid FROM pg_class WHERE oid = 'c'::pg_catalog.regclass AND relkind = 'r'",
			"SELECT oid FROM pg_class WHERE oid = 'c'::pg_catalog.regclass AND relkind = 'r'"},
		{"SELECT 'x'::\"regclass\"", "SELECT 'x'::\"regclass\""},
		{"SELECT 'x'::myschema.regfoo", "SELECT 'x'::myschema.regfoo"},
		{"SELECT regclass 'customers', regtype $$int$$", "SELECT regclass 'customers', regtype $$int$$"},
		{"SELECT regfoo 'x'", "SELECT regfoo 'x'"},
		{"SELECT CAST('x' AS regtype), 2", "SELECT CAST('x' AS regtype), 2"},
		{"SELECT CAST('x' AS s.regfoo), 2", "SELECT CAST('x' AS s.regfoo), 2"},
		{"SELECT '{}'::_regclass", "SELECT '{}'::_regclass"},
		{"SELECT set_config('search_path', 'x', false)", "SELECT set_config('search_path', 'x', false)"},
		{"SELECT current_setting('TimeZone')", "SELECT current_setting('TimeZone')"},
		{"UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'", "UPDATE pg_settings SET setting = 'x' WHERE name = 'search_path'"},
		{"SET search_path = 'public', \"$user\"", "SET search_path = 'public', \"$user\""},
		{"  set  work_mem='4MB'  ", "set work_mem='4MB'"},
		{"SHOW TimeZone", "SHOW TimeZone"},
		{"SELECT 1; RESET ALL", "SELECT 1; RESET ALL"},
		{"COPY t TO STDOUT WITH (FORMAT csv, DELIMITER ';', NULL 'x')", "COPY t TO STDOUT WITH (FORMAT csv, DELIMITER ';', NULL 'x')"},
		{"DO $$BEGIN RAISE NOTICE 'x'; END$$", "DO $$BEGIN RAISE NOTICE 'x'; END$$"},
		{"SELECT t.region, t.regular FROM t WHERE id = 1", "SELECT t.region, t.regular FROM t WHERE id = {i}"},
		{"PREPARE p AS SELECT a FROM t WHERE b = 'x'", "PREPARE p AS SELECT a FROM t WHERE b = {s}"},
		{"UPDATE t SET a = 'x'", "UPDATE t SET a = {s}"},
		// Texts that do not lex get the fallback key.
		{"SELECT 'abc", " SELECT 'abc"},
		{"SELECT E'abc\\'", " SELECT E'abc\\'"},
		{"SELECT 1 /* x /* y */", " SELECT 1 /* x /* y */"},
		{"SELECT $$x", " SELECT $$x"},
		{`SELECT "x`, ` SELECT "x`},
		{"SELECT 123abc", " SELECT 123abc"},
		{"SELECT 0x", " SELECT 0x"},
		{"SELECT 1e", " SELECT 1e"},
		{"SELECT $1abc", " SELECT $1abc"},
		{"SELECT {i}", " SELECT {i}"},
	}
	for _, c := range cases {
		if got := string(CacheKey(nil, c.in)); got != c.want {
			t.Errorf("CacheKey(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestCacheKeyAppends(t *testing.T) {
	dst := []byte("prefix|")
	got := CacheKey(dst, pgbenchSelect)
	if string(got) != "prefix|SELECT abalance FROM pgbench_accounts WHERE aid = {i};" {
		t.Fatalf("got %q", got)
	}
	got = CacheKey([]byte("p|"), "SELECT 'x'::regclass, 'y")
	if string(got) != "p| SELECT 'x'::regclass, 'y" {
		t.Fatalf("fallback after restart: got %q", got)
	}
	got = CacheKey([]byte("p|"), "SELECT 'x', 1; SET a = 'b'")
	if string(got) != "p|SELECT 'x', 1; SET a = 'b'" {
		t.Fatalf("restart: got %q", got)
	}
}

// Literal pools: every member of a pool must give the same key.
var (
	stringLits = []string{`'x'`, `''`, `'it''s'`, `$$x$$`, `$q$a'b$q$`, "'multi\nline'", "'a'\n'b'",
		`'{}'`, `'-- not a comment'`, `'/* nor this'`, `'ORDER BY 1'`, `'regclass'`, `'set_config'`, `'$1'`}
	intLits     = []string{`0`, `1`, `48213`, `2147483647`, `0x7fffffff`, `1_000`, `0b101`, `0o17`}
	numericLits = []string{`1.5`, `.5`, `1e10`, `2147483648`, `1.`, `99999999999999999999999`, `1E-3`, `0x80000000`}
)

var keyTemplates = []string{
	"SELECT a FROM t WHERE b = %S AND c > %I OR d < %F",
	"SELECT a, %S AS lbl FROM t ORDER BY a LIMIT %I",
	"INSERT INTO t (a, b, c) VALUES (%S, %I, %F) RETURNING a",
	"UPDATE t SET a = %S WHERE id = %I",
	"SELECT * FROM t WHERE x IN (%I, %I) GROUP BY a HAVING count(*) > %I",
	"SELECT date %S + %I, %F::numeric",
	"WITH c AS (SELECT %S::text AS v) SELECT v FROM c WHERE v <> %S -- comment\n",
	"SELECT a FROM t WHERE b = %S ORDER BY a OFFSET %I; SELECT %F",
	"SELECT DISTINCT ON (a, 1) a FROM t WHERE a = %I ORDER BY a, b FETCH FIRST %I ROWS ONLY",
}

// fillTemplate replaces each slot in template with the first literal of its pool,
// except slot number vary, which gets lit.
func fillTemplate(template string, vary int, lit string) string {
	var b strings.Builder
	slot := 0
	for i := 0; i < len(template); i++ {
		if template[i] != '%' || i+1 == len(template) {
			b.WriteByte(template[i])
			continue
		}
		i++
		pool := map[byte][]string{'S': stringLits, 'I': intLits, 'F': numericLits}[template[i]]
		if slot == vary {
			b.WriteString(lit)
		} else {
			b.WriteString(pool[0])
		}
		slot++
	}
	return b.String()
}

// templateSlots lists the pool of each slot in template.
func templateSlots(template string) [][]string {
	var out [][]string
	for i := 0; i+1 < len(template); i++ {
		if template[i] == '%' {
			out = append(out, map[byte][]string{'S': stringLits, 'I': intLits, 'F': numericLits}[template[i+1]])
		}
	}
	return out
}

func TestCacheKeyLiteralsOfOneKindShareKeys(t *testing.T) {
	for _, tpl := range keyTemplates {
		base := string(CacheKey(nil, fillTemplate(tpl, -1, "")))
		if strings.HasPrefix(base, " ") {
			t.Fatalf("template %q gave a fallback key %q", tpl, base)
		}
		for slot, pool := range templateSlots(tpl) {
			for _, lit := range pool {
				text := fillTemplate(tpl, slot, lit)
				if got := string(CacheKey(nil, text)); got != base {
					t.Errorf("%q\n got %q\nwant %q", text, got, base)
				}
			}
		}
	}
}

func TestCacheKeyLiteralKindsDiffer(t *testing.T) {
	for _, tpl := range keyTemplates {
		for slot := range templateSlots(tpl) {
			keys := map[string]string{}
			for _, lit := range []string{stringLits[0], intLits[0], numericLits[0]} {
				text := fillTemplate(tpl, slot, lit)
				key := string(CacheKey(nil, text))
				if prev, dup := keys[key]; dup {
					t.Errorf("%q and %q share the key %q", prev, text, key)
				}
				keys[key] = text
			}
		}
	}
}

func TestCacheKeyNamesDiffer(t *testing.T) {
	names := []string{"a", "b", "A", `"a"`, `"A"`, "a1", "a$b", `"a b"`, "naïve", "_x", `"{s}"`, `"a""b"`,
		"$1", "$2", "ORDER", "by", "regclass", "+", "-", "?", "<>", "::", "(a)"}
	templates := []string{
		"SELECT %s FROM t WHERE c = 1",
		"SELECT c FROM t ORDER BY %s",
		"SELECT c FROM t WHERE x = 'v' AND %s = 2",
	}
	for _, tpl := range templates {
		keys := map[string]string{}
		for _, n := range names {
			text := fmt.Sprintf(tpl, n)
			key := string(CacheKey(nil, text))
			if prev, dup := keys[key]; dup {
				t.Errorf("%q and %q share the key %q", prev, text, key)
			}
			keys[key] = text
		}
	}
}

func TestCacheKeyKeptLiteralsDiffer(t *testing.T) {
	pairs := [][2]string{
		{"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 2"},
		{"SELECT DISTINCT ON (1) a FROM t", "SELECT DISTINCT ON (2) a FROM t"},
		{"SELECT 'a'::regclass", "SELECT 'b'::regclass"},
		{"SET search_path = a", "SET search_path = b"},
		{"SET work_mem = '1MB'", "SET work_mem = '2MB'"},
		{"COPY t TO STDOUT (DELIMITER ',')", "COPY t TO STDOUT (DELIMITER '|')"},
		{"SELECT set_config('a', 'b', false)", "SELECT set_config('a', 'c', false)"},
		{"SELECT 'a' 'b'", "SELECT 'a'\n'b'"},
		{"SELECT 1 ORDER BY 1", "SELECT '1' ORDER BY 1"},
		{"SELECT a, b FROM t ORDER BY t.limit, 1", "SELECT a, b FROM t ORDER BY t.limit, 2"},
		{"SELECT a, b FROM t ORDER BY a IS NOT DISTINCT FROM b, 1", "SELECT a, b FROM t ORDER BY a IS NOT DISTINCT FROM b, 2"},
		{`SELECT E'\x41'`, `SELECT E'\xff'`},
		{`SELECT U&'\0041'`, `SELECT U&'\d800'`},
	}
	for _, p := range pairs {
		if a, b := string(CacheKey(nil, p[0])), string(CacheKey(nil, p[1])); a == b {
			t.Errorf("%q and %q share the key %q", p[0], p[1], a)
		}
	}
}

func TestCacheKeyDoesNotAllocate(t *testing.T) {
	dst := make([]byte, 0, 512)
	for _, q := range []string{pgbenchSelect, "SELECT 'x'::regclass, 1 ORDER BY 1", "SELECT 'unterminated"} {
		allocs := testing.AllocsPerRun(100, func() { dst = CacheKey(dst[:0], q) })
		if allocs != 0 {
			t.Errorf("CacheKey(%q): %v allocations", q, allocs)
		}
	}
}

func BenchmarkCacheKey(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(pgbenchSelect)))
	for b.Loop() {
		dst = CacheKey(dst[:0], pgbenchSelect)
	}
}

// FuzzCacheKey: any text gives a key without panicking, the same key every
// time, appended after dst; and a normalized key ignores trailing
// whitespace.
func FuzzCacheKey(f *testing.F) {
	for _, tpl := range keyTemplates {
		f.Add(fillTemplate(tpl, -1, ""))
	}
	for _, s := range []string{pgbenchSelect, "SELECT E'\\'", "/* /* */", "'a'\n--c\n'b'", "'a' \v\r\n'b'", "$a$ $a", "0x_1", "1..2",
		"SELECT 'x'::regclass", "\x00{", "U&\"a\"", "SELECT $1::text"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		key := string(CacheKey(nil, sql))
		if again := string(CacheKey([]byte("pre"), sql)); again != "pre"+key {
			t.Fatalf("not deterministic: %q then %q", key, again)
		}
		if strings.HasPrefix(key, " ") {
			if key != " "+sql {
				t.Fatalf("fallback key %q is not the text", key)
			}
			return
		}
		if strings.HasSuffix(key, " ") {
			t.Fatalf("normalized key %q ends with a space", key)
		}
		if padded := string(CacheKey(nil, sql+"\n ")); padded != key {
			t.Fatalf("trailing whitespace changed the key: %q vs %q", key, padded)
		}
	})
}

// FuzzCacheKeyLiterals: two string or integer literals of the same kind
// give the same key; two different quoted identifiers give different keys.
func FuzzCacheKeyLiterals(f *testing.F) {
	f.Add("x", "it's", int32(1), int32(2), "a", "b")
	f.Add("", "$$", int32(0), int32(2147483647), "A", "a")
	f.Add("\\", "\n", int32(7), int32(7), `"`, `""`)
	f.Fuzz(func(t *testing.T, s1, s2 string, n1, n2 int32, id1, id2 string) {
		tpl := "SELECT a FROM t WHERE b = %s AND c = %d ORDER BY a LIMIT 5"
		k1 := string(CacheKey(nil, fmt.Sprintf(tpl, keyQuoteLit(s1), keyAbs32(n1))))
		k2 := string(CacheKey(nil, fmt.Sprintf(tpl, keyDollarLit(s2), keyAbs32(n2))))
		if k1 != k2 {
			t.Fatalf("literals %q/%d and %q/%d gave keys %q and %q", s1, n1, s2, n2, k1, k2)
		}
		q1 := "SELECT " + keyQuoteIdent(id1) + " FROM t WHERE x = 1"
		q2 := "SELECT " + keyQuoteIdent(id2) + " FROM t WHERE x = 2"
		if same := string(CacheKey(nil, q1)) == string(CacheKey(nil, q2)); same != (id1 == id2) {
			t.Fatalf("identifiers %q and %q: equal keys %v", id1, id2, same)
		}
	})
}

// keyQuoteLit quotes s as a standard string constant.
func keyQuoteLit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// keyDollarLit dollar-quotes s, or quotes it when it holds the tag.
func keyDollarLit(s string) string {
	if strings.Contains(s, "$z$") || strings.HasSuffix(s, "$z") || strings.HasSuffix(s, "$") {
		return keyQuoteLit(s)
	}
	return "$z$" + s + "$z$"
}

// keyQuoteIdent quotes s as an identifier.
func keyQuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// keyAbs32 returns |n| as a non-negative int64.
func keyAbs32(n int32) int64 {
	if n < 0 {
		return -int64(n)
	}
	return int64(n)
}

// scanToken is one token of pg_query's scanner with its source text.
type scanToken struct {
	text       string
	start, end int32
	lit        bool // a string, bit string or numeric constant
}

// scanTokens runs pg_query's scanner (the parser's own lexer) and drops
// comments.
func scanTokens(s string) ([]scanToken, error) {
	r, err := pg_query.Scan(s)
	if err != nil {
		return nil, err
	}
	var out []scanToken
	for _, t := range r.Tokens {
		switch t.Token {
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			continue
		}
		lit := false
		switch t.Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST,
			pg_query.Token_ICONST, pg_query.Token_FCONST:
			lit = true
		}
		out = append(out, scanToken{s[t.Start:t.End], t.Start, t.End, lit})
	}
	return out, nil
}

// textShape is a text's token sequence with every constant as "L".
func textShape(toks []scanToken) []string {
	out := make([]string, 0, len(toks))
	for _, t := range toks {
		if t.lit {
			out = append(out, "L")
		} else {
			out = append(out, t.text)
		}
	}
	return out
}

// keyShape is a key's token sequence with every constant and placeholder
// as "L"; the E, B, X or U& prefix scans apart from "{s}" and is dropped.
func keyShape(toks []scanToken) []string {
	var out []string
	var prev []scanToken
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.text != "{" || i+2 >= len(toks) || toks[i+2].text != "}" || !strings.Contains("sif", toks[i+1].text) {
			out, prev = append(out, textShape(toks[i:i+1])...), append(prev, t)
			continue
		}
		n := len(prev)
		switch {
		case toks[i+1].text != "s" || n == 0 || prev[n-1].end != t.start:
		case n >= 2 && prev[n-1].text == "&" && prev[n-2].end == prev[n-1].start && strings.EqualFold(prev[n-2].text, "u"):
			out, prev = out[:n-2], prev[:n-2]
		case len(prev[n-1].text) == 1 && strings.Contains("eEbBxX", prev[n-1].text):
			out, prev = out[:n-1], prev[:n-1]
		}
		out, prev = append(out, "L"), append(prev, scanToken{"L", t.start, toks[i+2].end, true})
		i += 2
	}
	return out
}

// checkKeyAgainstScanner asserts that a normalized key has the token
// sequence PostgreSQL's scanner finds in the text, constants aside: the
// key's lexer splits texts exactly where the parser does.
func checkKeyAgainstScanner(t *testing.T, sql string) {
	key := string(CacheKey(nil, sql))
	orig, err := scanTokens(sql)
	if strings.HasPrefix(key, " ") || err != nil {
		return // fallback keys hold the text; texts the scanner rejects are checked by their verbatim parts
	}
	kt, err := scanTokens(key)
	if err != nil {
		t.Fatalf("key of %q does not scan: %q: %v", sql, key, err)
	}
	a, b := textShape(orig), keyShape(kt)
	if strings.Join(a, "\x00") != strings.Join(b, "\x00") {
		t.Fatalf("token mismatch\n text %q\n key  %q\n scanner %q\n key     %q", sql, key, a, b)
	}
}

var scannerSeeds = []string{pgbenchSelect,
	"SELECT E'it\\'s', U&'x', N'a', B'01', X'1f', 1.5, .5, 1e10, 0x1F, 1_000, $1, $$x$$ FROM t -- c",
	"SELECT 'a'\n'b' /* x */", "SELECT 1..2", "SELECT a::int[]", "SELECT 'a' -- c\n 'b'", "SELECT U&\"x\"",
	"SELECT 1.e5, 0b1, 0o7, 0x_1", "'a' \v\r\n'b'", "/* /* */ */1", "$a$ $a$", "U&'a' UESCAPE '!'",
	"SELECT 1.5e-3, .1_0, x'1'", "SELECT \"a\"\"b\"'c'", "e'\\u0041'", "n'x'", "1e+5", "0 B.0", "a$b$c $1"}

func TestCacheKeyMatchesScanner(t *testing.T) {
	for _, s := range scannerSeeds {
		checkKeyAgainstScanner(t, s)
	}
	for _, tpl := range keyTemplates {
		for slot, pool := range templateSlots(tpl) {
			for _, lit := range pool {
				checkKeyAgainstScanner(t, fillTemplate(tpl, slot, lit))
			}
		}
	}
}

// FuzzCacheKeyScanner compares the key's tokens with pg_query's scanner
// on arbitrary texts.
func FuzzCacheKeyScanner(f *testing.F) {
	for _, s := range scannerSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if strings.IndexByte(sql, 0) >= 0 {
			return // the protocol cannot carry a NUL in a query
		}
		checkKeyAgainstScanner(t, sql)
	})
}
