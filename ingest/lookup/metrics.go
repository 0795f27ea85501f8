package lookup

import (
	"github.com/maypok86/otter/v2/stats"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	lookups        [4][2]prometheus.Counter // tierIndex → missing, found
	storeCalls     *prometheus.CounterVec   // store
	storeIDs       *prometheus.CounterVec
	refillErrors   prometheus.Counter
	corrupt        prometheus.Counter
	storeErrors    *prometheus.CounterVec // store
	feedUp         prometheus.Gauge
	filterLoaded   prometheus.Gauge
	filterLoad     prometheus.Gauge
	filterCapacity prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, r *Reader, rec *stats.Counter) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := promauto.With(reg)
	m := &metrics{
		storeCalls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_lookup_store_calls_total", Help: "Store round trips made by lookups; concurrent lookups share one (a pipeline or one query).",
		}, []string{"store"}),
		storeIDs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_lookup_store_ids_total", Help: "IDs the lookups asked a store for (what the Bloom filter and the cache did not answer).",
		}, []string{"store"}),
		refillErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_lookup_refill_dropped_total", Help: "Profiles read from Postgres whose Redis refill failed or was dropped (queue full); the next read refills them.",
		}),
		corrupt: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_lookup_corrupt_total", Help: "Redis values lookups found that are not valid profiles (wrong type, undecodable field): answered from Postgres, queued for repair.",
		}),
		storeErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_lookup_store_errors_total", Help: "Failed store round trips of lookups (Redis failures fall through to Postgres).",
		}, []string{"store"}),
		feedUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_lookup_change_feed_up", Help: "1 while this replica is subscribed to the change feed; 0 while it is not (filter and cache bypassed).",
		}),
		filterLoaded: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_lookup_filter_build_ids", Help: "IDs read into the Bloom filter being built (or last built).",
		}),
		filterLoad: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_lookup_filter_build_seconds", Help: "How long the last Bloom filter build took.",
		}),
		filterCapacity: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_lookup_filter_capacity_ids", Help: "The number of IDs the current Bloom filter is sized for at its false-positive budget.",
		}),
	}
	lookups := f.NewCounterVec(prometheus.CounterOpts{
		Name: "triad_lookup_ids_total", Help: "Profile IDs looked up, by the tier that answered (filter, cache, redis, postgres) and result (found, missing).",
	}, []string{"tier", "result"})
	for i, t := range tiers {
		m.lookups[i] = [2]prometheus.Counter{lookups.WithLabelValues(string(t), "missing"), lookups.WithLabelValues(string(t), "found")}
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "triad_lookup_filter_trusted", Help: "1 while the Bloom filter may answer unknown IDs; 0 while it loads or after a change-feed break.",
	}, func() float64 {
		if r.trusted.Load() {
			return 1
		}
		return 0
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "triad_lookup_filter_ids", Help: "IDs in the current Bloom filter.",
	}, func() float64 {
		if fl := r.filter.Load(); fl != nil {
			return float64(fl.ids.Load())
		}
		return 0
	})
	if rec != nil {
		f.NewCounterFunc(prometheus.CounterOpts{Name: "triad_lookup_cache_hits_total", Help: "In-process cache hits."},
			func() float64 { return float64(rec.Snapshot().Hits) })
		f.NewCounterFunc(prometheus.CounterOpts{Name: "triad_lookup_cache_misses_total", Help: "In-process cache misses."},
			func() float64 { return float64(rec.Snapshot().Misses) })
		f.NewCounterFunc(prometheus.CounterOpts{Name: "triad_lookup_cache_evictions_total", Help: "In-process cache entries evicted by size or expiry."},
			func() float64 { return float64(rec.Snapshot().Evictions) })
		f.NewGaugeFunc(prometheus.GaugeOpts{Name: "triad_lookup_cache_bytes", Help: "Weight of the in-process cache (response bytes plus 64 per entry)."},
			func() float64 { return float64(r.cache.WeightedSize()) })
	}
	return m
}

func (m *metrics) count(r Result) {
	i := 0
	if r.Found {
		i = 1
	}
	m.lookups[tierIndex(r.Tier)][i].Inc()
}

var tiers = [4]Tier{TierFilter, TierCache, TierRedis, TierPostgres}

func tierIndex(t Tier) int {
	switch t {
	case TierFilter:
		return 0
	case TierCache:
		return 1
	case TierRedis:
		return 2
	}
	return 3
}
