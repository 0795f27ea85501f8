package trace

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the trace aggregator's metrics.
type Metrics struct {
	requests *prometheus.CounterVec // protocol, encoding, code
	spans    *prometheus.CounterVec // protocol, result: accepted, rejected
	pending  prometheus.Gauge
	batches  *prometheus.CounterVec // result: ok, failed
	writeDur prometheus.Histogram
	// turnedAway counts spans rejected or refused, for alert rules
	// (Refused), beside the exported counter.
	turnedAway atomic.Int64
}

// Refused is how many spans the receivers rejected or refused since
// start: what the trace_ingest_rejecting rule watches.
func (m *Metrics) Refused() float64 { return float64(m.turnedAway.Load()) }

// spansTurnedAway counts spans rejected or refused.
func (m *Metrics) spansTurnedAway(protocol, result string, n int) {
	m.spans.WithLabelValues(protocol, result).Add(float64(n))
	m.turnedAway.Add(int64(n))
}

// NewMetrics registers the metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_trace_requests_total", Help: "OTLP export requests, by protocol (http, grpc), encoding (protobuf, json) and answer code (HTTP status or gRPC code name).",
		}, []string{"protocol", "encoding", "code"}),
		spans: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_trace_spans_total", Help: "Spans received, by protocol and result (accepted: written; rejected: invalid, reported as partial success; refused: the request was refused whole).",
		}, []string{"protocol", "result"}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_trace_pending_spans", Help: "Spans decoded and waiting to be written.",
		}),
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_trace_write_batches_total", Help: "Span store batches, by result (ok, failed).",
		}, []string{"result"}),
		writeDur: f.NewHistogram(prometheus.HistogramOpts{
			Name: "triad_trace_write_duration_seconds", Help: "Time to write one span batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
}
