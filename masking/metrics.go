package masking

import (
	"context"
	"errors"
	"log/slog"

	pg "github.com/pganalyze/pg_query_go/v6"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the masking layer's Prometheus metrics. Build them with
// Guard.RegisterMetrics.
type Metrics struct {
	// ValuesMasked counts masked values by PII column ("schema.table.column").
	// A value derived from several columns counts once for each.
	ValuesMasked *prometheus.CounterVec
	// Rejected counts rejected queries by Rejection.Reason.
	Rejected *prometheus.CounterVec
	// AnonymizedRows counts the rows ANONYMIZE statements run through the
	// proxy reported, by the table they named ("schema.table").
	AnonymizedRows *prometheus.CounterVec
}

// Metrics returns the guard's metrics, nil before RegisterMetrics.
func (g *Guard) Metrics() *Metrics { return g.metrics }

// RegisterMetrics creates the guard's metrics and registers them with reg:
// values masked per column, rejections per reason, the analysis cache's
// hits and misses, and the databases open and in use. Call it before the guard opens sessions.
func (g *Guard) RegisterMetrics(reg prometheus.Registerer) {
	m := &Metrics{
		ValuesMasked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_masked_values_total",
			Help: "Values masked in results of masked roles, by the PII column they derive from (schema.table.column)."},
			[]string{"column"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_rejected_queries_total",
			Help: "Queries of masked roles rejected (SQLSTATE 42501), by reason: " + reasonList() + "."},
			[]string{"reason"}),
		AnonymizedRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_anonymized_rows_total",
			Help: "Rows of the named table that ANONYMIZE statements through the proxy changed (as their command tag reports; rolled-back transactions included)."},
			[]string{"table"}),
	}
	hits := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pgveil_plan_cache_hits_total", Help: "Query analyses served from the plan cache."},
		func() float64 { return float64(g.hits.Load()) })
	misses := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "pgveil_plan_cache_misses_total", Help: "Query texts parsed and analysed (not found in the plan cache)."},
		func() float64 { return float64(g.misses.Load()) })
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgveil_databases_open", Help: "Databases the proxy has its own connection pool to (catalog reads, checks, audit log)."},
		func() float64 { n, _ := g.DatabaseCounts(); return float64(n) })
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgveil_databases_in_use", Help: "Databases of pgveil_databases_open that sessions use now; the others close when idle."},
		func() float64 { _, n := g.DatabaseCounts(); return float64(n) })
	reg.MustRegister(m.ValuesMasked, m.Rejected, m.AnonymizedRows, hits, misses, open, held)
	g.metrics = m
}

// counters returns the ValuesMasked counter of each source of each masked
// output, in output order, or nil without metrics. Masker builds call it,
// so the label lookup happens once per result shape, not per value.
func (m *Metrics) counters(outs []Output) []prometheus.Counter {
	if m == nil {
		return nil
	}
	var cs []prometheus.Counter
	for _, o := range outs {
		for _, src := range o.Sources {
			cs = append(cs, m.ValuesMasked.WithLabelValues(src))
		}
	}
	return cs
}

// Rejected logs a rejected query at debug level, with the role, the reason
// and the query text with its literals removed (never the literals), and
// counts it by reason. Errors other than a *Rejection are ignored.
func (g *Guard) Rejected(user, sql string, err error) {
	var rej *Rejection
	if !errors.As(err, &rej) {
		return
	}
	if g.metrics != nil {
		g.metrics.Rejected.WithLabelValues(rej.Reason()).Inc()
	}
	if g.log != nil && g.log.Enabled(context.Background(), slog.LevelDebug) { // LogText parses: only when logged
		g.log.Debug("query rejected", "user", user, "reason", rej.Reason(), "construct", rej.Construct,
			"column", rej.Column, "message", rej.Error(), "query", LogText(sql))
	}
}

// LogText returns sql fit for a log: every literal constant replaced by a
// parameter symbol ($1, $2...) by pg_query's normalizer. A text that does
// not parse is withheld whole: its literals cannot be told apart.
func LogText(sql string) string {
	n, err := pg.Normalize(sql)
	if err != nil {
		return "(a text that does not parse; withheld)"
	}
	return n
}
