package lookup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/ingest"
)

// Unit tests of the read path's logic with in-memory stores; the real
// stores are exercised by cmd/internal/cli's replica tests.

type memPrimary struct {
	mu    sync.Mutex
	rows  map[int64]*ingest.Profile
	calls int
	fail  error
}

func (m *memPrimary) Get(_ context.Context, ids []int64) ([]*ingest.Profile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return nil, m.fail
	}
	var out []*ingest.Profile
	for _, id := range ids {
		if p, ok := m.rows[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}

func (m *memPrimary) EstimateRows(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.rows)), nil
}

func (m *memPrimary) ScanIDs(_ context.Context, fn func([]int64) error) error {
	m.mu.Lock()
	ids := make([]int64, 0, len(m.rows))
	for id := range m.rows {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	return fn(ids)
}

func (m *memPrimary) put(p *ingest.Profile) {
	m.mu.Lock()
	m.rows[p.UserID] = p
	m.mu.Unlock()
}

type memCache struct {
	mu    sync.Mutex
	keys  map[string]*ingest.Profile
	calls int
	fail  error
}

func (m *memCache) GetManyAt(_ context.Context, version int, ids []int64) (map[int64]*ingest.Profile, []int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail != nil {
		return nil, nil, m.fail
	}
	out := map[int64]*ingest.Profile{}
	for _, id := range ids {
		if p, ok := m.keys[fmt.Sprint(version, ":", id)]; ok {
			out[id] = p
		}
	}
	return out, nil, nil
}

func (m *memCache) WriteAt(_ context.Context, version int, batch []*ingest.Profile, out []ingest.WriteResult) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range batch {
		k := fmt.Sprint(version, ":", p.UserID)
		if cur, ok := m.keys[k]; ok && cur.Version > p.Version {
			continue
		}
		m.keys[k] = p
	}
	return nil
}

func (m *memCache) set(key string, p *ingest.Profile) {
	m.mu.Lock()
	m.keys[key] = p
	m.mu.Unlock()
}

func profile(id, version int64) *ingest.Profile {
	p := &ingest.Profile{UserID: id, Version: version}
	p.Fields[0] = []byte(fmt.Sprintf(`["v%d"]`, version))
	return p
}

func newTestReader(t *testing.T, rows ...int64) (*Reader, *memPrimary, *memCache) {
	t.Helper()
	pg := &memPrimary{rows: map[int64]*ingest.Profile{}}
	for _, id := range rows {
		pg.rows[id] = profile(id, 1)
	}
	rd := &memCache{keys: map[string]*ingest.Profile{}}
	cfg := DefaultConfig()
	cfg.BloomMinCapacity = 1000
	r := New(cfg, pg, rd, nil, nil)
	t.Cleanup(r.Close)
	return r, pg, rd
}

func TestTiersAndRefill(t *testing.T) {
	r, pg, rd := newTestReader(t, 1, 2, 3)
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	st, ready := r.Status()
	require.True(t, ready)
	require.Equal(t, "ready", st.Filter)

	res, err := r.Get(t.Context(), 1)
	require.NoError(t, err)
	require.Equal(t, TierPostgres, res.Tier)
	require.Eventually(t, func() bool {
		rd.mu.Lock()
		defer rd.mu.Unlock()
		return rd.keys["1:1"] != nil
	}, 5*time.Second, time.Millisecond, "postgres refilled redis")

	res, _ = r.Get(t.Context(), 1)
	require.Equal(t, TierCache, res.Tier)
	require.True(t, res.Found)
	require.JSONEq(t, string(pg.rows[1].AppendJSON(nil)), string(res.Body))

	rd.set("1:2", profile(2, 1))
	res, _ = r.Get(t.Context(), 2)
	require.Equal(t, TierRedis, res.Tier)

	// Unknown: the filter answers, no store is called.
	calls := pg.calls + rd.calls
	res, _ = r.Get(t.Context(), 999)
	require.False(t, res.Found)
	require.Equal(t, TierFilter, res.Tier)
	require.Equal(t, calls, pg.calls+rd.calls)

	// Deleted: passes the filter, 404 after the lookup, nothing refilled.
	pg.put(&ingest.Profile{UserID: 3, Version: 2, Deleted: true})
	res, _ = r.Get(t.Context(), 3)
	require.False(t, res.Found)
	require.Equal(t, TierPostgres, res.Tier)
	rd.mu.Lock()
	require.NotContains(t, rd.keys, "1:3")
	rd.mu.Unlock()
}

func TestFeedBreakBypassesFilterAndCache(t *testing.T) {
	r, pg, rd := newTestReader(t, 1)
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	_, _ = r.Get(t.Context(), 1) // fills the cache

	r.Lost(errors.New("connection reset"))
	st, ready := r.Status()
	require.Equal(t, "bypassed", st.Filter)
	require.True(t, ready, "a replica that lost its feed still answers correctly")

	// Written while the feed was down: the filter never heard of it, but
	// it is not trusted, so the lookup reaches Postgres.
	pg.put(profile(50, 1))
	res, _ := r.Get(t.Context(), 50)
	require.True(t, res.Found)
	require.Equal(t, TierPostgres, res.Tier)
	// The cache is bypassed too: an update it could not hear about (the
	// pipeline wrote Postgres, then Redis) shows.
	pg.put(profile(1, 2))
	require.NoError(t, rd.WriteAt(t.Context(), 1, []*ingest.Profile{profile(1, 2)}, make([]ingest.WriteResult, 1)))
	res, _ = r.Get(t.Context(), 1)
	require.EqualValues(t, 2, res.Version)
	require.Equal(t, TierRedis, res.Tier)

	// Resubscribing drops the cache and rebuilds a trusted filter.
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	st, _ = r.Status()
	require.Equal(t, "ready", st.Filter)
	res, _ = r.Get(t.Context(), 50)
	require.True(t, res.Found)
}

func TestRebuildWithoutFeedIsNotTrusted(t *testing.T) {
	r, _, _ := newTestReader(t, 1)
	require.NoError(t, r.Rebuild(t.Context()))
	st, _ := r.Status()
	require.Equal(t, "bypassed", st.Filter, "changes could have been missed during the scan")
}

func TestChangesUpdateFilterCacheAndSkipStaleRedis(t *testing.T) {
	r, pg, rd := newTestReader(t, 1)
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))

	// A new ID announced: the filter lets it through at once.
	pg.put(profile(7, 1))
	r.Changes([]ingest.Change{{UserID: 7, Version: 1}})
	res, _ := r.Get(t.Context(), 7)
	require.True(t, res.Found)

	// Cached version 1; version 2 announced while Redis still has 1: the
	// cache entry goes and the stale Redis copy is skipped for Postgres.
	_, _ = r.Get(t.Context(), 1)
	rd.set("1:1", profile(1, 1))
	pg.put(profile(1, 2))
	r.Changes([]ingest.Change{{UserID: 1, Version: 2}})
	res, _ = r.Get(t.Context(), 1)
	require.EqualValues(t, 2, res.Version)
	require.Equal(t, TierPostgres, res.Tier)
	// An older announcement changes nothing.
	r.Changes([]ingest.Change{{UserID: 1, Version: 1}})
	res, _ = r.Get(t.Context(), 1)
	require.EqualValues(t, 2, res.Version)
	require.Equal(t, TierCache, res.Tier)
}

func TestChangesDuringRebuildAreKept(t *testing.T) {
	r, pg, _ := newTestReader(t, 1)
	r.Subscribed()
	// A change that arrives while the scan runs (after the scan read its
	// IDs) must be in the new filter.
	pg2 := &scanHook{memPrimary: pg, during: func() {
		pg.put(profile(42, 1))
		r.Changes([]ingest.Change{{UserID: 42, Version: 1}})
	}}
	r.primary = pg2
	require.NoError(t, r.Rebuild(t.Context()))
	res, _ := r.Get(t.Context(), 42)
	require.True(t, res.Found)
}

type scanHook struct {
	*memPrimary
	during func()
}

func (s *scanHook) ScanIDs(ctx context.Context, fn func([]int64) error) error {
	err := s.memPrimary.ScanIDs(ctx, fn)
	s.during()
	return err
}

func TestSwitchDropsCache(t *testing.T) {
	r, _, rd := newTestReader(t, 1)
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	_, _ = r.Get(t.Context(), 1)
	rd.set("2:1", profile(1, 1))
	r.SetServing(2)
	res, _ := r.Get(t.Context(), 1)
	require.Equal(t, TierRedis, res.Tier, "version 2's keyspace answers after the switch")
}

func TestRedisFailureFallsThrough(t *testing.T) {
	r, _, rd := newTestReader(t, 1)
	rd.fail = errors.New("connection refused")
	res, err := r.Get(t.Context(), 1)
	require.NoError(t, err)
	require.True(t, res.Found)
	require.Equal(t, TierPostgres, res.Tier)
}

func TestFilterOutgrowsCapacity(t *testing.T) {
	r, _, _ := newTestReader(t)
	r.Subscribed()
	<-r.rebuild // drain the request Subscribed made
	require.NoError(t, r.Rebuild(t.Context()))
	batch := make([]ingest.Change, 0, 1500)
	for id := int64(1); id <= 1500; id++ {
		batch = append(batch, ingest.Change{UserID: id, Version: 1})
	}
	r.Changes(batch)
	select {
	case <-r.rebuild:
	default:
		t.Fatal("adding more IDs than the filter's capacity asks for a rebuild")
	}
	st, _ := r.Status()
	require.Greater(t, st.FalsePositive, 0.01, "over capacity, the estimate exceeds the budget")
}

func TestUnknownIDsStoppedAtBudget(t *testing.T) {
	ids := make([]int64, 0, 20000)
	for id := int64(1); id <= 20000; id++ {
		ids = append(ids, id)
	}
	r, pg, rd := newTestReader(t, ids...)
	// Full at build time: the filter answers at its budget.
	r.cfg.BloomMinCapacity, r.cfg.BloomHeadroom = 20000, 1
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	pg.calls, rd.calls = 0, 0
	unknown, stopped := 0, 0
	for id := int64(1_000_000); id < 1_100_000; id++ {
		res, err := r.Get(t.Context(), id)
		require.NoError(t, err)
		require.False(t, res.Found)
		unknown++
		if res.Tier == TierFilter {
			stopped++
		}
	}
	share := float64(unknown-stopped) / float64(unknown)
	t.Logf("unknown IDs let through: %.4f%% (budget %.2f%%); store calls per unknown ID: %.4f",
		100*share, 100*r.cfg.BloomFalsePositive, float64(pg.calls+rd.calls)/float64(unknown))
	require.Less(t, share, 1.5*r.cfg.BloomFalsePositive)
	require.Greater(t, share, 0.5*r.cfg.BloomFalsePositive, "a full filter answers near its budget")
	require.Equal(t, 2*(unknown-stopped), pg.calls+rd.calls, "only false positives reach the stores (Redis, then Postgres), one read each")
}

type staleEstimate struct{ *memPrimary }

func (staleEstimate) EstimateRows(context.Context) (int64, error) { return 0, nil }

func TestStaleRowEstimateIsCorrected(t *testing.T) {
	ids := make([]int64, 5000)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	r, pg, _ := newTestReader(t, ids...)
	r.primary = staleEstimate{pg}
	r.cfg.BloomHeadroom = 1
	r.Subscribed()
	require.NoError(t, r.Rebuild(t.Context()))
	st, _ := r.Status()
	require.GreaterOrEqual(t, st.FilterCapacity, int64(5000), "sized for what the scan found, not the stale estimate")
	require.InDelta(t, 0.01, st.FalsePositive, 0.003)
}
