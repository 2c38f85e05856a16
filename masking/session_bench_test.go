package masking

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/rules"
)

// benchSession is a masked session over the test catalog.
func benchSession(b *testing.B) *Session {
	g := NewGuard(&rules.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return newSession(g, "support", "postgres", newTestCatalog(), []string{"pg_catalog", "public"})
}

// BenchmarkAnalyzeCached is the cost of a masked query whose analysis is in
// the cache: the literal-free key, the lookup and the result's masker.
func BenchmarkAnalyzeCached(b *testing.B) {
	s := benchSession(b)
	sqls := []string{
		"SELECT email, country FROM customers WHERE id = 48213",
		"SELECT email, country FROM customers WHERE id = 17",
	}
	fields := []pgproto3.FieldDescription{{DataTypeOID: 25}, {DataTypeOID: 25}}
	formats := []int16{0, 0}
	if _, err := s.Analyze(sqls[0]); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		a, err := s.Analyze(sqls[i&1])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Result(a, 0, fields, formats); err != nil {
			b.Fatal(err)
		}
	}
	// A plan is trusted for catalogTTL: a long run analyses again that often.
	hits, misses := s.g.CacheStats()
	if expiries := uint64(time.Since(start) / catalogTTL); misses > 1+expiries || hits+misses < uint64(b.N)+1 {
		b.Fatalf("hits %d misses %d: the cache key kept a literal", hits, misses)
	}
}

// BenchmarkAnalyzeUncached is the cost of parsing and analysing a query.
func BenchmarkAnalyzeUncached(b *testing.B) {
	s := benchSession(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.g.plans.Purge()
		if _, err := s.Analyze("SELECT email, country FROM customers WHERE id = 1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnalyzeRepeated is the cost of a statement whose text comes
// again and again with parameters, as the extended protocol sends it.
func BenchmarkAnalyzeRepeated(b *testing.B) {
	s := benchSession(b)
	sql := "SELECT email, country FROM customers WHERE id = $1"
	fields := []pgproto3.FieldDescription{{DataTypeOID: 25}, {DataTypeOID: 25}}
	formats := []int16{0, 0}
	if _, err := s.Analyze(sql); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a, err, ok := s.Cached(sql)
		if !ok { // the plan outlived catalogTTL: analysed again, as the proxy does
			s.Warm(sql)
			a, err, ok = s.Cached(sql)
		}
		if err != nil || !ok {
			b.Fatal(err, ok)
		}
		if _, err := s.Result(a, 0, fields, formats); err != nil {
			b.Fatal(err)
		}
	}
}
