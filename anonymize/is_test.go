package anonymize

import "testing"

func TestIs(t *testing.T) {
	tests := []struct {
		sql  string
		want bool
	}{
		{"ANONYMIZE customers WHERE id = 1", true},
		{"anonymize customers where true;", true},
		{"AnOnYmIzE\tcustomers WHERE true", true},
		{"  \n\t-- a comment\n/* block /* nested */ still */ ANONYMIZE x WHERE true", true},
		{"ANONYMIZE", true},
		{"ANONYMIZE(", true},
		{"EXPLAIN ANONYMIZE customers WHERE id IN (8, 9)", true},
		{"explain analyze anonymize x where true", true},
		{"EXPLAIN ANALYSE VERBOSE ANONYMIZE x WHERE true", true},
		{"EXPLAIN VERBOSE ANONYMIZE x WHERE true", true},
		{"EXPLAIN (ANALYZE, FORMAT 'x)y') ANONYMIZE x WHERE true", true},
		{"EXPLAIN /* c */ ( COSTS off ) -- c\n ANONYMIZE x WHERE true", true},
		{"", false},
		{"   ", false},
		{"SELECT 1", false},
		{"SELECT 'ANONYMIZE customers'", false},
		{"SELECT anonymized_at FROM customers", false},
		{"ANONYMIZED customers", false},
		{"ANONYMIZE_log", false},
		{"ANONYMIZE1 x", false},
		{"ANONYMIZE$ x", false},
		{"/* ANONYMIZE */ SELECT 1", false},
		{"-- ANONYMIZE\nSELECT 1", false},
		{"/* unterminated ANONYMIZE", false},
		{"-- ANONYMIZE", false},
		{"EXPLAIN SELECT 1", false},
		{"EXPLAIN", false},
		{"EXPLAIN (", false},
		{"EXPLAIN (ANALYZE) SELECT 'ANONYMIZE'", false},
		{"EXPLAIN ANALYZE", false},
		{"UPDATE customers SET x = 'ANONYMIZE'", false},
		{`"ANONYMIZE" x`, false},
		{"ＡＮＯＮＹＭＩＺＥ x", false},
		{"WITH a AS (SELECT 1) ANONYMIZE x", false},
	}
	for _, tt := range tests {
		if got := Is(tt.sql); got != tt.want {
			t.Errorf("Is(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
}

func TestIsDoesNotAllocate(t *testing.T) {
	for _, sql := range []string{"SELECT * FROM t WHERE id = $1", "/* c */ EXPLAIN (ANALYZE) ANONYMIZE x WHERE true"} {
		if n := testing.AllocsPerRun(100, func() { Is(sql) }); n != 0 {
			t.Errorf("Is(%q) allocates %v times", sql, n)
		}
	}
}

func BenchmarkIsSelect(b *testing.B) {
	sql := "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
	for b.Loop() {
		Is(sql)
	}
}

func BenchmarkIsAnonymize(b *testing.B) {
	sql := "-- DPO request 17\nEXPLAIN ANONYMIZE customers WHERE id = ANY($1)"
	for b.Loop() {
		Is(sql)
	}
}
