package main

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// The usefulness corpus: what a support person or an analyst writes every
// day. None of it may be rejected. Where no result column holds PII, the
// answer through pgveil must be byte for byte what the server gives the
// same role directly, in both protocols; where some do, the other columns
// must be exact and those masked.

// useful is one query, or a script of statements run in order on one
// connection (a transaction, a cursor, a temporary table).
type useful struct {
	name   string
	script []string
	// pii lists the result columns that hold PII (masked), by position,
	// for every statement of the script.
	pii []int
	// piiAt, for a script, lists them by statement instead.
	piiAt map[int][]int
	// params are bound in the extended protocol; the simple protocol runs
	// simple instead when set (the same query with the values inline).
	params [][]byte
	simple string
}

func usefulQueries() []useful {
	q := func(name, sql string, pii ...int) useful {
		return useful{name: name, script: []string{sql}, pii: pii}
	}
	return []useful{
		q("lookup by email", "SELECT id, email, first_name, phone, birth_date, country FROM customers WHERE email = 'kari.nordmann@example.com'", 1, 2, 3, 4),
		q("lookup by email with IN", "SELECT id, country, created_at FROM customers WHERE email IN ('kari.nordmann@example.com', 'ola.hansen@example.org') ORDER BY id"),
		{name: "lookup by email with = ANY($1)", script: []string{"SELECT id, country FROM customers WHERE email = ANY($1) ORDER BY id"},
			params: [][]byte{[]byte("{kari.nordmann@example.com,nobody@example.com,ingrid.berg@example.net}")},
			simple: "SELECT id, country FROM customers WHERE email = ANY('{kari.nordmann@example.com,nobody@example.com,ingrid.berg@example.net}') ORDER BY id"},
		{name: "lookup by email with a parameter", script: []string{"SELECT id, email, country FROM customers WHERE email = $1"},
			params: [][]byte{[]byte("ola.hansen@example.org")}, simple: "SELECT id, email, country FROM customers WHERE email = 'ola.hansen@example.org'", pii: []int{1}},
		q("lookup of an unknown email", "SELECT id FROM customers WHERE email = 'nobody@example.com'"),
		q("lookup by phone", "SELECT id, phone, country FROM customers WHERE phone = '+4791234567'", 1),
		{name: "lookup by id", script: []string{"SELECT * FROM customers WHERE id = $1"}, params: [][]byte{[]byte("2")},
			simple: "SELECT * FROM customers WHERE id = 2", pii: []int{1, 2, 3, 4}},
		q("does a customer exist", "SELECT EXISTS (SELECT 1 FROM customers WHERE email = 'kari.nordmann@example.com')"),
		q("orders of a customer found by email", "SELECT o.id, o.amount FROM orders o WHERE o.customer_id IN (SELECT id FROM customers WHERE email = 'kari.nordmann@example.com') ORDER BY o.id"),
		q("join on ids", "SELECT c.id, o.id, o.amount, c.country FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id"),
		q("join showing PII", "SELECT c.id, c.email, s.nps, s.comment FROM customers c LEFT JOIN survey_responses s ON s.customer_id = c.id ORDER BY c.id", 1, 3),
		q("customers by country", "SELECT country, count(*) FROM customers GROUP BY country ORDER BY country"),
		q("counts", "SELECT count(*), count(email), count(DISTINCT email), count(phone), count(DISTINCT country) FROM customers"),
		q("signups in a date range", "SELECT count(*) FROM customers WHERE created_at >= '2024-02-01' AND created_at < '2024-04-01'"),
		q("signups by month", "SELECT date_trunc('month', created_at) AS month, count(*) FROM customers GROUP BY month ORDER BY month"),
		q("signups by year", "SELECT extract(year FROM created_at), count(*) FROM customers GROUP BY 1 ORDER BY 1"),
		q("revenue per customer", "SELECT customer_id, sum(amount), avg(amount), max(amount), count(*) FROM orders GROUP BY customer_id ORDER BY customer_id"),
		q("revenue per country", "WITH totals AS (SELECT customer_id, sum(amount) AS s FROM orders GROUP BY customer_id) SELECT c.country, sum(t.s) FROM totals t JOIN customers c ON c.id = t.customer_id GROUP BY c.country ORDER BY c.country"),
		q("big orders", "SELECT id, amount FROM orders WHERE amount > 10 ORDER BY amount DESC, id"),
		q("NPS distribution", "SELECT nps, count(*) FROM survey_responses GROUP BY nps ORDER BY nps"),
		q("NPS score", "SELECT round(100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6)) / count(*), 1) FROM survey_responses"),
		q("NPS median", "SELECT avg(nps), percentile_cont(0.5) WITHIN GROUP (ORDER BY nps) FROM survey_responses"),
		q("NPS by country", "SELECT c.country, avg(s.nps) FROM survey_responses s JOIN customers c ON c.id = s.customer_id GROUP BY c.country ORDER BY c.country"),
		q("responses without a comment", "SELECT count(*) FROM survey_responses WHERE comment IS NULL"),
		q("customers without a phone", "SELECT id FROM customers WHERE phone IS NULL OR email IS NULL ORDER BY id"),
		q("anonymized flags", "SELECT id, anonymized_at IS NULL AS active FROM customers ORDER BY id"),
		q("window over orders", "SELECT id, amount, sum(amount) OVER (PARTITION BY customer_id ORDER BY id), rank() OVER (ORDER BY amount DESC), lag(amount) OVER (ORDER BY id) FROM orders ORDER BY id"),
		q("recursive CTE", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i), max(i) FROM n"),
		q("first page", "SELECT id, country FROM customers ORDER BY id LIMIT 2"),
		q("second page", "SELECT id, country FROM customers ORDER BY id LIMIT 2 OFFSET 2"),
		q("SELECT * masked", "SELECT * FROM customers ORDER BY id", 1, 2, 3, 4),
		q("correlated count", "SELECT id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c ORDER BY id"),
		q("HAVING on a count", "SELECT country, min(created_at), max(created_at) FROM customers GROUP BY country HAVING count(*) > 1 ORDER BY country"),
		q("DISTINCT countries", "SELECT DISTINCT country FROM customers ORDER BY country"),
		q("GROUP BY email ordered by id", "SELECT customers.id, email, count(orders.id) FROM customers JOIN orders ON orders.customer_id = customers.id GROUP BY customers.id, email ORDER BY customers.id", 1),
		q("events by day", "SELECT at, count(*) FROM events GROUP BY at ORDER BY at"),
		q("events with emails", "SELECT id, customer_id, email FROM events ORDER BY id", 2),
		q("view", "SELECT * FROM customer_emails ORDER BY id", 1, 2),
		q("JSON report", "SELECT json_agg(json_build_object('id', id, 'amount', amount) ORDER BY id) FROM orders"),
		q("JSON of PII values", "SELECT id, json_build_object('email', email) FROM customers ORDER BY id", 1),
		q("lower-cased email", "SELECT id, lower(email) FROM customers ORDER BY id", 1),
		q("session facts", "SELECT current_user, session_user, 1 + 1, 'x'::text"),
		q("COPY of non-PII", "COPY (SELECT id, country, created_at FROM customers ORDER BY id) TO STDOUT"),
		q("COPY csv of non-PII", "COPY (SELECT customer_id, amount FROM orders ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)"),
		q("COPY of a table with PII", "COPY customers TO STDOUT", 0),
		{name: "transaction with a temporary table", script: []string{
			"BEGIN",
			"CREATE TEMP TABLE notes (id int8, note text) ON COMMIT DROP",
			"INSERT INTO notes SELECT id, country FROM customers",
			"SELECT * FROM notes ORDER BY id",
			"UPDATE notes SET note = 'called' WHERE id = 1 RETURNING *",
			"SELECT n.id, n.note, c.email FROM notes n JOIN customers c ON c.id = n.id ORDER BY n.id",
			"ROLLBACK",
		}, piiAt: map[int][]int{5: {2}}},
		{name: "write in a transaction", script: []string{
			"BEGIN",
			"INSERT INTO orders VALUES (960, 1, 12.34) RETURNING id, amount",
			"UPDATE orders SET amount = amount + 1 WHERE id = 960 RETURNING amount",
			"SELECT count(*), sum(amount) FROM orders",
			"ROLLBACK",
		}},
		{name: "update a customer found by email", script: []string{
			"BEGIN",
			"UPDATE customers SET country = 'DK' WHERE email = 'ola.hansen@example.org' RETURNING id, country",
			"ROLLBACK",
		}},
		{name: "SQL prepared statement", script: []string{
			"PREPARE byid(int8) AS SELECT id, email, country FROM customers WHERE id = $1",
			"EXECUTE byid(1)",
			"DEALLOCATE byid",
		}, pii: []int{1}},
		{name: "cursor", script: []string{
			"BEGIN",
			"DECLARE cc CURSOR FOR SELECT id, country, email FROM customers ORDER BY id",
			"FETCH 2 FROM cc",
			"FETCH NEXT FROM cc",
			"CLOSE cc",
			"COMMIT",
		}, pii: []int{2}},
		{name: "settings", script: []string{"SET statement_timeout = '5s'", "SHOW statement_timeout", "RESET statement_timeout"}},
	}
}

// TestUseful runs the usefulness corpus through the proxy and directly.
func TestUseful(t *testing.T) {
	p := startProxyRules(t, attackRules, "")
	list := usefulQueries()
	start := time.Now()
	for _, u := range list {
		t.Run(u.name, func(t *testing.T) {
			for _, proto := range []string{protoSimple, protoExtended} {
				t.Run(proto, func(t *testing.T) { runUseful(t, p, u, proto) })
			}
		})
	}
	t.Logf("%d useful queries in %v", len(list), time.Since(start).Round(time.Millisecond))
}

func runUseful(t *testing.T, p *maskingProxy, u useful, proto string) {
	// The direct run goes first, whole: scripts write inside transactions
	// that would wait for each other.
	direct, e, err := rawDial(db.Addr(), "support", nil)
	if err != nil || e != nil {
		t.Fatalf("direct connection: %v %v", err, e)
	}
	defer direct.Close()
	want := runScript(t, direct, u, proto)
	proxied := rawConnect(t, p.addr, "support")
	got := runScript(t, proxied, u, proto)
	for i, sql := range u.script {
		w, g := want[i], got[i]
		noLeak(t, sql, g.Raw)
		if e := w.Err(); e != nil {
			t.Fatalf("%s: the server itself fails: %s %s", sql, e.Code, e.Message)
		}
		if e := g.Err(); e != nil {
			t.Errorf("%s: REJECTED or failed through pgveil: %s %s", sql, e.Code, e.Message)
			continue
		}
		pii := u.pii
		if u.piiAt != nil {
			pii = u.piiAt[i]
		}
		compareResults(t, sql, pii, w, g)
	}
	noLeak(t, "the connection", proxied.Everything())
}

func runScript(t *testing.T, c *rawConn, u useful, proto string) []*rawResult {
	t.Helper()
	var out []*rawResult
	for _, sql := range u.script {
		var r *rawResult
		var err error
		switch {
		case proto == protoSimple && u.simple != "":
			r, err = c.Simple(u.simple)
		case proto == protoSimple:
			r, err = c.Simple(sql)
		default:
			r, err = c.Extended(sql, u.params...)
		}
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out = append(out, r)
	}
	return out
}

// compareResults checks a proxied result against the direct one: the same
// columns, tags and rows, exact but for the PII columns, which must be
// masked.
func compareResults(t *testing.T, sql string, pii []int, want, got *rawResult) {
	t.Helper()
	isPII := map[int]bool{}
	for _, i := range pii {
		isPII[i] = true
	}
	if fmt.Sprint(got.Tags) != fmt.Sprint(want.Tags) {
		t.Errorf("%s: tags %q, want %q", sql, got.Tags, want.Tags)
	}
	if len(got.Fields) != len(want.Fields) {
		t.Fatalf("%s: %d row descriptions, want %d", sql, len(got.Fields), len(want.Fields))
	}
	for i := range want.Fields {
		// Temporary tables differ by OID between the two sessions.
		g, w := got.Fields[i], want.Fields[i]
		for j := range g {
			if j < len(w) && w[j].TableOID != g[j].TableOID && w[j].TableOID >= 16384 && g[j].TableOID >= 16384 {
				g[j].TableOID, w[j].TableOID = 0, 0
			}
		}
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%s: columns %v, want %v", sql, g, w)
		}
	}
	if len(got.Rows) != len(want.Rows) {
		t.Fatalf("%s: %d rows, want %d", sql, len(got.Rows), len(want.Rows))
	}
	masked := 0
	for r := range want.Rows {
		w, g := want.Rows[r], got.Rows[r]
		if len(w) != len(g) {
			t.Fatalf("%s: row %d has %d columns, want %d", sql, r, len(g), len(w))
		}
		for c := range w {
			switch {
			case !isPII[c] && !bytes.Equal(w[c], g[c]):
				t.Errorf("%s: row %d column %d = %q, want %q (exact)", sql, r, c, g[c], w[c])
			case isPII[c] && w[c] != nil && bytes.Equal(w[c], g[c]) && len(bytes.Trim(w[c], "*")) > 0:
				// (a value stored already masked, as ANONYMIZE leaves it, may
				// come back as it is)
				t.Errorf("%s: row %d column %d = %q, not masked", sql, r, c, g[c])
			case isPII[c]:
				masked++
			}
		}
	}
	if len(pii) > 0 && masked == 0 && len(want.Rows) > 0 {
		t.Errorf("%s: no PII column was masked", sql)
	}
	// COPY: exact when nothing is masked.
	if len(want.Copy) != len(got.Copy) {
		t.Fatalf("%s: %d COPY rows, want %d", sql, len(got.Copy), len(want.Copy))
	}
	for i := range want.Copy {
		if len(pii) == 0 && !bytes.Equal(want.Copy[i], got.Copy[i]) {
			t.Errorf("%s: COPY row %d = %q, want %q", sql, i, got.Copy[i], want.Copy[i])
		}
	}
}
