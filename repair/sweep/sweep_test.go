package sweep_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
	"github.com/triad-dev/triad/repair/sweep"
)

// TestSweepFindsExactlyThePlantedDrift: a sweep over the planted set, in
// record mode and in digest mode, finds every drifted (key, store) and
// nothing else, repairs it, and a second sweep finds nothing.
func TestSweepFindsExactlyThePlantedDrift(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{sweep.ModeRecords, sweep.ModeDigest} {
		t.Run(mode, func(t *testing.T) { testSweepFindsPlanted(t, mode, repairtest.New(t)) })
	}
}

func testSweepFindsPlanted(t *testing.T, mode string, s *repairtest.Stores) {
	cases := repairtest.PlantAll(t, s)
	// Many consistent profiles around them, so there are several segments.
	ctx := t.Context()
	s.Consistent(t, 100, 1099, "ok")
	require.NoError(t, s.ES.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	reg := prometheus.NewRegistry()
	c.Metrics = repair.NewMetrics(reg)
	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())))
	sw.Metrics = sweep.NewMetrics(reg)

	// Every planted drift. (Profile 5's Redis hash had a field changed
	// behind the writer with its stored digest kept: the sweep recomputes
	// the digest from the hash's content, so the label does not hide it.)
	var want []string
	for id, w := range cases {
		if w.Redis.Drift() {
			want = append(want, fmt.Sprintf("%d/redis/%s", id, w.Redis))
		}
		if w.ES.Drift() {
			want = append(want, fmt.Sprintf("%d/elasticsearch/%s", id, w.ES))
		}
	}
	sort.Strings(want)

	rep, err := sw.Sweep(ctx, sweep.Options{Entity: "profile", Mode: mode, SegmentSize: 200, Recheck: 100 * time.Millisecond,
		Repair: true, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	sort.Strings(got)
	require.Equal(t, want, got, "no misses, no false positives")
	require.GreaterOrEqual(t, rep.Segments, 5)
	require.Equal(t, mode, rep.Mode)
	require.Equal(t, 1000+6, rep.Records, "every live Postgres row: 1000, and 6 planted ones (6 and 9 have none; 7 and 10 are tombstones)")
	if mode == sweep.ModeDigest {
		// The planted keys sit in the first segment; the 1000 consistent
		// rows fill five clean ones the index sums alone vouch for.
		require.Equal(t, 1, rep.Dirty, "only the segment with the planted drift is read by record")
	}
	require.NotNil(t, rep.Repair)
	require.Equal(t, len(want), rep.Repair.Repaired, "%+v", rep.Repair)
	// The metrics say the same.
	require.Equal(t, float64(len(want)), testutil.ToFloat64(sumOf(t, reg, "triad_repair_drift_total")))
	require.Equal(t, float64(len(want)), testutil.ToFloat64(sumOf(t, reg, "triad_repair_repairs_total", "outcome", "repaired")))
	require.EqualValues(t, 1006, testutil.ToFloat64(sumOf(t, reg, "triad_repair_sweep_records_total")))
	drifted := map[string]bool{}
	for _, f := range rep.Findings {
		drifted[f.Key] = true
	}
	require.InDelta(t, 1-float64(len(drifted))/1006, testutil.ToFloat64(sumOf(t, reg, "triad_repair_consistency_ratio")), 1e-9)
	t.Logf("measured: %s sweep of %d records in %d segments (%d dirty) took %s (%d suspects)", mode, rep.Records, rep.Segments, rep.Dirty, rep.Took, rep.Suspects)

	require.NoError(t, s.ES.Refresh(ctx))
	rep, err = sw.Sweep(ctx, sweep.Options{Entity: "profile", Mode: mode, SegmentSize: 200, Recheck: 100 * time.Millisecond, Repair: true})
	require.NoError(t, err)
	require.Empty(t, rep.Findings, "a second sweep finds nothing")
	require.Nil(t, rep.Repair, "and repairs nothing")
}

// TestSweepDuringLiveIngest: with the pipeline writing newer versions of
// the swept records while the sweep runs, the sweep reports only the
// planted drift (records in flight are rechecked, not reported) and its
// repairs never replace a newer write.
func TestSweepDuringLiveIngest(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 3000, "v1")
	// The planted drift: 5000's index copy is missing (never written),
	// and other writers' kinds through each store's own API, on keys the
	// live writer leaves alone (2-5: each must be found) and on keys it
	// rewrites meanwhile (8-29: found, or overwritten by the newer write;
	// never a false finding, never a newer write undone).
	drifted := repairtest.Profile(t, 5000, 1, "x")
	s.Write(t, drifted, "postgres", "redis")
	rdb := s.Redis
	planted := map[string]bool{"5000/elasticsearch": true}
	for _, id := range []int64{2, 8} {
		require.NoError(t, rdb.HSet(ctx, s.RS.Key(id), "tags", `["by-hset"]`).Err())
		planted[fmt.Sprint(id, "/redis")] = true
	}
	for _, id := range []int64{3, 15} {
		require.NoError(t, rdb.Del(ctx, s.RS.Key(id)).Err())
		require.NoError(t, rdb.Set(ctx, s.RS.Key(id), "not a hash", 0).Err())
		planted[fmt.Sprint(id, "/redis")] = true
	}
	for _, id := range []int64{4, 22} {
		s.ESUpdate(t, s.ES.Alias(), fmt.Sprint(id), `{"tags": ["by-update"]}`)
		planted[fmt.Sprint(id, "/elasticsearch")] = true
	}
	for _, id := range []int64{5, 29} {
		res, err := s.NS.ES().Delete(s.ES.Index(1), fmt.Sprint(id), s.NS.ES().Delete.WithRefresh("true"))
		require.NoError(t, err)
		res.Body.Close()
		planted[fmt.Sprint(id, "/elasticsearch")] = true
	}
	require.NoError(t, s.ES.Refresh(ctx))

	cfg := ingest.DefaultConfig()
	// Derived writes lag Postgres by up to 300ms, so the first pass sees
	// copies behind their rows.
	cfg.Shards, cfg.BatchDelay, cfg.DerivedBatchDelay, cfg.DerivedBatchSize = 4, 5*time.Millisecond, 300*time.Millisecond, 5000
	pl, err := ingest.New(cfg, ingest.Deps{Primary: s.PG, Derived: []ingest.Derived{s.RS, s.ES}, Catchup: s.PG})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pl.Close() })
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for v := int64(2); ; v++ {
			for id := int64(1); id <= 3000; id += 7 {
				select {
				case <-stop:
					done <- n
					return
				default:
				}
				if pl.Submit(ctx, repairtest.Profile(t, id, v, fmt.Sprint("live-", v)), nil) == nil {
					n++
				}
				time.Sleep(200 * time.Microsecond) // a few thousand writes a second
			}
		}
	}()
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())))
	time.Sleep(500 * time.Millisecond) // the writer is going
	rep, err := sw.Sweep(ctx, sweep.Options{Entity: "profile", SegmentSize: 250, Recheck: 2 * time.Second, Repair: true})
	close(stop)
	writes := <-done
	require.NoError(t, err)
	t.Logf("measured: %d live writes during the sweep (%s); %d suspects in the first pass, %d in flight at the recheck, %d findings",
		writes, rep.Took.Round(time.Millisecond), rep.Suspects, rep.InFlight, len(rep.Findings))
	require.Greater(t, rep.Suspects, 100, "the first pass saw copies behind their rows")
	found := map[string]bool{}
	for _, f := range rep.Findings {
		k := f.Key + "/" + f.Store
		require.True(t, planted[k], "a false finding: %+v", f)
		found[k] = true
	}
	for _, k := range []string{"5000/elasticsearch", "2/redis", "3/redis", "4/elasticsearch", "5/elasticsearch"} {
		require.True(t, found[k], "planted drift %s not found: %+v", k, rep.Findings)
	}
	require.NotNil(t, rep.Repair)
	t.Logf("repairs: %+v", *rep.Repair)
	require.Zero(t, rep.Repair.Failed)
	require.GreaterOrEqual(t, rep.Repair.Repaired, 5)

	// No repair replaced a newer write: once the pipeline drains, every
	// store holds what Postgres holds.
	require.NoError(t, pl.Close())
	require.NoError(t, s.ES.Refresh(ctx))
	keys := make([]string, 0, 3001)
	for id := 1; id <= 3000; id += 7 {
		keys = append(keys, fmt.Sprint(id))
	}
	keys = append(keys, "2", "3", "4", "5", "5000")
	res, err := c.Check(ctx, "profile", keys)
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Consistent, "%+v", r)
	}
}

// TestPersistedSweepAcrossWorkers: a persisted sweep is planned into
// ranges; paused, no range moves; resumed, worker A claims ranges under
// its etcd lease; A is stopped mid-range as if killed (its lease is not
// revoked: the claim lapses after the TTL) and worker B resumes that range
// from its cursor and finishes the sweep: every row compared exactly once,
// the findings exactly the planted set. Cancel and bad options too.
func TestPersistedSweepAcrossWorkers(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	cases := repairtest.PlantAll(t, s)
	ctx := t.Context()
	s.Consistent(t, 100, 2099, "ok")
	require.NoError(t, s.ES.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	sw := sweep.New(c, nil)
	st := repairpg.NewSweeps(s.NS.Pool())
	claimsA := leader.NewClaims(s.NS.Etcd(), s.NS.EtcdPrefix, "a", time.Second)
	claimsB := leader.NewClaims(s.NS.Etcd(), s.NS.EtcdPrefix, "b", time.Second)
	t.Cleanup(func() { claimsB.Close() })
	cfg := sweep.WorkerConfig{Owner: "a", Recheck: 100 * time.Millisecond, Poll: 50 * time.Millisecond, RangeSegments: 20}
	a := sweep.NewWorker(sw, st, claimsA, cfg, stacktest.Logger(t))
	cfg.Owner = "b"
	b := sweep.NewWorker(sw, st, claimsB, cfg, stacktest.Logger(t))

	_, err := a.Start(ctx, sweep.Record{Entity: "profile", Mode: "sideways", Trigger: repair.TriggerAPI, Actor: "test"})
	require.ErrorIs(t, err, sweep.ErrBadOption)
	_, err = a.Start(ctx, sweep.Record{Entity: "order", Trigger: repair.TriggerAPI, Actor: "test"})
	require.ErrorIs(t, err, repair.ErrUnknownEntity)
	// 2008 rows in segments of 25, ranges of 20 segments (500 rows, two
	// batches of segments each), at most 1000 records/s per worker: a
	// batch takes about 0.4 s.
	rec, err := a.Start(ctx, sweep.Record{Entity: "profile", Mode: sweep.ModeDigest, SegmentSize: 25, Rate: 1000,
		Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	_, err = st.SetState(ctx, rec.ID, sweep.Paused)
	require.NoError(t, err)
	_, err = st.SetState(ctx, rec.ID, sweep.Paused)
	require.ErrorIs(t, err, sweep.ErrState, "pausing a paused sweep")

	actx, kill := context.WithCancel(ctx)
	aDone := make(chan struct{})
	go func() { a.Run(actx); close(aDone) }()
	time.Sleep(700 * time.Millisecond)
	got, err := st.GetSweep(ctx, rec.ID)
	require.NoError(t, err)
	require.Zero(t, got.Segments, "nothing runs while paused")
	require.Equal(t, 5, got.Ranges, "planned: 2008 rows in ranges of 500: four, and the open one above with the last 8")
	resumed := time.Now()
	_, err = st.SetState(ctx, rec.ID, sweep.Running)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, rec.ID)
		return err == nil && got.Segments >= 3
	}, 20*time.Second, 5*time.Millisecond)
	t.Logf("measured: the resumed sweep saved its third segment %s after the resume", time.Since(resumed).Round(time.Millisecond))
	// Pause takes effect within 2 s: no segment is saved after that.
	paused := time.Now()
	_, err = st.SetState(ctx, rec.ID, sweep.Paused)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		g1, _ := st.GetSweep(ctx, rec.ID)
		time.Sleep(600 * time.Millisecond)
		g2, _ := st.GetSweep(ctx, rec.ID)
		return g1.Segments == g2.Segments
	}, 20*time.Second, 10*time.Millisecond)
	t.Logf("measured: paused (no progress for 600 ms) %s after the pause", time.Since(paused).Round(time.Millisecond))
	_, err = st.SetState(ctx, rec.ID, sweep.Running)
	require.NoError(t, err)
	a.Wake()
	// A dies mid-range (one batch of a range saved, the next not): its
	// claim stays in etcd until the lease lapses.
	var left sweep.Range
	require.Eventually(t, func() bool {
		rs, err := st.Ranges(ctx, rec.ID)
		if err != nil {
			return false
		}
		for _, r := range rs {
			if r.State == sweep.RangeRunning && r.Segments > 0 {
				left = r
				kill()
				return true
			}
		}
		return false
	}, 30*time.Second, 2*time.Millisecond)
	<-aDone
	require.Equal(t, "a", left.Owner)
	require.Greater(t, left.Cursor, left.Lo, "A saved progress inside the range")
	t.Logf("A stopped with range (%d, %d] at cursor %d (%d segments saved)", left.Lo, left.Hi, left.Cursor, left.Segments)
	killed := time.Now()
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	go b.Run(bctx)
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, rec.ID)
		return err == nil && got.FinishedAt != nil
	}, 60*time.Second, 20*time.Millisecond)
	t.Logf("measured: B finished the sweep %s after A stopped", time.Since(killed).Round(time.Millisecond))
	end, err := st.GetSweep(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, sweep.Done, end.State, end.Error)
	require.EqualValues(t, 2000+6, end.Records, "every live row compared exactly once across both workers (8 planted, 2 of them tombstones)")
	require.Equal(t, end.Ranges, end.RangesDone)
	ranges, err := st.Ranges(ctx, rec.ID)
	require.NoError(t, err)
	for _, r := range ranges {
		require.Equal(t, sweep.RangeDone, r.State)
		if r.Lo == left.Lo {
			require.Equal(t, "b", r.Owner, "B took over A's range")
			require.Equal(t, 2, r.Attempts)
			require.Equal(t, 20, r.Segments, "B resumed at A's cursor: no segment compared twice")
		} else {
			require.Equal(t, 1, r.Attempts, "range %d ran once", r.Lo)
		}
	}

	var want, found []string
	for id, w := range cases {
		if w.Redis.Drift() {
			want = append(want, fmt.Sprintf("%d/redis/%s", id, w.Redis))
		}
		if w.ES.Drift() {
			want = append(want, fmt.Sprintf("%d/elasticsearch/%s", id, w.ES))
		}
	}
	fs, err := st.Findings(ctx, rec.ID, 0)
	require.NoError(t, err)
	for _, f := range fs {
		found = append(found, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	sort.Strings(want)
	sort.Strings(found)
	require.Equal(t, want, found)

	// Cancel: a finished sweep cannot be cancelled; a running one can, and
	// no worker touches it after.
	_, err = st.SetState(ctx, rec.ID, sweep.Cancelled)
	require.ErrorIs(t, err, sweep.ErrState)
	stopB()
	rec2, err := b.Start(ctx, sweep.Record{Entity: "profile", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	end, err = st.SetState(ctx, rec2.ID, sweep.Cancelled)
	require.NoError(t, err)
	require.Equal(t, sweep.Cancelled, end.State)
	require.NotNil(t, end.FinishedAt)
}

// sumOf sums a metric's samples (optionally those with label = value) into
// a gauge testutil can read.
func sumOf(t *testing.T, reg *prometheus.Registry, name string, label ...string) prometheus.Gauge {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sum"})
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(label) == 2 {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == label[0] && lp.GetValue() != label[1] {
						continue metrics
					}
				}
			}
			switch {
			case m.GetCounter() != nil:
				g.Add(m.GetCounter().GetValue())
			case m.GetGauge() != nil:
				g.Add(m.GetGauge().GetValue())
			}
		}
	}
	return g
}

// TestDigestSweepDenseCache: where Postgres holds every key of a segment,
// the digest sweep sums the Redis cache over those keys without reading
// Postgres's records; drift there is still found exactly, and an expired
// (absent) cache key is not drift.
func TestDigestSweepDenseCache(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 1000, "ok")
	// 250: a stale cache copy; 650: a cache copy ahead of Postgres; 450:
	// expired from the cache.
	s.Write(t, repairtest.Profile(t, 250, 2, "new"), "postgres", "elasticsearch")
	s.Write(t, repairtest.Profile(t, 650, 9, "ahead"), "redis")
	require.NoError(t, s.Redis.Del(ctx, s.RS.Key(450)).Err())
	require.NoError(t, s.ES.Refresh(ctx))

	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	rep, err := sweep.New(c, nil).Sweep(ctx, sweep.Options{Entity: "profile", Mode: sweep.ModeDigest, SegmentSize: 200, Recheck: 50 * time.Millisecond})
	require.NoError(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	sort.Strings(got)
	require.Equal(t, []string{"250/redis/stale", "650/redis/ahead"}, got)
	require.Equal(t, 1000, rep.Records)
	require.Equal(t, 2, rep.Dirty, "the segment with only an expired key is not dirty")
}
