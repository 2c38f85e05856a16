package proxy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the proxy's Prometheus metrics. Build them with NewMetrics
// and register them where the process serves /metrics.
type Metrics struct {
	ClientsCurrent   prometheus.Gauge
	ClientsTotal     prometheus.Counter
	BytesFromClients prometheus.Counter
	BytesFromServers prometheus.Counter
	Queries          prometheus.Counter
	Errors           *prometheus.CounterVec
	QueryLatency     prometheus.Histogram
	Cancels          *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ClientsCurrent: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgveil_client_connections", Help: "Client connections open now."}),
		ClientsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_client_connections_total", Help: "Client connections accepted."}),
		BytesFromClients: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_client_bytes_total", Help: "Bytes received from clients."}),
		BytesFromServers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_server_bytes_total", Help: "Bytes received from the upstream server."}),
		Queries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgveil_queries_total", Help: "Queries and extended-protocol syncs answered (ReadyForQuery)."}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_errors_total", Help: "Errors, by kind: server (ErrorResponse), upstream (connect or lost), protocol (bad client input), rejected (pgveil refused a query)."},
			[]string{"kind"}),
		QueryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgveil_query_duration_seconds",
			Help:    "Time from forwarding a query or sync to its ReadyForQuery.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10)}),
		Cancels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgveil_cancel_requests_total", Help: "Cancel requests received, by result: sent (to the server), forwarded (a key issued elsewhere, passed to the peers), ignored (unknown key), failed (could not be passed on)."},
			[]string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.ClientsCurrent, m.ClientsTotal, m.BytesFromClients, m.BytesFromServers,
			m.Queries, m.Errors, m.QueryLatency, m.Cancels)
	}
	return m
}
