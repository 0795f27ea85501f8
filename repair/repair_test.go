package repair_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
)

// TestRepairFixesEveryPlantedDrift: a dry run plans exactly what a real run
// then does; the real run leaves every key consistent; a second run writes
// nothing (every entry a no-op); a budget stops writes; the log has it all.
func TestRepairFixesEveryPlantedDrift(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	cases := repairtest.PlantAll(t, s)
	ctx := t.Context()
	require.NoError(t, s.ES.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	log := repairpg.NewLog(s.NS.Pool())
	r := repair.NewRepairer(c, log)
	var keys []string
	drift := 0
	for id, w := range cases {
		keys = append(keys, fmt.Sprint(id))
		for _, cl := range []repair.Class{w.Redis, w.ES} {
			if cl.Drift() {
				drift++
			}
		}
	}
	req := repair.Request{Entity: "profile", Keys: keys, Trigger: repair.TriggerCLI, Actor: "test"}

	// Dry run: a plan, no writes.
	dry := req
	dry.DryRun = true
	run, plan, err := r.Repair(ctx, dry)
	require.NoError(t, err)
	require.Equal(t, drift, run.Planned, "one planned entry per drifted store: %+v", plan)
	before, err := c.Check(ctx, "profile", keys)
	require.NoError(t, err)
	for _, res := range before {
		var id int64
		fmt.Sscan(res.Key, &id)
		require.Equal(t, cases[id].Redis, res.Stores["redis"].Class, "a dry run changes nothing (%d)", id)
	}

	// Budget: one write, the rest skipped.
	one := req
	one.Budget = 1
	run, _, err = r.Repair(ctx, one)
	require.NoError(t, err)
	require.Equal(t, 1, run.Repaired)
	require.Equal(t, drift-1, run.Skipped)

	// The real run fixes the rest.
	run, entries, err := r.Repair(ctx, req)
	require.NoError(t, err)
	require.Equal(t, drift-1, run.Repaired, "%+v", entries)
	require.Zero(t, run.Failed+run.Conflicts+run.Skipped, "%+v", entries)
	var planned, done []string
	for _, e := range plan {
		if e.Outcome == repair.OutcomePlanned {
			planned = append(planned, e.Key+"/"+e.Store+"/"+e.Action)
		}
	}
	for _, e := range entries {
		if e.Outcome == repair.OutcomeRepaired {
			done = append(done, e.Key+"/"+e.Store+"/"+e.Action)
		}
	}
	require.Subset(t, planned, done, "the real run did only what the dry run planned")
	require.NoError(t, s.ES.Refresh(ctx))
	after, err := c.Check(ctx, "profile", keys)
	require.NoError(t, err)
	for _, res := range after {
		require.True(t, res.Consistent, "after repair: %+v", res)
	}

	// Again: nothing to write, every entry a no-op.
	run, entries, err = r.Repair(ctx, req)
	require.NoError(t, err)
	require.Zero(t, run.Repaired+run.Planned+run.Failed+run.Conflicts+run.Skipped, "%+v", entries)
	require.Equal(t, 2*len(keys), run.Noop)

	// The log: the runs and their entries, filterable.
	runs, err := log.Runs(ctx, 10, 0)
	require.NoError(t, err)
	require.Len(t, runs, 4)
	repaired, _, err := log.List(ctx, repair.LogFilter{Entity: "profile", Outcome: repair.OutcomeRepaired})
	require.NoError(t, err)
	require.Len(t, repaired, drift)
	for _, e := range repaired {
		require.NotEqual(t, e.Before, e.After, "before and after recorded: %+v", e)
	}
}

// TestGuardsNeverOverwriteANewerWrite: the store-level guards a repair
// writes through refuse when the record changed since it was read.
func TestGuardsNeverOverwriteANewerWrite(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Write(t, repairtest.Profile(t, 1, 5, "a"), "redis", "elasticsearch")
	// Someone writes version 6 after the repair read version 5.
	s.Write(t, repairtest.Profile(t, 1, 6, "newer"), "redis", "elasticsearch")
	old := repairtest.Profile(t, 1, 5, "a")

	// What the repair observed: the hash of version 5.
	observed := redisstore.Value{Type: "hash", Hash: map[string]string{"v": "5", "d": strconv.FormatInt(old.Digest, 10)}}
	ok, _, err := s.RS.CompareAndSet(ctx, 1, observed, old)
	require.NoError(t, err)
	require.False(t, ok, "redis: the hash is no longer what was observed")
	got, _, err := s.RS.Get(ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 6, got.Version)
	ok, _, err = s.RS.CompareAndSet(ctx, 2, observed, nil)
	require.NoError(t, err)
	require.False(t, ok, "deleting a key that is not there as observed")

	ok, err = s.ES.IndexVersioned(ctx, old, false)
	require.NoError(t, err)
	require.False(t, ok, "elasticsearch: an older version is refused")
	ok, err = s.ES.IndexVersioned(ctx, old, true)
	require.NoError(t, err)
	require.False(t, ok, "external_gte still refuses an older version")
	m, err := s.ES.GetMeta(ctx, 1)
	require.NoError(t, err)
	require.EqualValues(t, 6, m.Version)
	stale := m
	stale.SeqNo--
	ok, err = s.ES.DeleteIf(ctx, 1, stale)
	require.NoError(t, err)
	require.False(t, ok, "a delete of another sequence number is refused")
	ok, err = s.ES.DeleteIf(ctx, 1, m)
	require.NoError(t, err)
	require.True(t, ok)
}
