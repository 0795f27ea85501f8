package sweep

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the sweeps' metrics; one set per process, shared by the
// sweeper and the worker.
type Metrics struct {
	segments      *prometheus.CounterVec // entity
	records       *prometheus.CounterVec // entity
	duration      *prometheus.HistogramVec
	consistency   *prometheus.GaugeVec   // entity
	sweeps        *prometheus.CounterVec // entity, content_true
	suspects      *prometheus.CounterVec
	inFlight      *prometheus.CounterVec
	stuckSweeps   prometheus.Gauge
	rangeFailures prometheus.Counter
}

// NewMetrics registers the sweeps' metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		segments: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_sweep_segments_total", Help: "Sweep segments compared, by entity and result (clean: every store agreed; dirty: records were read).",
		}, []string{"entity", "result"}),
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_sweep_records_total", Help: "Primary records compared by sweeps, by entity.",
		}, []string{"entity"}),
		suspects: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_sweep_suspects_total", Help: "Keys a sweep's first pass suspected, by entity.",
		}, []string{"entity"}),
		inFlight: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_sweep_in_flight_total", Help: "Suspects written during the sweep (not judged), by entity.",
		}, []string{"entity"}),
		rangeFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_repair_sweep_range_failures_total", Help: "Sweep ranges that failed for a store reason (an error or a deadline); each backs off and is retried, the sweep shows the error.",
		}),
		stuckSweeps: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_repair_sweeps_stuck", Help: "Running sweeps that made no progress for repair.sweep.stuck_after (set by the leader).",
		}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "triad_repair_sweep_duration_seconds", Help: "Duration of finished sweeps, by entity.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"entity"}),
		sweeps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_repair_sweeps_finished_total", Help: "Sweeps finished, by entity and whether their figures are content-true (false: the label-only quick mode).",
		}, []string{"entity", "content_true"}),
		consistency: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triad_repair_consistency_ratio", Help: "Share of the records the last finished content-true sweep compared that were consistent in every store, by entity (label-only sweeps never set it).",
		}, []string{"entity"}),
	}
}

func (m *Metrics) rangeFailed() {
	if m != nil {
		m.rangeFailures.Inc()
	}
}

func (m *Metrics) stuck(n int) {
	if m != nil {
		m.stuckSweeps.Set(float64(n))
	}
}

func (m *Metrics) segment(entity string, segments, dirty, records int) {
	if m != nil {
		m.segments.WithLabelValues(entity, "clean").Add(float64(segments - dirty))
		m.segments.WithLabelValues(entity, "dirty").Add(float64(dirty))
		m.records.WithLabelValues(entity).Add(float64(records))
	}
}

// swept records a finished sweep: its duration, suspects, and the share
// of compared records with no finding.
func (m *Metrics) swept(entity string, records int64, rep *Report) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(entity).Observe(rep.Took.Seconds())
	m.suspects.WithLabelValues(entity).Add(float64(rep.Suspects))
	m.inFlight.WithLabelValues(entity).Add(float64(rep.InFlight))
	drifted := map[string]bool{}
	for _, f := range rep.Findings {
		drifted[f.Key] = true
	}
	m.sweeps.WithLabelValues(entity, strconv.FormatBool(rep.ContentTrue)).Inc()
	// The quick label-only mode cannot see another writer's change that
	// left triad's labels alone: its figures never feed the gauge.
	if records > 0 && rep.ContentTrue {
		m.consistency.WithLabelValues(entity).Set(1 - float64(len(drifted))/float64(records))
	}
}
