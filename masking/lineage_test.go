package masking

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pgveil/pgveil/rules"
)

func TestLineageOperations(t *testing.T) {
	email := piiColumn("public.customers.email", &rules.Column{Mask: tstrategy("email"), Lookup: true})
	leads := piiColumn("crm.leads.email", &rules.Column{Mask: tstrategy("email")})
	phone := piiColumn("public.customers.phone", &rules.Column{Mask: tstrategy("partial:2,2"), Lookup: true})
	var exact lineage

	if d := derive(email, exact); d.plain || !reflect.DeepEqual(d.sources, []string{"public.customers.email"}) {
		t.Errorf("derive(email, exact) = %+v", d)
	}
	if d := derive(phone, email, phone); !reflect.DeepEqual(d.sources, []string{"public.customers.email", "public.customers.phone"}) {
		t.Errorf("derive keeps sources sorted and unique: %+v", d.sources)
	}
	if m := merge(email, leads); !m.plain || m.lookup || len(m.sources) != 2 {
		t.Errorf("merge of two email columns = %+v, want plain, not lookup", m)
	}
	if m := merge(email, phone); m.plain {
		t.Errorf("merge of different strategies is plain: %+v", m)
	}
	if m := merge(email, exact); m.plain || !m.pii() {
		t.Errorf("merge with an exact value = %+v, want derived", m)
	}
	if e := either(exact, email); !sameLineage(e, email) {
		t.Errorf("either(exact, email) = %+v", e)
	}
	if merge(exact, exact).pii() {
		t.Error("merge of exact values is PII")
	}
	if got := email.column(); got != "customers.email" {
		t.Errorf("column() = %q", got)
	}
	o := email.output("e")
	if !o.Plain || o.Strategy.Kind != rules.Email || !o.Masked() {
		t.Errorf("output = %+v", o)
	}
	if o := derive(email).output("x"); o.Plain || o.Strategy.Kind != "" || !o.Masked() {
		t.Errorf("derived output = %+v", o)
	}
}

func TestOrigins(t *testing.T) {
	p, err := Analyze("SELECT v.email, c.phone, o.amount FROM v_customer_emails v JOIN customers c USING (id) JOIN orders o ON o.customer_id = c.id", newTestCatalog(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[[2]int64][]string{
		{16400, 2}: {"public.customers.email"},
		{16400, 3}: {"public.customers.first_name"},
		{16400, 4}: {"public.customers.phone"},
		{16400, 5}: {"public.customers.birth_date"},
		{16500, 2}: {"public.customers.email"},
	}
	got := map[[2]int64][]string{}
	for _, o := range p.Statements[0].Origins {
		got[[2]int64{int64(o.Table), int64(o.Attnum)}] = o.Sources
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("origins = %v, want %v", got, want)
	}
}

func TestMessageWithoutRole(t *testing.T) {
	_, err := Analyze("SELECT id FROM customers ORDER BY email", newTestCatalog(), Options{})
	rej, ok := err.(*Rejection)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	want := "pgveil: column customers.email is PII; ORDER BY on it is not allowed for masked roles"
	if rej.Error() != want || rej.Construct != "ORDER BY" || rej.Column != "customers.email" {
		t.Errorf("rejection = %+v", rej)
	}
}

// TestTooComplex nests recursive queries whose lineage takes several
// rounds to settle: the rounds multiply, and the step budget stops them.
func TestTooComplex(t *testing.T) {
	q := "SELECT 1, 'x'"
	for i := 0; i < 20; i++ {
		q = fmt.Sprintf("WITH RECURSIVE r(n, e) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, (SELECT email FROM customers LIMIT 1) FROM r, (%s) s(a, b) WHERE n < 3) SELECT n, e FROM r", q)
	}
	start := time.Now()
	_, err := Analyze(q, newTestCatalog(), Options{})
	rej, ok := err.(*Rejection)
	if !ok || rej.Message != "pgveil: the query is too complex to analyse" {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v", d)
	}
}

// errCatalog fails every lookup.
type errCatalog struct{}

func (errCatalog) Relation(string, string) (*Relation, error) { return nil, errTestCatalog }
func (errCatalog) Function(string, string) (*Function, error) { return nil, errTestCatalog }

var errTestCatalog = &catalogTestError{}

type catalogTestError struct{}

func (*catalogTestError) Error() string { return "catalog down" }

func TestCatalogErrorIsReturned(t *testing.T) {
	for _, q := range []string{"SELECT email FROM customers", "SELECT lower('x')", "CALL p()"} {
		p, err := Analyze(q, errCatalog{}, Options{})
		if p != nil || err != errTestCatalog {
			t.Errorf("%s: got %v, %v; want the catalog's error", q, p, err)
		}
	}
}
