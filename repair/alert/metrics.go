package alert

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the alerting metrics.
type Metrics struct {
	evaluations prometheus.Counter
	deliveries  *prometheus.CounterVec
	latency     prometheus.Histogram
	// silencesExpired counts silences that ran out (each noticed once).
	silencesExpired prometheus.Counter
}

// NewMetrics registers the alerting metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		evaluations: f.NewCounter(prometheus.CounterOpts{Name: "triad_alert_evaluations_total", Help: "Alert rule evaluation rounds."}),
		deliveries: f.NewCounterVec(prometheus.CounterOpts{Name: "triad_alert_deliveries_total",
			Help: "Webhook delivery attempts by webhook and outcome (delivered, retry, expired)."}, []string{"webhook", "outcome"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{Name: "triad_alert_delivery_duration_seconds",
			Help: "Time of one webhook delivery attempt.", Buckets: prometheus.DefBuckets}),
		silencesExpired: f.NewCounter(prometheus.CounterOpts{Name: "triad_alert_silences_expired_total", Help: "Silences that ran out (noticed once each)."}),
	}
}
