package repair

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the consistency engine's metrics; one set per process,
// shared by the checker and the repairer (sweeps have their own,
// repair/sweep).
type Metrics struct {
	checks  *prometheus.CounterVec // entity, result: consistent, inconsistent
	drift   *prometheus.CounterVec // entity, store, class: drift found (checks and sweeps)
	repairs *prometheus.CounterVec // entity, store, outcome
}

// NewMetrics registers the engine's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		checks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_checks_total", Help: "Keys checked by ID, by entity and result (consistent, inconsistent).",
		}, []string{"entity", "result"}),
		drift: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_drift_total", Help: "Drifted copies found, by entity, derived store and class (checks by ID and sweep findings).",
		}, []string{"entity", "store", "class"}),
		repairs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_repairs_total", Help: "Repair entries, by entity, store and outcome (planned, repaired, noop, conflict, failed, skipped).",
		}, []string{"entity", "store", "outcome"}),
	}
}

func (m *Metrics) checked(r Result) {
	if m == nil {
		return
	}
	if r.Consistent {
		m.checks.WithLabelValues(r.Entity, "consistent").Inc()
		return
	}
	m.checks.WithLabelValues(r.Entity, "inconsistent").Inc()
	for store, v := range r.Stores {
		if v.Class.Drift() {
			m.drift.WithLabelValues(r.Entity, store, string(v.Class)).Inc()
		}
	}
}

func (m *Metrics) repaired(e Entry) {
	if m != nil {
		m.repairs.WithLabelValues(e.Entity, e.Store, e.Outcome).Inc()
	}
}

// Drifted counts drift a sweep confirmed (triad_repair_drift_total, shared
// with checks by ID).
func (m *Metrics) Drifted(entity, store string, c Class) {
	if m != nil {
		m.drift.WithLabelValues(entity, store, string(c)).Inc()
	}
}
