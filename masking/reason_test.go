package masking

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRejectionReasons classifies every rejection of the golden cases:
// each gets a reason of the fixed set, and "other" only for the few
// constructs that fit none.
func TestRejectionReasons(t *testing.T) {
	valid := strings.Split(reasonList(), ", ")
	files, err := filepath.Glob("testdata/analyze/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	seen := map[string]bool{}
	for _, f := range files {
		for _, c := range readGolden(t, f) {
			_, err := Analyze(c.Query, newTestCatalog(), goldenOptions)
			var rej *Rejection
			if !errors.As(err, &rej) {
				continue
			}
			r := rej.Reason()
			seen[r] = true
			if !slices.Contains(valid, r) {
				t.Errorf("%s: reason %q is not in the fixed set", c.Query, r)
			}
			if r == ReasonOther && !strings.HasPrefix(rej.Construct, "COPY") && rej.Construct != "a query this complex" {
				t.Errorf("%s: construct %q has no reason", c.Query, rej.Construct)
			}
		}
	}
	for _, r := range []string{ReasonOracle, ReasonError, ReasonGrouping, ReasonWrite, ReasonSideChannel, ReasonCode, ReasonIdentity, ReasonCatalog} {
		if !seen[r] {
			t.Errorf("no golden rejection has reason %s", r)
		}
	}
}

func TestRejectionReasonExamples(t *testing.T) {
	cases := map[string]string{
		"SELECT id FROM customers WHERE email LIKE 'a%'":              ReasonOracle,
		"SELECT email FROM customers ORDER BY email":                  ReasonOracle,
		"SELECT email::int8 FROM customers":                           ReasonError,
		"SELECT lower(email) FROM customers GROUP BY 1":               ReasonGrouping,
		"INSERT INTO orders (id) SELECT length(email) FROM customers": ReasonWrite,
		"SELECT pg_notify('c', email) FROM customers":                 ReasonSideChannel,
		"DO $$ BEGIN END $$":                                          ReasonCode,
		"SET ROLE postgres":                                           ReasonIdentity,
		"SELECT * FROM pg_stats":                                      ReasonCatalog,
	}
	for sql, want := range cases {
		_, err := Analyze(sql, newTestCatalog(), goldenOptions)
		var rej *Rejection
		if !errors.As(err, &rej) {
			t.Errorf("%s: not rejected (%v)", sql, err)
			continue
		}
		if got := rej.Reason(); got != want {
			t.Errorf("%s: reason %s (construct %q), want %s", sql, got, rej.Construct, want)
		}
	}
}
