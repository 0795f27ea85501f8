package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	lines       *prometheus.CounterVec // result: ok, quarantined
	quarantined *prometheus.CounterVec // reason class
	rows        *prometheus.CounterVec // outcome: applied, superseded, failed
	shardRows   *prometheus.CounterVec // shard
	shardErrors *prometheus.CounterVec // shard
	pgBatch     prometheus.Histogram
	derived     *prometheus.CounterVec // store, outcome: written, stale, failed, catchup
	storeUp     *prometheus.GaugeVec   // store
	catchup     *prometheus.CounterVec // store, outcome: recorded, replayed, record_error
	backlog     *prometheus.GaugeVec   // store
	// consistentAfter: seconds from the Postgres commit until a derived
	// store holds the write (Polaris' "consistent within M").
	consistentAfter *prometheus.HistogramVec // store

	announceErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		lines: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_lines_total", Help: "Input lines read, by result (ok or quarantined).",
		}, []string{"result"}),
		quarantined: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_quarantined_total", Help: "Quarantined input lines, by reason.",
		}, []string{"reason"}),
		rows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_rows_total", Help: "Profiles through the Postgres stage, by outcome: applied (Postgres holds this version), superseded (a newer version is there), failed.",
		}, []string{"outcome"}),
		shardRows: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_shard_rows_total", Help: "Profiles written by each shard writer.",
		}, []string{"shard"}),
		shardErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_shard_errors_total", Help: "Failed Postgres batch attempts of each shard writer.",
		}, []string{"shard"}),
		pgBatch: f.NewHistogram(prometheus.HistogramOpts{
			Name: "triad_ingest_postgres_batch_duration_seconds", Help: "Time to apply one shard batch to Postgres.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		derived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_derived_writes_total", Help: "Profiles sent to a derived store, by outcome: written, stale (the store already had a newer version), failed (an attempt failed), catchup (recorded for catch-up), rejected (refused for good by the store: recorded in profile_rejects, not retried).",
		}, []string{"store", "outcome"}),
		storeUp: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triad_ingest_derived_store_up", Help: "1 while a derived store takes writes; 0 after retries failed, until catch-up succeeds.",
		}, []string{"store"}),
		catchup: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_ingest_catchup_total", Help: "Catch-up entries, by outcome: recorded, replayed, record_error (the entry could not be recorded).",
		}, []string{"store", "outcome"}),
		backlog: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triad_ingest_catchup_backlog", Help: "Entries waiting in the catch-up log, per derived store (read after each replay pass).",
		}, []string{"store"}),
		consistentAfter: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "triad_ingest_consistent_after_seconds",
			Help: "Seconds from a write's Postgres commit until the derived store held it (directly, or by catch-up replay after a failure), per store. " +
				"The share of writes consistent within M is the le=M bucket over the count (Polaris' \"N nines within M\").",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"store"}),
		announceErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_ingest_announce_errors_total", Help: "Postgres batches whose change announcement to the read path's replicas failed after retries.",
		}),
	}
}

// queueDepth exports each shard queue's length at scrape time.
func registerQueueDepth(reg prometheus.Registerer, shards []*shard) {
	for _, s := range shards {
		q := s.in
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "triad_ingest_shard_queue_depth",
			Help:        "Profiles waiting in each shard writer's queue.",
			ConstLabels: prometheus.Labels{"shard": strconv.Itoa(s.id)},
		}, func() float64 { return float64(len(q)) }))
	}
}
