package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/postgres"
)

func TestRepairLog(t *testing.T) {
	ns := stacktest.New(t)
	ns.Migrate(t)
	ctx := t.Context()
	l := postgres.NewLog(ns.Pool())

	run := &repair.Run{Trigger: repair.TriggerCLI, Actor: "ops", Entity: "profile"}
	require.NoError(t, l.StartRun(ctx, run))
	require.NotZero(t, run.ID)
	entry := func(key string, store string, outcome string) repair.Entry {
		return repair.Entry{RunID: run.ID, Entity: "profile", Key: key, Store: store, Class: repair.ClassStale, Action: "write",
			Priority: "high", Before: &repair.State{Version: 1, Digest: 11}, After: &repair.State{Version: 2, Digest: 22}, Outcome: outcome}
	}
	var batch []repair.Entry
	for i := 1; i <= 25; i++ {
		batch = append(batch, entry(fmt.Sprint(i), "redis", repair.OutcomeRepaired))
	}
	batch = append(batch, entry("7", "elasticsearch", repair.OutcomeFailed))
	batch[len(batch)-1].Error = "elasticsearch item status 500"
	require.NoError(t, l.Record(ctx, batch))
	for _, e := range batch {
		run.Count(e.Outcome)
	}
	require.NoError(t, l.FinishRun(ctx, run))

	// The same repair again (another run): one entry, attempts 2.
	again := &repair.Run{Trigger: repair.TriggerAPI, Actor: "ops", Entity: "profile"}
	require.NoError(t, l.StartRun(ctx, again))
	e := entry("3", "redis", repair.OutcomeNoop)
	e.RunID = again.ID
	require.NoError(t, l.Record(ctx, []repair.Entry{e}))
	got, _, err := l.List(ctx, repair.LogFilter{Key: "3"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, 2, got[0].Attempts)
	require.Equal(t, repair.OutcomeNoop, got[0].Outcome)
	require.Equal(t, again.ID, got[0].RunID)
	require.Equal(t, &repair.State{Version: 1, Digest: 11}, got[0].Before)

	// A dry run of the same repair is its own entry.
	dry := &repair.Run{Trigger: repair.TriggerCLI, Actor: "ops", Entity: "profile", DryRun: true}
	require.NoError(t, l.StartRun(ctx, dry))
	e = entry("3", "redis", repair.OutcomePlanned)
	e.RunID = dry.ID
	require.NoError(t, l.Record(ctx, []repair.Entry{e}))
	got, _, err = l.List(ctx, repair.LogFilter{Key: "3"})
	require.NoError(t, err)
	require.Len(t, got, 2)

	// Filters and keyset pages.
	var all []repair.Entry
	var after int64
	for {
		page, next, err := l.List(ctx, repair.LogFilter{Store: "redis", Outcome: repair.OutcomeRepaired, Limit: 10, After: after})
		require.NoError(t, err)
		all = append(all, page...)
		if next == 0 {
			break
		}
		after = next
	}
	require.Len(t, all, 24, "25 repaired in redis, one of them since repeated as a noop")
	for i := 1; i < len(all); i++ {
		require.Less(t, all[i].ID, all[i-1].ID, "newest first, no duplicates across pages")
	}
	failed, _, err := l.List(ctx, repair.LogFilter{Outcome: repair.OutcomeFailed})
	require.NoError(t, err)
	require.Len(t, failed, 1)
	require.Equal(t, "elasticsearch item status 500", failed[0].Error)

	runs, err := l.Runs(ctx, 10, 0)
	require.NoError(t, err)
	require.Len(t, runs, 3)
	require.Equal(t, 25, runs[2].Repaired)
	require.Equal(t, 1, runs[2].Failed)
	require.NotNil(t, runs[2].FinishedAt)

	// Retention: nothing is older than an hour ago; everything is older
	// than an hour from now (finished runs go, unfinished ones stay).
	n, err := l.Purge(ctx, time.Now().Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, l.FinishRun(ctx, again))
	require.NoError(t, l.FinishRun(ctx, dry))
	n, err = l.Purge(ctx, time.Now().Add(time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 27+3, n, "27 entries (26 of the first run, one of them repeated, and the dry run's) and 3 runs")
	got, _, err = l.List(ctx, repair.LogFilter{})
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestRepairStats counts entries per hour, entity, store, class and
// outcome since a time.
func TestRepairStats(t *testing.T) {
	ns, l := seedLog(t, 7, func(i int) (string, string) {
		if i%3 == 0 {
			return repair.OutcomeFailed, "elasticsearch"
		}
		return repair.OutcomeRepaired, "redis"
	})
	ctx := t.Context()
	// An old entry outside the window.
	_, err := ns.Pool().Exec(ctx, `UPDATE repair_log SET last_at = now() - interval '3 days' WHERE key = '6'`)
	require.NoError(t, err)

	since := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	got, err := l.Stats(ctx, since, time.Hour)
	require.NoError(t, err)
	counts := map[string]int64{}
	for _, b := range got {
		require.WithinDuration(t, time.Now(), b.Start, time.Hour+time.Minute)
		require.Zero(t, b.Start.Sub(since)%time.Hour, "buckets start on the hour")
		counts[b.Store+"/"+b.Outcome+"/"+string(b.Class)] += b.Count
	}
	require.Equal(t, map[string]int64{"redis/repaired/stale": 4, "elasticsearch/failed/stale": 2}, counts)

	// Per minute over the last hour: the same six recent entries, in
	// buckets a minute long.
	since = time.Now().Add(-time.Hour).Truncate(time.Minute)
	got, err = l.Stats(ctx, since, time.Minute)
	require.NoError(t, err)
	var n int64
	for _, b := range got {
		require.Zero(t, b.Start.Sub(since)%time.Minute)
		require.WithinDuration(t, time.Now(), b.Start, 2*time.Minute)
		n += b.Count
	}
	require.EqualValues(t, 6, n)
}

// TestRepairLogTimeWindow pages a time window by last touch: every entry
// in the window once, newest touched first, none outside it.
func TestRepairLogTimeWindow(t *testing.T) {
	ns, l := seedLog(t, 10, func(int) (string, string) { return repair.OutcomeRepaired, "redis" })
	ctx := t.Context()
	// Entry i was last touched i hours ago, except that key 0 (the oldest
	// ID) was touched most recently of all: ID and last_at orders differ.
	_, err := ns.Pool().Exec(ctx, `UPDATE repair_log SET last_at = now() - key::int * interval '1 hour' - interval '1 minute'`)
	require.NoError(t, err)
	_, err = ns.Pool().Exec(ctx, `UPDATE repair_log SET last_at = now() WHERE key = '0'`)
	require.NoError(t, err)

	var keys []string
	f := repair.LogFilter{Since: time.Now().Add(-6 * time.Hour), Until: time.Now().Add(time.Minute), Limit: 2}
	for {
		page, next, err := l.List(ctx, f)
		require.NoError(t, err)
		for _, e := range page {
			keys = append(keys, e.Key)
		}
		if next == 0 {
			break
		}
		f.After = next
	}
	require.Equal(t, []string{"0", "1", "2", "3", "4", "5"}, keys, "keys 0-5 are within 6 hours, newest touched first")
}

// seedLog records n stale-class entries with keys 0..n-1 in one run of a
// fresh namespace; kind gives entry i's outcome and store.
func seedLog(t *testing.T, n int, kind func(i int) (outcome, store string)) (*stacktest.Namespace, *postgres.Log) {
	t.Helper()
	ns := stacktest.New(t)
	ns.Migrate(t)
	l := postgres.NewLog(ns.Pool())
	run := &repair.Run{Trigger: repair.TriggerAPI, Actor: "ops", Entity: "profile"}
	require.NoError(t, l.StartRun(t.Context(), run))
	var batch []repair.Entry
	for i := range n {
		outcome, store := kind(i)
		batch = append(batch, repair.Entry{RunID: run.ID, Entity: "profile", Key: fmt.Sprint(i), Store: store, Class: repair.ClassStale,
			Action: "write", Priority: "high", Before: &repair.State{Version: 1, Digest: 1}, After: &repair.State{Version: 2, Digest: 2}, Outcome: outcome})
	}
	require.NoError(t, l.Record(t.Context(), batch))
	return ns, l
}
