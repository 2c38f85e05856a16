package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// runExplainCommand runs pgveil explain against the test cluster.
func runExplainCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	path := writeCheckConfig(t, rulesYAML)
	var out, errOut bytes.Buffer
	all := append([]string{"explain", "--config", path, "--dsn", db.DSN("postgres", "", "postgres")}, args...)
	code = dispatch(all, &out, &errOut)
	t.Logf("pgveil %s: exit %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

func explainJSON(t *testing.T, wantCode int, role, sql string) explanation {
	t.Helper()
	code, stdout, _ := runExplainCommand(t, "--format", "json", "--role", role, sql)
	if code != wantCode {
		t.Fatalf("exit %d, want %d", code, wantCode)
	}
	var ex explanation
	if err := json.Unmarshal([]byte(stdout), &ex); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	return ex
}

func TestExplainMaskedLookup(t *testing.T) {
	ex := explainJSON(t, 0, "support", "SELECT id, email, phone FROM customers WHERE email = 'kari.nordmann@example.com'")
	if ex.Verdict != "masked" || len(ex.Statements) != 1 {
		t.Fatalf("verdict %q, %d statements; want masked, 1", ex.Verdict, len(ex.Statements))
	}
	want := []explainColumn{
		{Position: 1, Name: "id", Mask: "none"},
		{Position: 2, Name: "email", Mask: "email", Sources: []string{"public.customers.email"}},
		{Position: 3, Name: "phone", Mask: "partial:2,2", Sources: []string{"public.customers.phone"}},
	}
	got := ex.Statements[0].Columns
	if !slices.EqualFunc(got, want, func(a, b explainColumn) bool {
		return a.Position == b.Position && a.Name == b.Name && a.Mask == b.Mask && slices.Equal(a.Sources, b.Sources)
	}) {
		t.Errorf("columns %+v, want %+v", got, want)
	}
}

func TestExplainDerivedColumn(t *testing.T) {
	code, stdout, _ := runExplainCommand(t, "--role", "support", "SELECT country, lower(first_name) || phone AS who FROM customers")
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	for _, want := range []string{"role support: masked", "statement 1: SELECT", "country", "who",
		"redact (derived)", "public.customers.first_name, public.customers.phone"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestExplainShowsTheRewrittenText(t *testing.T) {
	ex := explainJSON(t, 0, "support", "SELECT id FROM customers WHERE email IS NOT NULL")
	if want := "SELECT id FROM customers WHERE CASE WHEN email IS NOT NULL THEN true ELSE false END"; ex.Runs != want {
		t.Errorf("runs %q, want %q", ex.Runs, want)
	}
	code, stdout, _ := runExplainCommand(t, "--role", "support", "SELECT email, count(*) FROM customers GROUP BY email ORDER BY 2")
	if code != 0 || !strings.Contains(stdout, "runs as: SELECT email, count(*) FROM customers GROUP BY email ORDER BY 2, pg_catalog.random()") {
		t.Errorf("exit %d; the output does not show the tie-breaker", code)
	}
}

func TestExplainRejectedOracle(t *testing.T) {
	ex := explainJSON(t, explainRejected, "support", "SELECT id FROM customers WHERE email LIKE 'a%'")
	r := ex.Rejection
	if ex.Verdict != "rejected" || r == nil {
		t.Fatalf("verdict %q, rejection %v", ex.Verdict, r)
	}
	if r.Reason != "oracle" || r.Construct != "WHERE" || !strings.Contains(r.Column, "email") {
		t.Errorf("rejection %+v, want reason oracle, construct WHERE, column email", r)
	}
	code, stdout, _ := runExplainCommand(t, "--role", "support", "SELECT id FROM customers WHERE email LIKE 'a%'")
	if code != explainRejected || !strings.Contains(stdout, "construct  WHERE") || !strings.Contains(stdout, "email") {
		t.Errorf("table output (exit %d) does not name the construct and column", code)
	}
}

func TestExplainUnmaskedRole(t *testing.T) {
	code, stdout, _ := runExplainCommand(t, "--role", "app_admin", "SELECT email FROM customers WHERE email LIKE 'a%'")
	if code != 0 || !strings.HasPrefix(stdout, "role app_admin: unmasked (in roles.unmasked") {
		t.Errorf("exit %d, output %q; want 0 and unmasked", code, stdout)
	}
}

func TestExplainAnonymize(t *testing.T) {
	ex := explainJSON(t, 0, "dpo", "ANONYMIZE customers WHERE id = 1")
	a := ex.Anonymize
	if a == nil || a.Table != "public.customers" || len(a.Tables) != 2 {
		t.Fatalf("anonymize %+v, want public.customers and its child", a)
	}
	if a.Tables[0].Columns["email"] != "random_email" || a.Tables[1].Table != "public.survey_responses" {
		t.Errorf("tables %+v", a.Tables)
	}
	ex = explainJSON(t, explainRejected, "support", "ANONYMIZE customers WHERE id = 1")
	if ex.Rejection == nil || ex.Rejection.Reason != "privilege" {
		t.Errorf("rejection %+v, want reason privilege", ex.Rejection)
	}
}

func TestExplainUsage(t *testing.T) {
	if code, _, stderr := runExplainCommand(t, "SELECT 1"); code != 2 || !strings.Contains(stderr, "--role") {
		t.Errorf("without --role: exit %d, stderr %q", code, stderr)
	}
}
