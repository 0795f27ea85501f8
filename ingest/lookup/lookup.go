// Package lookup is the profile read path: a Bloom filter stops unknown
// IDs, an in-process W-TinyLFU cache answers hot ones, then Redis, then
// Postgres (which refills Redis).
//
// How a replica learns about writes (so no replica 404s a profile another
// one wrote): every writer announces the batches Postgres took on a Redis
// pub/sub channel before acknowledging them (ingest.Announcer); every
// replica subscribes (FeedHandler). A change adds its ID to the filter,
// drops older cache entries, and is remembered for a minute so a Redis copy
// older than an announced version is skipped for Postgres. Pub/sub loses
// what is published while a subscriber is disconnected, so:
//
//  1. the filter answers "unknown" only while it is trusted: loaded from a
//     Postgres scan that started while the feed was subscribed, with no
//     break in the subscription since;
//  2. the cache is used only while the feed is subscribed, and is emptied
//     on every resubscription;
//  3. after a break, the next subscription triggers a rebuild of the
//     filter; until it completes, lookups go to the stores.
//
// Cache fills race with invalidations; a fill re-checks the announcements
// and the cache epoch after storing and drops its entry if either moved.
package lookup

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/maypok86/otter/v2"
	"github.com/maypok86/otter/v2/stats"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/ingest"
)

// Primary is the source of truth (Postgres).
type Primary interface {
	// Get reads the rows of ids, tombstones included; missing ids are left
	// out.
	Get(ctx context.Context, ids []int64) ([]*ingest.Profile, error)
	// EstimateRows estimates the number of rows (to size the filter).
	EstimateRows(ctx context.Context) (int64, error)
	// ScanIDs streams every user ID.
	ScanIDs(ctx context.Context, fn func(ids []int64) error) error
}

// Cache is the Redis tier, addressed by dataset version.
type Cache interface {
	// GetManyAt reads ids; absent ones are in neither result, and corrupt
	// lists those whose value is not a valid profile (wrong type,
	// undecodable field): never served, read from Postgres instead.
	GetManyAt(ctx context.Context, version int, ids []int64) (good map[int64]*ingest.Profile, corrupt []int64, err error)
	WriteAt(ctx context.Context, version int, batch []*ingest.Profile, out []ingest.WriteResult) error
}

// Tier is where an answer came from.
type Tier string

// Tiers, fastest first.
const (
	TierFilter   Tier = "filter" // the Bloom filter: not a known ID
	TierCache    Tier = "cache"  // the in-process cache
	TierRedis    Tier = "redis"
	TierPostgres Tier = "postgres"
)

// Result is one ID's answer.
type Result struct {
	UserID  int64
	Found   bool
	Tier    Tier
	Version int64  // the profile's version; 0 when not found
	Body    []byte // the profile's JSON (ingest.Profile.AppendJSON); shared, do not modify
}

type entry struct {
	version int64
	body    []byte
}

// Reader answers profile lookups. Safe for concurrent use.
type Reader struct {
	cfg     Config
	log     *slog.Logger
	primary Primary
	redis   Cache
	m       *metrics

	serving atomic.Int64
	cache   *otter.Cache[int64, entry] // nil when off
	// fromRedis and fromPG batch concurrent store reads; refills carries
	// profiles read from Postgres to the Redis refill writer.
	fromRedis, fromPG *batcher
	refills           chan refill
	refillQuit        chan struct{}
	refillDone        chan struct{}
	// announced remembers the newest version announced per ID for a minute.
	announced *otter.Cache[int64, int64]
	epoch     atomic.Uint64 // bumped whenever the whole cache is dropped

	filter  atomic.Pointer[filter]
	trusted atomic.Bool // the filter may answer "unknown"
	feedUp  atomic.Bool
	gen     atomic.Uint64 // bumped on every feed break
	rebuild chan struct{}

	mu         sync.Mutex // guards pending and collecting, and orders filter adds against a rebuild's swap
	collecting bool
	pending    []int64
	loadErr    atomic.Pointer[string]
	loadedAt   atomic.Pointer[time.Time]
	onCorrupt  atomic.Pointer[func([]int64)]
}

// corruptValue marks, in the Redis batcher's results, an ID whose cached
// value is not a valid profile.
var corruptValue = &ingest.Profile{}

// OnCorrupt sets what the reader does with IDs whose Redis value is not a
// valid profile, after it answered them from Postgres: the application
// queues them for a logged, guarded repair. fn must not block.
func (r *Reader) OnCorrupt(fn func(ids []int64)) { r.onCorrupt.Store(&fn) }

type filter struct {
	mu       sync.RWMutex
	f        *bloom.BloomFilter
	capacity int64
	ids      atomic.Int64 // IDs added (approximate after false positives)
}

func key(id int64) [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return b
}

func (f *filter) test(id int64) bool {
	k := key(id)
	f.mu.RLock()
	ok := f.f.Test(k[:])
	f.mu.RUnlock()
	return ok
}

// add adds ids; it reports whether the filter now holds more IDs than it
// was sized for.
func (f *filter) add(ids ...int64) bool {
	f.mu.Lock()
	n := int64(0)
	for _, id := range ids {
		k := key(id)
		if !f.f.TestAndAdd(k[:]) {
			n++
		}
	}
	f.mu.Unlock()
	return f.ids.Add(n) > f.capacity
}

// New builds a reader serving dataset version 1. Call Run to load the
// filter and keep it fresh, and feed it the change feed (FeedHandler);
// until then every lookup goes to the stores.
func New(cfg Config, primary Primary, redis Cache, log *slog.Logger, reg prometheus.Registerer) *Reader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reader{cfg: cfg, log: log.With("component", "ingest.lookup"), primary: primary, redis: redis, rebuild: make(chan struct{}, 1)}
	r.serving.Store(1)
	var rec *stats.Counter
	if cfg.CacheMaxBytes > 0 {
		rec = stats.NewCounter()
		r.cache = otter.Must(&otter.Options[int64, entry]{
			MaximumWeight:    uint64(cfg.CacheMaxBytes),
			Weigher:          func(_ int64, e entry) uint32 { return uint32(len(e.body) + 64) },
			ExpiryCalculator: otter.ExpiryWriting[int64, entry](cfg.CacheTTL),
			StatsRecorder:    rec,
		})
	}
	r.announced = otter.Must(&otter.Options[int64, int64]{
		MaximumSize:      1 << 20,
		ExpiryCalculator: otter.ExpiryWriting[int64, int64](time.Minute),
	})
	r.m = newMetrics(reg, r, rec)
	if redis != nil {
		r.fromRedis = newBatcher(4, 256, 2*time.Second, func(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
			r.m.storeCalls.WithLabelValues("redis").Inc()
			r.m.storeIDs.WithLabelValues("redis").Add(float64(len(ids)))
			good, corrupt, err := redis.GetManyAt(ctx, r.Serving(), ids)
			for _, id := range corrupt {
				good[id] = corruptValue
			}
			return good, err
		})
		r.refills, r.refillQuit, r.refillDone = make(chan refill, 4096), make(chan struct{}), make(chan struct{})
		go r.refillRedis()
	}
	r.fromPG = newBatcher(4, 256, 5*time.Second, func(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
		r.m.storeCalls.WithLabelValues("postgres").Inc()
		r.m.storeIDs.WithLabelValues("postgres").Add(float64(len(ids)))
		rows, err := primary.Get(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[int64]*ingest.Profile, len(rows))
		for _, p := range rows {
			out[p.UserID] = p
		}
		return out, nil
	})
	return r
}

// Close stops the reader's store batchers and refill writer (queued
// refills are dropped). Lookups still running after Close wait for their
// context; none panics.
func (r *Reader) Close() {
	if r.fromRedis != nil {
		r.fromRedis.close()
		close(r.refillQuit)
		<-r.refillDone
	}
	r.fromPG.close()
}

type refill struct {
	version int
	p       *ingest.Profile
}

// refillRedis writes profiles read from Postgres back to Redis, batching
// what is queued, version-guarded so a refill never replaces a newer
// write. Refills are best effort: when the queue is full they are dropped
// (counted) and the next read of the ID refills it.
func (r *Reader) refillRedis() {
	defer close(r.refillDone)
	batch := map[int][]*ingest.Profile{}
	for {
		select {
		case first := <-r.refills:
			batch[first.version] = append(batch[first.version], first.p)
		case <-r.refillQuit:
			return
		}
	drain:
		for n := 1; n < 512; n++ {
			select {
			case f := <-r.refills:
				batch[f.version] = append(batch[f.version], f.p)
			default:
				break drain
			}
		}
		for v, ps := range batch {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.redis.WriteAt(ctx, v, ps, make([]ingest.WriteResult, len(ps))); err != nil {
				r.m.refillErrors.Add(float64(len(ps)))
				r.log.Debug("redis refill failed", "err", err, "profiles", len(ps))
			}
			cancel()
			delete(batch, v)
		}
	}
}

// Serving is the dataset version lookups read from Redis.
func (r *Reader) Serving() int { return int(r.serving.Load()) }

// SetServing switches the dataset version and empties the cache.
func (r *Reader) SetServing(version int) {
	if r.serving.Swap(int64(version)) != int64(version) {
		r.dropCache()
	}
}

func (r *Reader) dropCache() {
	r.epoch.Add(1)
	if r.cache != nil {
		r.cache.InvalidateAll()
	}
}

// Get looks up one profile. The filter and cache tiers allocate nothing.
func (r *Reader) Get(ctx context.Context, id int64) (Result, error) {
	if r.trusted.Load() {
		if f := r.filter.Load(); f != nil && !f.test(id) {
			res := Result{UserID: id, Tier: TierFilter}
			r.m.count(res)
			return res, nil
		}
	}
	if r.cache != nil && r.feedUp.Load() {
		if e, ok := r.cache.GetIfPresent(id); ok {
			res := Result{UserID: id, Found: true, Tier: TierCache, Version: e.version, Body: e.body}
			r.m.count(res)
			return res, nil
		}
	}
	res, err := r.GetMany(ctx, []int64{id})
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// GetMany looks up ids (positive; duplicates allowed) and returns one
// result per id, in order. An error means the stores could not answer
// for some id that passed the filter and the cache (Postgres failed).
func (r *Reader) GetMany(ctx context.Context, ids []int64) ([]Result, error) {
	out := make([]Result, len(ids))
	var f *filter
	if r.trusted.Load() {
		f = r.filter.Load()
	}
	useCache := r.cache != nil && r.feedUp.Load()
	epoch := r.epoch.Load()
	var rest []int // indices still unanswered
	for i, id := range ids {
		out[i].UserID = id
		if f != nil && !f.test(id) {
			out[i].Tier = TierFilter
			continue
		}
		if useCache {
			if e, ok := r.cache.GetIfPresent(id); ok {
				out[i] = Result{UserID: id, Found: true, Tier: TierCache, Version: e.version, Body: e.body}
				continue
			}
		}
		rest = append(rest, i)
	}
	if len(rest) > 0 {
		if err := r.fromStores(ctx, ids, out, rest, useCache, epoch); err != nil {
			return nil, err
		}
	}
	for i := range out {
		r.m.count(out[i])
	}
	return out, nil
}

func (r *Reader) fromStores(ctx context.Context, ids []int64, out []Result, rest []int, useCache bool, epoch uint64) error {
	serving := r.Serving()
	want := make([]int64, 0, len(rest))
	for _, i := range rest {
		want = append(want, ids[i])
	}
	var fromRedis map[int64]*ingest.Profile
	if r.fromRedis != nil {
		// A hung Redis may use at most half of what is left of the
		// caller's deadline: the other half is Postgres's, so the read is
		// answered from the source of truth instead of timing out.
		rctx := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(ctx, time.Until(dl)/2)
			defer cancel()
		}
		var err error
		if fromRedis, err = r.fromRedis.get(rctx, want); err != nil {
			r.m.storeErrors.WithLabelValues("redis").Inc()
			r.log.Debug("redis read failed; reading postgres", "err", err, "ids", len(want))
			fromRedis = nil
		}
	}
	var pgIdx []int
	var corrupt []int64
	skipRefill := map[int64]bool{}
	for _, i := range rest {
		p, ok := fromRedis[ids[i]]
		if p == corruptValue {
			// Never served: read through to Postgres, and leave the value
			// to a logged repair rather than an unguarded refill.
			corrupt = append(corrupt, ids[i])
			skipRefill[ids[i]] = true
			pgIdx = append(pgIdx, i)
			continue
		}
		if ok {
			if v, seen := r.announced.GetIfPresent(p.UserID); !seen || v <= p.Version {
				out[i] = r.found(p, TierRedis, useCache, epoch)
				continue
			}
			// Redis has not caught up with an announced write yet.
		}
		pgIdx = append(pgIdx, i)
	}
	if len(corrupt) > 0 {
		r.m.corrupt.Add(float64(len(corrupt)))
		if fn := r.onCorrupt.Load(); fn != nil {
			(*fn)(corrupt)
		}
	}
	if len(pgIdx) == 0 {
		return nil
	}
	want = want[:0]
	for _, i := range pgIdx {
		want = append(want, ids[i])
	}
	byID, err := r.fromPG.get(ctx, want)
	if err != nil {
		r.m.storeErrors.WithLabelValues("postgres").Inc()
		return fmt.Errorf("postgres: %w", err)
	}
	var fill []*ingest.Profile
	for _, id := range want {
		if p, ok := byID[id]; ok && !p.Deleted && !skipRefill[id] {
			fill = append(fill, p)
		}
	}
	for _, i := range pgIdx {
		p, ok := byID[ids[i]]
		if !ok || p.Deleted {
			out[i] = Result{UserID: ids[i], Tier: TierPostgres}
			continue
		}
		out[i] = r.found(p, TierPostgres, useCache, epoch)
	}
	if r.refills != nil {
		for _, p := range fill {
			select {
			case r.refills <- refill{version: serving, p: p}:
			default:
				r.m.refillErrors.Inc()
			}
		}
	}
	return nil
}

// found renders p and fills the cache.
func (r *Reader) found(p *ingest.Profile, tier Tier, useCache bool, epoch uint64) Result {
	body := p.AppendJSON(make([]byte, 0, 512))
	if useCache {
		r.cache.Set(p.UserID, entry{version: p.Version, body: body})
		// Re-check after storing: an invalidation that ran between the
		// store read and the Set must win.
		if v, seen := r.announced.GetIfPresent(p.UserID); (seen && v > p.Version) || r.epoch.Load() != epoch {
			r.cache.Invalidate(p.UserID)
		}
	}
	return Result{UserID: p.UserID, Found: true, Tier: tier, Version: p.Version, Body: body}
}

// ---- the change feed (redis.FeedHandler) ----

// Subscribed implements the feed handler: changes are delivered from now
// on. The cache (which may have missed invalidations) is emptied and the
// filter rebuilt.
func (r *Reader) Subscribed() {
	r.dropCache()
	r.feedUp.Store(true)
	r.m.feedUp.Set(1)
	r.requestRebuild()
}

// Lost implements the feed handler: changes may be missed from now on, so
// neither the filter nor the cache is trusted.
func (r *Reader) Lost(err error) {
	r.gen.Add(1)
	r.trusted.Store(false)
	r.feedUp.Store(false)
	r.m.feedUp.Set(0)
	r.log.Warn("change feed lost; lookups bypass the filter and the cache until it is back", "err", err)
}

// Changes implements the feed handler.
func (r *Reader) Changes(changes []ingest.Change) {
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.UserID
		r.announced.Compute(c.UserID, func(old int64, found bool) (int64, otter.ComputeOp) {
			if found && old >= c.Version {
				return old, otter.CancelOp
			}
			return c.Version, otter.WriteOp
		})
		if r.cache != nil {
			if e, ok := r.cache.GetIfPresent(c.UserID); ok && (e.version < c.Version || c.Repaired) {
				r.cache.Invalidate(c.UserID)
			}
		}
	}
	r.mu.Lock()
	full := false
	if f := r.filter.Load(); f != nil {
		full = f.add(ids...)
	}
	if r.collecting {
		r.pending = append(r.pending, ids...)
	}
	r.mu.Unlock()
	if full {
		r.requestRebuild()
	}
}

func (r *Reader) requestRebuild() {
	select {
	case r.rebuild <- struct{}{}:
	default:
	}
}

// Run keeps the filter: it rebuilds it when the feed (re)subscribes, when
// it outgrows its capacity and every BloomRebuildInterval, until ctx ends.
func (r *Reader) Run(ctx context.Context) {
	var tick <-chan time.Time
	if r.cfg.BloomRebuildInterval > 0 {
		t := time.NewTicker(r.cfg.BloomRebuildInterval)
		defer t.Stop()
		tick = t.C
	}
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.rebuild:
		case <-tick:
		}
		if err := r.Rebuild(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := err.Error()
			r.loadErr.Store(&msg)
			r.log.Warn("bloom filter build failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			r.requestRebuild()
			continue
		}
		backoff = time.Second
	}
}

// Rebuild builds a new filter from a Postgres scan and swaps it in. The
// filter becomes trusted only when the feed was subscribed when the scan
// started and did not break before the swap.
func (r *Reader) Rebuild(ctx context.Context) error {
	gen, up := r.gen.Load(), r.feedUp.Load()
	start := time.Now()
	r.mu.Lock()
	r.collecting, r.pending = true, nil
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.collecting, r.pending = false, nil
		r.mu.Unlock()
	}()
	rows, err := r.primary.EstimateRows(ctx)
	if err != nil {
		return err
	}
	// The estimate can lag (reltuples is updated by ANALYZE); an old
	// filter's count is a floor, and a scan that finds more IDs than the
	// filter was sized for is redone at the size it found.
	if old := r.filter.Load(); old != nil {
		rows = max(rows, old.ids.Load())
	}
	var nf *filter
	var n int64
	for attempt := 0; ; attempt++ {
		capacity := max(r.cfg.BloomMinCapacity, int64(float64(rows)*r.cfg.BloomHeadroom))
		nf = &filter{f: bloom.NewWithEstimates(uint(capacity), r.cfg.BloomFalsePositive), capacity: capacity}
		n = 0
		err = r.primary.ScanIDs(ctx, func(ids []int64) error {
			for _, id := range ids {
				k := key(id)
				nf.f.Add(k[:])
			}
			n += int64(len(ids))
			r.m.filterLoaded.Set(float64(n))
			return ctx.Err()
		})
		if err != nil {
			return err
		}
		if n <= capacity || attempt == 1 {
			break
		}
		r.log.Info("bloom filter undersized by a stale row estimate; building again", "estimate", rows, "ids", n)
		rows = n
	}
	capacity := nf.capacity
	nf.ids.Store(n)
	r.mu.Lock()
	nf.add(r.pending...)
	r.filter.Store(nf)
	trusted := up && r.gen.Load() == gen
	r.trusted.Store(trusted)
	r.mu.Unlock()
	now := time.Now()
	r.loadedAt.Store(&now)
	r.loadErr.Store(nil)
	took := time.Since(start)
	r.m.filterLoad.Set(took.Seconds())
	r.m.filterCapacity.Set(float64(capacity))
	r.log.Info("bloom filter built", "ids", n, "capacity", capacity, "false_positive", r.cfg.BloomFalsePositive,
		"bits", nf.f.Cap(), "took", took.Round(time.Millisecond), "trusted", trusted)
	return nil
}

// Status is the read path's state, for readiness and the dashboard.
type Status struct {
	// Filter is loading (no filter yet), ready (trusted) or bypassed (a
	// filter exists but the feed broke since it was built).
	Filter         string     `json:"filter"`
	FilterIDs      int64      `json:"filter_ids"`
	FilterCapacity int64      `json:"filter_capacity"`
	FalsePositive  float64    `json:"filter_false_positive_estimate"`
	FilterBuiltAt  *time.Time `json:"filter_built_at,omitempty"`
	FilterError    string     `json:"filter_error,omitempty"`
	Feed           string     `json:"change_feed"` // subscribed or down
	Serving        int        `json:"serving_version"`
	CacheEntries   int        `json:"cache_entries"`
}

// Status reports the read path's state. It is ready once a filter was
// built: a replica whose feed broke since still answers correctly (it
// bypasses the filter and the cache), so it stays in rotation.
func (r *Reader) Status() (Status, bool) {
	st := Status{Filter: "loading", Feed: "down", Serving: r.Serving()}
	if r.feedUp.Load() {
		st.Feed = "subscribed"
	}
	if f := r.filter.Load(); f != nil {
		st.Filter = "bypassed"
		if r.trusted.Load() {
			st.Filter = "ready"
		}
		st.FilterIDs, st.FilterCapacity = f.ids.Load(), f.capacity
		st.FalsePositive = fpRate(f.f.Cap(), f.f.K(), st.FilterIDs)
	}
	st.FilterBuiltAt = r.loadedAt.Load()
	if e := r.loadErr.Load(); e != nil {
		st.FilterError = *e
	}
	if r.cache != nil {
		st.CacheEntries = r.cache.EstimatedSize()
	}
	return st, st.Filter != "loading"
}

// fpRate is the false-positive rate of a filter of m bits and k hashes
// holding n keys: (1 - e^(-kn/m))^k.
func fpRate(m, k uint, n int64) float64 {
	if m == 0 {
		return 1
	}
	return math.Pow(1-math.Exp(-float64(k)*float64(n)/float64(m)), float64(k))
}

// MaxBatch is the most IDs one lookup request may ask for.
func (r *Reader) MaxBatch() int { return r.cfg.MaxBatch }
