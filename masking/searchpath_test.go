package masking

import (
	"slices"
	"strings"
	"testing"
)

// TestSplitIdentifiers: search_path values split as the server's
// SplitIdentifierString does, and lists it refuses are errors.
func TestSplitIdentifiers(t *testing.T) {
	long := strings.Repeat("x", 70)
	for _, tc := range []struct {
		in   string
		want string // names joined by |, or "error"
	}{
		{"", ""},
		{"  ", ""},
		{"public", "public"},
		{" Public ,  APP ", "public|app"},
		{`"Public", "a ""b"" c"`, `Public|a "b" c`},
		{`"$user", public`, "$user|public"},
		{`""`, ""}, // one empty quoted name: a schema named "", which cannot exist
		{"a,,b", "error"},
		{"a b", "error"},
		{`"unterminated`, "error"},
		{`a"b`, "error"},
		{"ä", "error"},
		{long, long[:63]},
		{`"` + strings.Repeat("é", 40) + `"`, strings.Repeat("é", 31)},
	} {
		got, err := splitIdentifiers(tc.in)
		s := strings.Join(got, "|")
		if err != nil {
			s = "error"
		}
		if s != tc.want {
			t.Errorf("splitIdentifiers(%q) = %q (%v), want %q", tc.in, s, err, tc.want)
		}
	}
}

func TestSchemasOf(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{"pg_catalog"}},
		{[]string{"$user", "public"}, []string{"pg_catalog", "support", "public"}},
		{[]string{"public", "pg_catalog", "public"}, []string{"public", "pg_catalog"}},
		{[]string{"pg_temp", "app", "pg_temp_3"}, []string{"pg_catalog", "app"}},
	} {
		if got := schemasOf(tc.in, "support"); !slices.Equal(got, tc.want) {
			t.Errorf("schemasOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestPathTracker replays statement and ReadyForQuery sequences; cmd/pgveil's
// TestSearchPathFollowed runs the same kinds against a server.
func TestPathTracker(t *testing.T) {
	a, b, c := []string{"a"}, []string{"b"}, []string{"c"}
	type step func(*pathTracker)
	set := func(v []string) step { return func(t *pathTracker) { t.set(pathSet, v) } }
	local := func(v []string) step { return func(t *pathTracker) { t.set(pathLocal, v) } }
	txn := func(k txnKind, name string) step {
		return func(t *pathTracker) { t.txn(txnOp{kind: k, savepoint: name}) }
	}
	ready := func(status byte, failed bool) step { return func(t *pathTracker) { t.ready(status, failed) } }
	for i, tc := range []struct {
		steps []step
		want  []string
	}{
		{[]step{set(b), ready('I', false)}, b},
		{[]step{set(b), ready('I', true)}, a},
		{[]step{txn(txnBegin, ""), set(b), ready('T', false), txn(txnRollback, ""), ready('I', false)}, a},
		{[]step{txn(txnBegin, ""), set(b), local(c), ready('T', false)}, c},
		{[]step{txn(txnBegin, ""), set(b), local(c), txn(txnCommit, ""), ready('I', false)}, b},
		{[]step{txn(txnBegin, ""), local(b), txn(txnCommit, ""), ready('I', false)}, a},
		{[]step{txn(txnBegin, ""), set(b), ready('E', true), txn(txnCommit, ""), ready('I', false)}, a},
		{[]step{txn(txnBegin, ""), txn(txnSavepoint, "s"), set(b), txn(txnRollbackTo, "s"), ready('T', false)}, a},
		{[]step{txn(txnBegin, ""), set(b), txn(txnSavepoint, "s"), set(c), txn(txnRelease, "s"), txn(txnCommit, ""), ready('I', false)}, c},
		{[]step{txn(txnBegin, ""), set(b), txn(txnSavepoint, "s"), set(c), txn(txnSavepoint, "s"), set(a),
			txn(txnRollbackTo, "s"), ready('T', false)}, c},
		{[]step{set(b), ready('I', false), txn(txnBegin, ""), func(t *pathTracker) { t.set(pathReset, nil) }, ready('T', false)}, a},
		{[]step{set(b), txn(txnCommit, ""), set(c), ready('I', true)}, b}, // COMMIT inside an implicit transaction
	} {
		tr := newPathTracker(a)
		for _, s := range tc.steps {
			s(tr)
		}
		if !slices.Equal(tr.cur, tc.want) || tr.lost {
			t.Errorf("case %d: path %q (lost %v), want %q", i, tr.cur, tr.lost, tc.want)
		}
	}
	tr := newPathTracker(a)
	tr.txn(txnOp{kind: txnBegin})
	tr.set(pathSet, b)
	tr.ready('I', false) // the block ended unseen, with the path changed in it
	if !tr.lost {
		t.Errorf("a block that ended unseen did not lose the path")
	}
}
