package scan

import (
	"strings"
	"testing"
	"time"
)

func findingsByColumn(res *Result) map[string]Finding {
	m := make(map[string]Finding)
	for _, f := range res.Findings {
		m[f.Table.Name+"."+f.Column.Name] = f
	}
	return m
}

func TestScanFindsPII(t *testing.T) {
	ctx, conn := scanConn(t)
	var calls, lastDone, lastTotal int
	res, err := Scan(ctx, conn, Options{Schemas: []string{"public"}, Values: 100,
		Today:    time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC),
		Progress: func(done, total int) { calls, lastDone, lastTotal = calls+1, done, total }})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 5 || lastDone != 5 || lastTotal != 5 {
		t.Errorf("progress: %d calls, last %d/%d; want 5 calls ending 5/5", calls, lastDone, lastTotal)
	}
	got := findingsByColumn(res)
	want := map[string]struct {
		kind Kind
		conf Confidence
	}{
		"public.kunder.epost":       {Email, High},
		"public.kunder.fornavn":     {PersonName, Medium},
		"public.kunder.etternavn":   {PersonName, Medium},
		"public.kunder.mobil":       {Phone, High},
		"public.kunder.fødselsdato": {BirthDate, High},
		"public.kunder.postnummer":  {Postcode, Medium},
		"public.kunder.notes":       {Email, High},
		"public.kunder.ref":         {NationalID, High},
		"public.payments.account":   {BankAcct, High},
		"public.payments.card":      {CardNumber, High},
		"public.payments.client":    {IPAddress, High},
		"public.products.name":      {PersonName, Medium},
		"public.big.misc":           {Email, High},
		"public.events.who":         {Email, High}, // partitioned: sampled through the parent
	}
	for col, w := range want {
		f, ok := got[col]
		if !ok {
			t.Errorf("%s: not found", col)
			continue
		}
		if f.Kind != w.kind || f.Confidence != w.conf {
			t.Errorf("%s: %s %s (%s), want %s %s", col, f.Kind, f.Confidence, f.Evidence(), w.kind, w.conf)
		}
	}
	for col, f := range got {
		if _, ok := want[col]; !ok {
			t.Errorf("%s: unexpected finding %s %s (%s)", col, f.Kind, f.Confidence, f.Evidence())
		}
	}
	if f := got["public.kunder.ref"]; f.Sampled != 100 || f.Matched != 100 || f.Evidence() != "100 of 100 sampled values are fødselsnummer" {
		t.Errorf("ref: sampled %d, matched %d, evidence %q", f.Sampled, f.Matched, f.Evidence())
	}
	if ev := got["public.kunder.epost"].Evidence(); ev != `name "epost"; 100 of 100 sampled values are email addresses` {
		t.Errorf("epost evidence: %q", ev)
	}
	if f := got["public.big.misc"]; f.Sampled == 0 || f.Sampled > 100 {
		t.Errorf("big.misc: %d values sampled, want 1..100", f.Sampled)
	}
	if len(res.Notes) != 0 {
		t.Errorf("notes: %q", res.Notes)
	}
}

func TestStarterRulesWriteThePrimaryKey(t *testing.T) {
	ctx, conn := scanConn(t)
	res, err := Scan(ctx, conn, Options{Schemas: []string{"public"}, Values: 50})
	if err != nil {
		t.Fatal(err)
	}
	out, err := StarterRules(res.Findings, "127.0.0.1:6432", "127.0.0.1:5432")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"public.events:\n    key: [id, at]\n", "public.kunder:\n    key: id\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("starter rules lack %q:\n%s", want, out)
		}
	}
}

func TestScanUsesTablesampleOnLargeTables(t *testing.T) {
	ctx, conn := scanConn(t)
	tables, err := readCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		sql := sampleSQL(tb, tb.Columns, 100)
		if has := strings.Contains(sql, "TABLESAMPLE SYSTEM"); has != (tb.Rel == "big" || tb.Rel == "events") {
			t.Errorf("%s (%.0f rows): %s", tb.Name, tb.Rows, sql)
		}
		if !strings.HasSuffix(sql, " LIMIT 100") {
			t.Errorf("%s: no LIMIT: %s", tb.Name, sql)
		}
	}
}

func TestScanLockedTableIsJudgedByNames(t *testing.T) {
	ctx, conn := scanConn(t)
	_, locker := scanConn(t)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "LOCK TABLE other.people IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Scan(ctx, conn, Options{Schemas: []string{"other"}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "other.people: not sampled (statement_timeout of 300ms reached)") {
		t.Errorf("notes: %q", res.Notes)
	}
	if len(res.Findings) != 1 || res.Findings[0].Kind != Email || res.Findings[0].Evidence() != `name "email"; no values sampled` {
		t.Errorf("findings: %+v", res.Findings)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("scan took %v despite the timeout", d)
	}
}
