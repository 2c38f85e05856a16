package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.yaml.in/yaml/v3"
)

// targetLabels are the labels Prometheus adds to every scraped series, and
// prometheusOwn the series it makes itself: neither comes from /metrics.
var (
	targetLabels  = map[string]bool{"job": true, "instance": true}
	prometheusOwn = map[string]bool{"up": true}
)

// TestDashboardAndAlertsQueryServedMetrics runs masked, rejected, failing,
// cancelled and ANONYMIZE queries through the proxy so that every metric
// family has samples, then checks that each metric the Grafana dashboard
// and the Prometheus alerts query is one /metrics serves, with the labels
// they select and group by, and label values that exist.
func TestDashboardAndAlertsQueryServedMetrics(t *testing.T) {
	exprs := dashboardExprs(t, "../../docs/grafana-dashboard.json")
	alerts := alertExprs(t, "../../docs/prometheus-alerts.yaml")
	if len(exprs) < 15 || len(alerts) != 5 {
		t.Fatalf("read %d dashboard and %d alert expressions; want at least 15 and 5", len(exprs), len(alerts))
	}
	exprs = append(exprs, alerts...)

	anonymizeFixture(t)
	var logs syncBuffer
	listen, metrics := startServe(t, &logs)
	exerciseMetrics(t, listen)
	served := scrapeFamilies(t, metrics)
	// The cancel request travels on a connection of its own.
	for deadline := time.Now().Add(10 * time.Second); served["pgveil_cancel_requests_total"] == nil; {
		if time.Now().After(deadline) {
			t.Fatal("pgveil_cancel_requests_total not served 10s after a cancelled query")
		}
		time.Sleep(10 * time.Millisecond)
		served = scrapeFamilies(t, metrics)
	}

	used := map[string]bool{}
	for _, e := range exprs {
		q := parsePromQL(e)
		for _, s := range q.selectors {
			used[s.metric] = true
			checkSelector(t, e, s, served)
		}
		for _, l := range q.grouping {
			if !targetLabels[l] && !q.hasLabel(l, served) {
				t.Errorf("%s: groups by %q, a label none of its metrics has", e, l)
			}
		}
	}
	// The dashboard shows every family the issue asks for.
	for _, m := range []string{"pgveil_client_connections", "pgveil_queries_total", "pgveil_query_duration_seconds_bucket",
		"pgveil_errors_total", "pgveil_rejected_queries_total", "pgveil_masked_values_total", "pgveil_plan_cache_hits_total",
		"pgveil_plan_cache_misses_total", "pgveil_anonymized_rows_total", "pgveil_cancel_requests_total"} {
		if !used[m] {
			t.Errorf("neither the dashboard nor the alerts query %s", m)
		}
	}
	names := make([]string, 0, len(used))
	for m := range used {
		if !prometheusOwn[m] {
			names = append(names, m)
		}
	}
	sort.Strings(names)
	if !t.Failed() {
		t.Logf("%d expressions query %d metrics, all served: %s", len(exprs), len(names), strings.Join(names, " "))
	}
}

// exerciseMetrics makes every pgveil metric family appear: a masked
// lookup, a rejection, a server error, a cancelled query and an ANONYMIZE.
func exerciseMetrics(t *testing.T, listen string) {
	ctx := testCtx(t)
	simple := pgx.QueryExecModeSimpleProtocol
	support := connectTo(t, listen, "support")
	var email string
	if err := support.QueryRow(ctx, "SELECT email FROM customers WHERE id = 1", simple).Scan(&email); err != nil || email != "***@example.com" {
		t.Fatalf("masked lookup: %q %v", email, err)
	}
	var pgErr *pgconn.PgError
	if _, err := support.Exec(ctx, "SELECT id FROM customers WHERE email LIKE 'k%'", simple); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("want a rejection, got %v", err)
	}
	admin := connectTo(t, listen, "postgres")
	if _, err := admin.Exec(ctx, "SELECT 1/0", simple); !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("want division by zero, got %v", err)
	}
	// pgx sends a CancelRequest when the context ends during a query (and
	// reports the context's error).
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := admin.Exec(short, "SELECT pg_sleep(30)", simple)
	cancel()
	if err == nil {
		t.Fatal("pg_sleep(30) finished within 200ms")
	}
	dpo := connectTo(t, listen, "dpo")
	tx, err := dpo.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if tag, err := tx.Exec(ctx, "ANONYMIZE customers WHERE id = ANY($1)", []int64{50}); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("ANONYMIZE: %q %v", tag, err)
	}
}

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// the panels' targets and the metric of each label_values variable.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	var d struct {
		Panels []struct {
			Type       string
			Title      string
			Datasource struct{ UID string }
			Targets    []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
			}
		}
	}
	decodeFile(t, path, json.Unmarshal, &d)
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q and %d targets; want the datasource variable and a query", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), *(\w+)\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q)
			continue
		}
		exprs = append(exprs, m[1]) // its label is job or instance, a target label
	}
	return exprs
}

// alertExprs returns the expressions of a Prometheus rule file.
func alertExprs(t *testing.T, path string) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	decodeFile(t, path, yaml.Unmarshal, &f)
	var exprs []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// decodeFile reads path into v with decode (json.Unmarshal, yaml.Unmarshal).
func decodeFile(t *testing.T, path string, decode func([]byte, any) error, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err == nil {
		err = decode(data, v)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// family is what /metrics serves under one series name (a histogram's
// _bucket, _sum and _count are three): its label names and values, and the
// help text of its family.
type family struct {
	labels map[string]map[string]bool
	help   string
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$`)
var labelPair = regexp.MustCompile(`([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"`)

// scrapeFamilies reads /metrics into families by series name.
func scrapeFamilies(t *testing.T, addr string) map[string]*family {
	t.Helper()
	help := map[string]string{}
	served := map[string]*family{}
	for _, line := range strings.Split(metricsText(t, addr), "\n") {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, text, _ := strings.Cut(rest, " ")
			help[name] = text
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := served[m[1]]
		if f == nil {
			f = &family{labels: map[string]map[string]bool{}}
			served[m[1]] = f
		}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			if f.labels[p[1]] == nil {
				f.labels[p[1]] = map[string]bool{}
			}
			f.labels[p[1]][p[2]] = true
		}
	}
	for name, f := range served {
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(name, "")
		f.help = help[name] + help[base]
	}
	return served
}

// checkSelector checks one selector against what is served: the metric,
// its label names, and each value matched for equality (found in a sample,
// or named in the family's help, where the possible values are listed).
func checkSelector(t *testing.T, expr string, s selector, served map[string]*family) {
	t.Helper()
	if prometheusOwn[s.metric] {
		return
	}
	f := served[s.metric]
	if f == nil {
		t.Errorf("%s: %s is not served by /metrics", expr, s.metric)
		return
	}
	for _, m := range s.matchers {
		if targetLabels[m.label] || strings.Contains(m.value, "$") {
			continue
		}
		values, ok := f.labels[m.label]
		switch {
		case !ok:
			t.Errorf("%s: %s has no label %q", expr, s.metric, m.label)
		case (m.op == "=" || m.op == "!=") && !values[m.value] && !strings.Contains(f.help, m.value):
			t.Errorf("%s: %s{%s} never has the value %q", expr, s.metric, m.label, m.value)
		}
	}
}

// promQL is what the checks need of an expression: its selectors, and the
// labels of its by, without, on and ignoring clauses.
type promQL struct {
	selectors []selector
	grouping  []string
}

type selector struct {
	metric   string
	matchers []matcher
}

type matcher struct{ label, op, value string }

func (q promQL) hasLabel(label string, served map[string]*family) bool {
	for _, s := range q.selectors {
		if f := served[s.metric]; f != nil && f.labels[label] != nil {
			return true
		}
	}
	return false
}

var (
	promString    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promMatcher   = regexp.MustCompile(`([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	promRange     = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promToken     = regexp.MustCompile(`[a-zA-Z_:][\w:]*(\s*[({])?|\d[\w.]*`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true, "inf": true, "nan": true}
	promLabelName = regexp.MustCompile(`[a-zA-Z_]\w*`)
)

// parsePromQL is a tokenizer that is enough for the expressions of a
// dashboard: an identifier is a metric unless it calls a function, is a
// keyword, or stands inside a string, a range, braces or a grouping
// clause. A selector with braces and no name is not supported.
func parsePromQL(expr string) promQL {
	var q promQL
	for _, g := range promGrouping.FindAllStringSubmatch(expr, -1) {
		q.grouping = append(q.grouping, promLabelName.FindAllString(g[2], -1)...)
	}
	e := promGrouping.ReplaceAllString(expr, " ")
	e = promRange.ReplaceAllString(e, " ")
	// Braces are taken out after the tokens are found, so each name keeps
	// its matchers; strings inside them stay whole until then.
	for _, loc := range promToken.FindAllStringIndex(blankStrings(e), -1) {
		tok := e[loc[0]:loc[1]]
		name := strings.TrimRight(tok, " \t\n({")
		switch {
		case name[0] >= '0' && name[0] <= '9', promKeywords[name], strings.HasSuffix(tok, "("):
			continue
		}
		s := selector{metric: name}
		if strings.HasSuffix(tok, "{") {
			body := promMatchers.FindString(e[loc[1]-1:])
			for _, m := range promMatcher.FindAllStringSubmatch(body, -1) {
				s.matchers = append(s.matchers, matcher{m[1], m[2], m[3]})
			}
		}
		q.selectors = append(q.selectors, s)
	}
	return q
}

// blankStrings replaces the inside of every string and every {...} with
// spaces, keeping offsets, so that no label name or value looks like a
// metric.
func blankStrings(e string) string {
	b := []byte(e)
	for _, re := range []*regexp.Regexp{promString, promMatchers} {
		for _, loc := range re.FindAllIndex(b, -1) {
			for i := loc[0] + 1; i < loc[1]-1; i++ {
				b[i] = ' '
			}
		}
	}
	return string(b)
}

// TestParsePromQL checks the tokenizer on the constructs the dashboard and
// the alerts use.
func TestParsePromQL(t *testing.T) {
	q := parsePromQL(`histogram_quantile(0.99, sum by (le, instance) (rate(pgveil_query_duration_seconds_bucket{job=~"$job", instance=~"a|b"}[$__rate_interval])))
  > 3 * (sum(rate(x_total[1h] offset 5m)) or on (job) 0 * up{kind!="rejected"}) and y unless z{ a = "sum(w)" }`)
	var got []string
	for _, s := range q.selectors {
		ms := []string{}
		for _, m := range s.matchers {
			ms = append(ms, m.label+m.op+m.value)
		}
		got = append(got, s.metric+"{"+strings.Join(ms, ",")+"}")
	}
	want := `pgveil_query_duration_seconds_bucket{job=~$job,instance=~a|b} x_total{} up{kind!=rejected} y{} z{a=sum(w)}`
	if strings.Join(got, " ") != want {
		t.Errorf("selectors:\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	if g := strings.Join(q.grouping, ","); g != "le,instance,job" {
		t.Errorf("grouping labels %s, want le,instance,job", g)
	}
}
