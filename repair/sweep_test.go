package repair_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
)

// TestSweepFindsExactlyThePlantedDrift: a record-mode sweep over the
// planted set finds every drifted (key, store) and nothing else, repairs
// it, and a second sweep finds nothing.
func TestSweepFindsExactlyThePlantedDrift(t *testing.T) {
	s := newStores(t)
	cases := plantAll(t, s)
	// Many consistent profiles around them, so there are several segments.
	ctx := t.Context()
	s.consistent(t, 100, 1099, "ok")
	require.NoError(t, s.es.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.pg, s.rs, s.es))
	reg := prometheus.NewRegistry()
	c.Metrics = repair.NewMetrics(reg)
	sw := repair.NewSweeper(c, repair.NewRepairer(c, repairpg.NewLog(s.ns.Pool())))

	// Every planted drift. (Profile 5's Redis hash had a field changed
	// behind the writer with its stored digest kept: the head pass, which
	// trusts stored digests, does not flag it; it is found because the
	// same key's index copy differs, and the recheck reads whole records.
	// A Redis-only change like that is caught by checks by ID only.)
	var want []string
	for id, w := range cases {
		if w.redis.Drift() {
			want = append(want, fmt.Sprintf("%d/redis/%s", id, w.redis))
		}
		if w.es.Drift() {
			want = append(want, fmt.Sprintf("%d/elasticsearch/%s", id, w.es))
		}
	}
	sort.Strings(want)

	rep, err := sw.Sweep(ctx, repair.SweepOptions{Entity: "profile", SegmentSize: 200, Recheck: 100 * time.Millisecond,
		Repair: true, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	var got []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	sort.Strings(got)
	require.Equal(t, want, got, "no misses, no false positives")
	require.GreaterOrEqual(t, rep.Segments, 5)
	require.Equal(t, 1000+8, rep.Records, "every Postgres row: 1000, and 8 planted ones (6 and 9 have none; 7 and 10 are tombstones)")
	require.NotNil(t, rep.Repair)
	require.Equal(t, len(want), rep.Repair.Repaired, "%+v", rep.Repair)
	// The metrics say the same.
	require.Equal(t, float64(len(want)), testutil.ToFloat64(sumOf(t, reg, "triad_repair_drift_total")))
	require.Equal(t, float64(len(want)), testutil.ToFloat64(sumOf(t, reg, "triad_repair_repairs_total", "outcome", "repaired")))
	require.EqualValues(t, 1008, testutil.ToFloat64(sumOf(t, reg, "triad_repair_sweep_records_total")))
	drifted := map[string]bool{}
	for _, f := range rep.Findings {
		drifted[f.Key] = true
	}
	require.InDelta(t, 1-float64(len(drifted))/1008, testutil.ToFloat64(sumOf(t, reg, "triad_repair_consistency_ratio")), 1e-9)
	t.Logf("measured: sweep of %d records in %d segments took %s (%d suspects)", rep.Records, rep.Segments, rep.Took, rep.Suspects)

	require.NoError(t, s.es.Refresh(ctx))
	rep, err = sw.Sweep(ctx, repair.SweepOptions{Entity: "profile", SegmentSize: 200, Recheck: 100 * time.Millisecond, Repair: true})
	require.NoError(t, err)
	require.Empty(t, rep.Findings, "a second sweep finds nothing")
	require.Nil(t, rep.Repair, "and repairs nothing")
}

// TestSweepDuringLiveIngest: with the pipeline writing newer versions of
// the swept records while the sweep runs, the sweep reports only the
// planted drift (records in flight are rechecked, not reported) and its
// repairs never replace a newer write.
func TestSweepDuringLiveIngest(t *testing.T) {
	s := newStores(t)
	ctx := t.Context()
	s.consistent(t, 1, 3000, "v1")
	// The planted drift: 5000's index copy is missing (never written).
	drifted := profile(t, 5000, 1, "x")
	s.write(t, drifted, "postgres", "redis")
	require.NoError(t, s.es.Refresh(ctx))

	cfg := ingest.DefaultConfig()
	// Derived writes lag Postgres by up to 300ms, so the first pass sees
	// copies behind their rows.
	cfg.Shards, cfg.BatchDelay, cfg.DerivedBatchDelay, cfg.DerivedBatchSize = 4, 5*time.Millisecond, 300*time.Millisecond, 5000
	pl, err := ingest.New(cfg, ingest.Deps{Primary: s.pg, Derived: []ingest.Derived{s.rs, s.es}, Catchup: s.pg})
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
				if pl.Submit(ctx, profile(t, id, v, fmt.Sprint("live-", v)), nil) == nil {
					n++
				}
				time.Sleep(200 * time.Microsecond) // a few thousand writes a second
			}
		}
	}()
	c := repair.NewChecker(repair.NewProfile(s.pg, s.rs, s.es))
	sw := repair.NewSweeper(c, repair.NewRepairer(c, repairpg.NewLog(s.ns.Pool())))
	time.Sleep(500 * time.Millisecond) // the writer is going
	rep, err := sw.Sweep(ctx, repair.SweepOptions{Entity: "profile", SegmentSize: 250, Recheck: 2 * time.Second, Repair: true})
	close(stop)
	writes := <-done
	require.NoError(t, err)
	t.Logf("measured: %d live writes during the sweep (%s); %d suspects in the first pass, %d in flight at the recheck, %d findings",
		writes, rep.Took.Round(time.Millisecond), rep.Suspects, rep.InFlight, len(rep.Findings))
	require.Greater(t, rep.Suspects, 100, "the first pass saw copies behind their rows")
	require.Equal(t, []repair.Finding{{Key: "5000", Store: "elasticsearch", Class: repair.ClassMissing}}, rep.Findings, "only the planted drift")
	require.Equal(t, 1, rep.Repair.Repaired)

	// No repair replaced a newer write: once the pipeline drains, every
	// store holds what Postgres holds.
	require.NoError(t, pl.Close())
	require.NoError(t, s.es.Refresh(ctx))
	keys := make([]string, 0, 3001)
	for id := 1; id <= 3000; id += 7 {
		keys = append(keys, fmt.Sprint(id))
	}
	keys = append(keys, "5000")
	res, err := c.Check(ctx, "profile", keys)
	require.NoError(t, err)
	for _, r := range res {
		require.True(t, r.Consistent, "%+v", r)
	}
}

// TestPersistedSweepPausesResumesAndIsTakenOver: a persisted sweep pauses
// and resumes on request; its runner is stopped mid-sweep (as if killed);
// another owner takes it over from its cursor and finds exactly the
// planted drift, with no segment done twice.
func TestPersistedSweepPausesResumesAndIsTakenOver(t *testing.T) {
	s := newStores(t)
	cases := plantAll(t, s)
	ctx := t.Context()
	s.consistent(t, 100, 2099, "ok")
	require.NoError(t, s.es.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.pg, s.rs, s.es))
	sw := repair.NewSweeper(c, nil)
	st := repairpg.NewSweeps(s.ns.Pool())

	rec := repair.SweepRecord{Entity: "profile", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test", Owner: "a"}
	require.NoError(t, st.CreateSweep(ctx, &rec))
	// Paused before it runs: the runner waits.
	_, err := st.SetState(ctx, rec.ID, repair.SweepPaused)
	require.NoError(t, err)
	_, err = st.SetState(ctx, rec.ID, repair.SweepPaused)
	require.ErrorIs(t, err, repair.ErrSweepState, "pausing a paused sweep")

	// Runner A: killed (its context cancelled) after a few segments.
	actx, kill := context.WithCancel(ctx)
	aDone := make(chan error, 1)
	go func() { _, err := sw.Run(actx, st, rec, "a", 100*time.Millisecond); aDone <- err }()
	time.Sleep(700 * time.Millisecond)
	got, err := st.GetSweep(ctx, rec.ID)
	require.NoError(t, err)
	require.Zero(t, got.Segments, "nothing runs while paused")
	resumed := time.Now()
	_, err = st.SetState(ctx, rec.ID, repair.SweepRunning)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, rec.ID)
		return err == nil && got.Segments >= 3
	}, 20*time.Second, 5*time.Millisecond)
	t.Logf("measured: resumed sweep saved its third segment %s after the resume", time.Since(resumed).Round(time.Millisecond))
	kill()
	require.ErrorIs(t, <-aDone, context.Canceled)
	mid, err := st.GetSweep(ctx, rec.ID)
	require.NoError(t, err)
	require.Equal(t, repair.SweepRunning, mid.State, "a killed runner leaves the sweep running, as saved")

	// Replica B takes it over once A's heartbeat is stale, and finishes.
	taken, err := st.TakeOver(ctx, "b", time.Hour)
	require.NoError(t, err)
	require.Empty(t, taken, "not while the heartbeat is fresh")
	time.Sleep(1100 * time.Millisecond)
	taken, err = st.TakeOver(ctx, "b", time.Second)
	require.NoError(t, err)
	require.Len(t, taken, 1)
	require.Equal(t, mid.Cursor, taken[0].Cursor, "resumes at the saved cursor")
	end, err := sw.Run(ctx, st, taken[0], "b", 100*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, repair.SweepDone, end.State)
	require.EqualValues(t, 2000+8, end.Records, "every row compared exactly once across both runners")

	var want, found []string
	for id, w := range cases {
		if w.redis.Drift() {
			want = append(want, fmt.Sprintf("%d/redis/%s", id, w.redis))
		}
		if w.es.Drift() {
			want = append(want, fmt.Sprintf("%d/elasticsearch/%s", id, w.es))
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

	// Cancel: a finished sweep cannot be cancelled; a running one can.
	_, err = st.SetState(ctx, rec.ID, repair.SweepCancelled)
	require.ErrorIs(t, err, repair.ErrSweepState)
	rec2 := repair.SweepRecord{Entity: "profile", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test", Owner: "a"}
	require.NoError(t, st.CreateSweep(ctx, &rec2))
	_, err = st.SetState(ctx, rec2.ID, repair.SweepCancelled)
	require.NoError(t, err)
	end, err = sw.Run(ctx, st, rec2, "a", 100*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, repair.SweepCancelled, end.State)
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

// consistent writes profiles first..last at version 1 into all three
// stores in one batch each.
func (s *stores) consistent(t *testing.T, first, last int64, tag string) {
	t.Helper()
	var bulk []*ingest.Profile
	for id := first; id <= last; id++ {
		bulk = append(bulk, profile(t, id, 1, tag))
	}
	ctx := t.Context()
	require.NoError(t, s.pg.Apply(ctx, bulk, make([]bool, len(bulk))))
	out := make([]ingest.WriteResult, len(bulk))
	require.NoError(t, s.rs.WriteAt(ctx, 1, bulk, out))
	require.NoError(t, s.es.WriteAt(ctx, 1, bulk, out))
}
