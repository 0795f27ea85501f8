package ingest

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// memPrimary is an in-memory primary with the same version guard as the
// Postgres store, for unit tests of the pipeline's logic only; the real
// store is tested in pipeline_test.go.
type memPrimary struct {
	mu      sync.Mutex
	rows    map[int64]*Profile
	applied []int64 // user IDs in the order batches applied them
	block   chan struct{}
	fail    atomic.Int32 // fail this many Apply calls
}

func newMemPrimary() *memPrimary { return &memPrimary{rows: map[int64]*Profile{}} }

func (m *memPrimary) Apply(ctx context.Context, batch []*Profile, held []bool, owed []string) (int64, error) {
	if m.block != nil {
		<-m.block
	}
	if m.fail.Load() > 0 {
		m.fail.Add(-1)
		return 0, errors.New("connection refused")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[int64]bool{}
	for i, p := range batch {
		if seen[p.UserID] {
			return 0, errors.New("ON CONFLICT DO UPDATE command cannot affect row a second time")
		}
		seen[p.UserID] = true
		cur := m.rows[p.UserID]
		if cur == nil || cur.Version < p.Version {
			m.rows[p.UserID] = p
			m.applied = append(m.applied, p.UserID)
		}
		held[i] = m.rows[p.UserID] == p || m.rows[p.UserID].Equal(p)
	}
	return 0, nil
}

func (m *memPrimary) Get(ctx context.Context, ids []int64) ([]*Profile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Profile
	for _, id := range ids {
		if p := m.rows[id]; p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// memDerived records writes and can be switched off.
type memDerived struct {
	mu   sync.Mutex
	rows map[int64]int64 // user → version
	down atomic.Bool
}

func (m *memDerived) Name() string { return "mem" }

func (m *memDerived) Write(ctx context.Context, batch []*Profile, out []WriteResult) error {
	if m.down.Load() {
		return errors.New("dial tcp: connection refused")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, p := range batch {
		if m.rows[p.UserID] > p.Version {
			out[i].Stale = true
			continue
		}
		m.rows[p.UserID] = p.Version
	}
	return nil
}

type memCatchup struct {
	mu  sync.Mutex
	log map[int64]int64
}

func (m *memCatchup) Record(ctx context.Context, store string, batch []*Profile, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range batch {
		m.log[p.UserID] = max(m.log[p.UserID], p.Version)
	}
	return nil
}

func (m *memCatchup) Pending(ctx context.Context, store string, after int64, limit int) ([]Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Pending
	for id, v := range m.log {
		if id > after {
			out = append(out, Pending{UserID: id, Version: v})
		}
	}
	slices.SortFunc(out, func(a, b Pending) int { return cmp.Compare(a.UserID, b.UserID) })
	return out[:min(limit, len(out))], nil
}

func (m *memCatchup) Done(ctx context.Context, store string, written []*Profile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range written {
		if m.log[p.UserID] <= p.Version {
			delete(m.log, p.UserID)
		}
	}
	return nil
}

func (m *memCatchup) Settle(context.Context, []int64) error { return nil }

func (m *memCatchup) Reject(context.Context, string, []Rejection) error { return nil }

func (m *memCatchup) OweAll(context.Context, string, string) (int64, error) { return 0, nil }

func (m *memCatchup) Recover(context.Context, time.Duration, int) (int64, error) { return 0, nil }

func (m *memCatchup) Count(ctx context.Context, store string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.log)), nil
}

func unitConfig() Config {
	c := DefaultConfig()
	c.Shards, c.QueueSize, c.BatchDelay, c.DerivedBatchDelay = 4, 8, 5*time.Millisecond, 5*time.Millisecond
	c.RetryBackoff, c.DerivedAttempts, c.PrimaryRetryFor = time.Millisecond, 2, 200*time.Millisecond
	return c
}

func prof(id, version int64) *Profile {
	p := &Profile{UserID: id, Version: version}
	p.Digest, _ = p.ComputeDigest(nil)
	return p
}

func TestShardOfSpreadsAndIsStable(t *testing.T) {
	t.Parallel()
	counts := make([]int, 64)
	for id := int64(1); id <= 64000; id++ {
		s := ShardOf(id, 64)
		require.Equal(t, s, ShardOf(id, 64))
		counts[s]++
	}
	for s, c := range counts {
		require.InDelta(t, 1000, c, 150, "shard %d gets its share of consecutive IDs", s)
	}
}

func TestSameUserInOneBatchKeepsTheNewest(t *testing.T) {
	t.Parallel()
	mp := newMemPrimary()
	cfg := unitConfig()
	cfg.BatchSize, cfg.BatchDelay = 5, time.Minute // the five writes form one batch
	pl, err := New(cfg, Deps{Primary: mp})
	require.NoError(t, err)
	outcomes := map[int64][]Outcome{}
	var mu sync.Mutex
	for _, v := range []int64{3, 7, 5, 7, 1} {
		require.NoError(t, pl.Submit(t.Context(), prof(9, v), func(o Outcome, err error) {
			require.NoError(t, err)
			mu.Lock()
			outcomes[v] = append(outcomes[v], o)
			mu.Unlock()
		}))
	}
	require.NoError(t, pl.Close())
	require.EqualValues(t, 7, mp.rows[9].Version)
	require.ElementsMatch(t, []Outcome{Applied, Superseded}, outcomes[7], "one copy of version 7 is written, the duplicate is superseded by it")
	for _, v := range []int64{1, 3, 5} {
		require.Equal(t, []Outcome{Superseded}, outcomes[v], "version %d", v)
	}
}

func TestBackPressureReachesTheSubmitter(t *testing.T) {
	t.Parallel()
	mp := newMemPrimary()
	mp.block = make(chan struct{})
	cfg := unitConfig()
	cfg.Shards, cfg.QueueSize, cfg.BatchSize = 1, 4, 2
	pl, err := New(cfg, Deps{Primary: mp})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	submitted := 0
	for id := int64(1); ; id++ {
		if err := pl.Submit(ctx, prof(id, 1), nil); err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			break
		}
		submitted++
		require.Less(t, submitted, 100, "Submit must block once the queue and batch are full")
	}
	t.Logf("submit blocked after %d profiles (queue 4, batch 2)", submitted)
	close(mp.block)
	require.NoError(t, pl.Close())
	require.Len(t, mp.rows, submitted)
}

func TestPrimaryDownStopsTheRunWithTheError(t *testing.T) {
	t.Parallel()
	mp := newMemPrimary()
	mp.fail.Store(1 << 20)
	pl, err := New(unitConfig(), Deps{Primary: mp})
	require.NoError(t, err)
	var failed atomic.Int32
	require.NoError(t, pl.Submit(t.Context(), prof(1, 1), func(o Outcome, err error) {
		if o == Failed && err != nil {
			failed.Add(1)
		}
	}))
	require.ErrorContains(t, pl.Close(), "connection refused")
	require.EqualValues(t, 1, failed.Load())
	require.ErrorContains(t, pl.Submit(t.Context(), prof(2, 1), nil), "closed")
}

func TestDerivedOutageGoesToCatchupAndReplays(t *testing.T) {
	t.Parallel()
	mp, md := newMemPrimary(), &memDerived{rows: map[int64]int64{}}
	cu := &memCatchup{log: map[int64]int64{}}
	md.down.Store(true)
	pl, err := New(unitConfig(), Deps{Primary: mp, Derived: []Derived{md}, Catchup: cu})
	require.NoError(t, err)
	for id := int64(1); id <= 50; id++ {
		require.NoError(t, pl.Submit(t.Context(), prof(id, 2), nil))
	}
	require.NoError(t, pl.Close())
	n, _ := cu.Count(t.Context(), "mem")
	require.EqualValues(t, 50, n, "every failed write is recorded")
	require.True(t, pl.derived[0].down.Load(), "the store is marked down")

	// Still down: the replay fails and keeps the log.
	_, err = pl.ReplayCatchup(t.Context())
	require.Error(t, err)
	// Back: the replay re-reads the primary and drains the log.
	md.down.Store(false)
	replayed, err := pl.ReplayCatchup(t.Context())
	require.NoError(t, err)
	require.Equal(t, 50, replayed)
	n, _ = cu.Count(t.Context(), "mem")
	require.Zero(t, n)
	require.Len(t, md.rows, 50)
	require.False(t, pl.derived[0].down.Load())
}
