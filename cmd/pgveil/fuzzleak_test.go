package main

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// FuzzNoLeak builds queries over the test schema from the fuzz input
// (select lists of PII and other columns through functions, casts,
// aggregates, windows and subqueries; WHERE, GROUP BY, ORDER BY, LIMIT;
// set operations; COPY, EXPLAIN and cursor wrappers), runs each through
// the proxy over the simple and the extended protocol, and fails when
// anything the proxy sends back holds a protected value. Rejections and
// server errors are fine. Its seed corpus runs in every go test.
func FuzzNoLeak(f *testing.F) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 96; i++ {
		seed := make([]byte, 8+rng.Intn(40))
		rng.Read(seed)
		f.Add(seed)
	}
	p := startProxyRules(f, attackRules, "")
	var c *rawConn
	connect := func(t *testing.T) {
		if c != nil {
			c.Close()
		}
		cc, e, err := rawDial(p.addr, "support", nil)
		if err != nil || e != nil {
			t.Fatalf("connect: %v %v", err, e)
		}
		c = cc
		if r, err := c.Simple("SET statement_timeout = '3s'"); err != nil || r.Err() != nil {
			t.Fatalf("SET statement_timeout: %v %v", err, r)
		}
	}
	f.Cleanup(func() {
		if c != nil {
			c.Close()
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if c == nil {
			connect(t)
		}
		sql := fuzzQuery(&chooser{b: data})
		for _, proto := range []string{protoSimple, protoExtended} {
			r, err := c.Run(sql, proto)
			if r != nil {
				if leak := findLeak(r.Raw); leak != "" {
					t.Errorf("LEAK over the %s protocol: %s\nquery: %s", proto, leak, sql)
				}
			}
			if err != nil {
				t.Errorf("the connection failed over the %s protocol: %v\nquery: %s", proto, err, sql)
				connect(t)
				continue
			}
			if testing.Verbose() {
				outcome := fmt.Sprintf("%d rows, %d copy rows", len(r.Rows), len(r.Copy))
				if e := r.Err(); e != nil {
					outcome = e.Code + " " + e.Message
				}
				t.Logf("%s: %s\n  %s", proto, sql, outcome)
			}
			if r.TxStatus != 'I' {
				if r, err := c.Simple("ROLLBACK"); err != nil || findLeak(r.Raw) != "" {
					connect(t)
				}
			}
		}
	})
}

// chooser turns fuzz input into choices; past its end every choice is 0.
type chooser struct {
	b []byte
	i int
}

func (c *chooser) pick(n int) int {
	if c.i >= len(c.b) {
		return 0
	}
	v := int(c.b[c.i])
	c.i++
	return v % n
}

func (c *chooser) one(list ...string) string { return list[c.pick(len(list))] }

// A FROM clause of the generator and the columns it offers as c.*.
type fuzzFrom struct {
	from       string
	pii, other []string
}

var fuzzFroms = []fuzzFrom{
	{"customers c", []string{"c.email", "c.first_name", "c.phone", "c.birth_date", "c"}, []string{"c.id", "c.country", "c.created_at", "c.anonymized_at"}},
	{"customers c JOIN survey_responses s ON s.customer_id = c.id", []string{"c.email", "s.comment", "c.phone", "s"}, []string{"c.id", "s.nps", "s.id"}},
	{"customer_emails c", []string{"c.email", "c.fname", "c"}, []string{"c.id"}},
	{"events c", []string{"c.email", "c"}, []string{"c.id", "c.customer_id", "c.at"}},
	{"(SELECT id, email, phone AS p, birth_date FROM customers) c", []string{"c.email", "c.p", "c.birth_date", "c"}, []string{"c.id"}},
	{"customers c, LATERAL (SELECT c.email AS e, upper(c.first_name) AS f) l", []string{"l.e", "l.f", "c.phone", "l"}, []string{"c.id", "c.country"}},
	{"customers AS c(i, m, fn, ph)", []string{"c.m", "c.fn", "c.ph", "c"}, []string{"c.i", "c.country"}},
	{"(WITH w AS (SELECT id, email, comment FROM customers JOIN survey_responses ON customer_id = customers.id) SELECT * FROM w) c", []string{"c.email", "c.comment"}, []string{"c.id"}},
}

// fuzzExprs wrap a column ({x}) in a computation; {key} is the entry's key.
var fuzzExprs = []string{
	"{x}", "{x}", "lower({x}::text)", "upper({x}::text)", "{x}::text", "{x}::varchar(4)",
	"{x}::char(3)", "{x}::name", "{x}::bpchar", "{x} || 'x'", "concat({x}, '|')",
	"md5({x}::text)", "length({x}::text)", "left({x}::text, 3)", "right({x}::text, 4)",
	"substr({x}::text, 2, 5)", "reverse({x}::text)", "to_json({x})", "to_jsonb({x})::text",
	"ARRAY[{x}]", "format('%s', {x})", "coalesce({x}::text, 'n')", "string_to_array({x}::text, '.')",
	"replace({x}::text, '.', ' ')", "translate({x}::text, 'aeiou', 'AEIOU')",
	"encode(textsend({x}::text), 'hex')", "encode(textsend({x}::text), 'base64')",
	"encode(convert_to({x}::text, 'UTF8'), 'escape')", "ascii({x}::text)", "{x} IS NULL",
	"quote_literal({x})", "row_to_json(ROW({x}))", "json_build_object('k', {x})",
	"regexp_replace({x}::text, '[a-m]', '*', 'g')", "split_part({x}::text, '@', 1)",
	"initcap({x}::text)", "btrim({x}::text, 'k')", "({x}::text)::int", "{x}::text::date",
	"{x}::text ~ 'k'", "position('k' in {x}::text)", "ascii({x}::text) * 2",
	"xmlelement(name x, {x})", "{x}::text::bytea", "(string_to_array({x}::text, '.'))[1]",
	"overlay({x}::text placing '#' from 2)", "lpad({x}::text, 30, '.')", "sha256(textsend({x}::text))",
	"CASE WHEN {x} IS NULL THEN 'n' ELSE {x}::text END", "to_char({x}::text::date, 'YYYY')",
	"jsonb_build_array({x}, {x})", "{x}::text COLLATE \"C\"", "pg_column_size({x})",
	"to_jsonb(ROW({x}, {key}))->>'f1'", "age({x})", "date_part('year', {x})", "date_trunc('month', {x})",
	"{x}::text COLLATE \"C\" < 'm'", "{x}::text = ANY (string_to_array('a,b', ','))",
	"to_jsonb({x}) || to_jsonb({key})", "jsonb_typeof(to_jsonb({x}))", "pg_typeof({x})::text",
	"(ROW({x}, {key})).f1", "ARRAY[{x}, {x}]", "array_length(string_to_array({x}::text, '.'), 1)",
	"{x}::text || {key}", "({x}::text)[1:2]", "to_json({x})->>0", "xmlforest({x} AS a, {key} AS b)",
}

// fuzzAggs wrap an expression ({x}) in an aggregate or window function.
var fuzzAggs = []string{
	"max({x}::text)", "min({x}::text)", "string_agg({x}::text, ',')", "array_agg({x})",
	"json_agg({x})", "count({x})", "count(DISTINCT {x})", "string_agg(DISTINCT {x}::text, ';')",
	"lag({x}) OVER (ORDER BY {key})", "first_value({x}) OVER (ORDER BY {key})",
	"max({x}::text) OVER ()", "mode() WITHIN GROUP (ORDER BY {x}::text)",
}

var fuzzWheres = []string{
	"", "", "", "{key} = 1", "{key} > 1", "{key} IN (1, 3)", "{x} IS NOT NULL", "{x} IS NULL",
	"{x}::text = 'kim.guess@example.com'", "{x}::text LIKE 'k%'", "{x}::text > 'l'",
	"c.email = 'kim.guess@example.com'", "c.email IN ('olav@example.org', 'x')",
	"length({x}::text) > 5", "EXISTS (SELECT 1 FROM customers x WHERE x.email LIKE 'k%')",
	"{key} = (SELECT max(id) FROM orders)", "{x}::text = ANY ('{a,b}')",
}

var fuzzTails = []string{
	"", "", " ORDER BY 1", " ORDER BY {key}", " ORDER BY {x}", " LIMIT 2", " ORDER BY {key} LIMIT 1 OFFSET 1",
	" GROUP BY {x}", " GROUP BY {key} ORDER BY {key}", " GROUP BY {x} ORDER BY count(*)",
	" GROUP BY {x}, {key} ORDER BY {key}",
}

// fill puts a column or expression (x) and the entry's key into a template.
func fill(template, x, key string) string {
	return strings.NewReplacer("{x}", x, "{key}", key).Replace(template)
}

// fuzzQuery builds one query from the choices.
func fuzzQuery(ch *chooser) string {
	from := fuzzFroms[ch.pick(len(fuzzFroms))]
	col := func(piiFirst bool) string {
		if piiFirst || ch.pick(3) > 0 {
			return from.pii[ch.pick(len(from.pii))]
		}
		return from.other[ch.pick(len(from.other))]
	}
	key := from.other[0]
	expr := func() string {
		e := fill(fuzzExprs[ch.pick(len(fuzzExprs))], col(false), key)
		if ch.pick(4) == 0 {
			e = fill(fuzzExprs[ch.pick(len(fuzzExprs))], "("+e+")", key)
		}
		return e
	}
	var items []string
	for n := 1 + ch.pick(3); n > 0; n-- {
		switch ch.pick(7) {
		case 0, 1:
			items = append(items, col(true))
		case 2, 3:
			items = append(items, expr())
		case 4:
			items = append(items, fill(fuzzAggs[ch.pick(len(fuzzAggs))], expr(), key))
		case 5:
			items = append(items, fmt.Sprintf("(SELECT %s FROM customers x WHERE x.id = %s)",
				fill(fuzzExprs[ch.pick(len(fuzzExprs))], ch.one("x.email", "x.phone", "x.first_name", "x.birth_date", "x"), key), key))
		case 6:
			items = append(items, ch.one("1", "'k'", "now() IS NOT NULL", key))
		}
	}
	sql := "SELECT " + ch.one("", "", "", "DISTINCT ") + strings.Join(items, ", ") + " FROM " + from.from
	if w := fuzzWheres[ch.pick(len(fuzzWheres))]; w != "" {
		sql += " WHERE " + fill(w, col(false), key)
	}
	sql += fill(fuzzTails[ch.pick(len(fuzzTails))], col(false), key)
	switch ch.pick(10) {
	case 0:
		sql = "COPY (" + sql + ") TO STDOUT" + ch.one("", " (FORMAT csv)", " (FORMAT binary)", " (DELIMITER '@')")
	case 1:
		sql = "EXPLAIN (VERBOSE) " + sql
	case 2:
		sql = "DECLARE fz CURSOR WITH HOLD FOR " + sql + "; FETCH ALL FROM fz; CLOSE fz"
	case 3:
		sql = "WITH q AS (" + sql + ") SELECT * FROM q"
	case 4:
		sql = "(" + sql + ") UNION ALL (" + sql + ")"
	}
	return sql
}

// TestFuzzQueryShapes checks that the generator builds valid SQL often
// enough to be worth running.
func TestFuzzQueryShapes(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		b := make([]byte, 32)
		rng.Read(b)
		seen[fuzzQuery(&chooser{b: b})] = true
	}
	if len(seen) < 150 {
		t.Fatalf("only %d different queries from 200 inputs", len(seen))
	}
}
