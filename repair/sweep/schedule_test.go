package sweep_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
	"github.com/triad-dev/triad/repair/sweep"
)

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 24, 1, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		s    sweep.Schedule
		last time.Time
		want time.Time
	}{
		{"interval, never ran: now", sweep.Schedule{Every: time.Hour}, time.Time{}, now},
		{"interval after the last start", sweep.Schedule{Every: time.Hour}, now.Add(-10 * time.Minute), now.Add(50 * time.Minute)},
		{"cron, never ran: its next time", sweep.Schedule{Cron: "0 3 * * *"}, time.Time{}, time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)},
		{"cron after the last start", sweep.Schedule{Cron: "0 3 * * *"}, time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC), time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)},
		{"descriptor", sweep.Schedule{Cron: "@hourly"}, now, time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)},
	} {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, tt.s.Next(tt.last, now)) })
	}
}

// TestSchedulerAndSwitch: the scheduler starts a due sweep (trigger
// schedule), skips its next turn while that sweep still runs, and a
// dataset switch during the sweep ends it as superseded with a successor
// on the new version.
func TestSchedulerAndSwitch(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 2000, "ok")
	require.NoError(t, s.ES.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	st := repairpg.NewSweeps(s.NS.Pool())
	claims := leader.NewClaims(s.NS.Etcd(), s.NS.EtcdPrefix, "a", time.Second)
	t.Cleanup(func() { claims.Close() })
	var serving atomic.Int64
	serving.Store(1)
	w := sweep.NewWorker(sweep.New(c, nil), st, claims, sweep.WorkerConfig{Owner: "a", Poll: 50 * time.Millisecond,
		Recheck: 50 * time.Millisecond, RangeSegments: 20, Serving: func() int { return int(serving.Load()) }}, stacktest.Logger(t))
	sched := sweep.NewScheduler([]sweep.Schedule{{Name: "often", Entity: "profile", Every: time.Minute, Mode: sweep.ModeDigest, SegmentSize: 50, Rate: 500}},
		w, st, stacktest.Logger(t))
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	sched.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	sched.Tick = 20 * time.Millisecond
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go sched.Run(sctx)
	var first sweep.Record
	require.Eventually(t, func() bool {
		list, err := st.ListSweeps(ctx, 10)
		if err != nil || len(list) == 0 {
			return false
		}
		first = list[0]
		return true
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, repair.TriggerSchedule, first.Trigger)
	require.Equal(t, "often", first.Schedule)
	require.Equal(t, 1, first.DatasetVersion)
	// A minute later the schedule is due again, but its sweep is still
	// running (nobody works on it yet): the turn is skipped.
	clock.Add(int64(61 * time.Second))
	time.Sleep(200 * time.Millisecond)
	list, err := st.ListSweeps(ctx, 10)
	require.NoError(t, err)
	require.Len(t, list, 1, "no second sweep while the first runs")
	stop()
	// Nobody works on it: flagged stuck; progress clears the flag.
	stuck, err := st.MarkStuck(ctx, 100*time.Millisecond)
	require.NoError(t, err)
	require.Len(t, stuck, 1)
	require.True(t, stuck[0].Stuck)

	wctx, stopW := context.WithCancel(ctx)
	defer stopW()
	go w.Run(wctx)
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, first.ID)
		return err == nil && got.Segments > 0
	}, 20*time.Second, 10*time.Millisecond)
	got, err := st.GetSweep(ctx, first.ID)
	require.NoError(t, err)
	require.False(t, got.Stuck, "progress cleared the stuck flag")
	serving.Store(2) // the dataset switched
	var successor sweep.Record
	took := time.Now()
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, first.ID)
		if err != nil || got.State != sweep.Superseded {
			return false
		}
		list, err := st.ListSweeps(ctx, 10)
		if err != nil || len(list) < 2 {
			return false
		}
		successor = list[0]
		return true
	}, 20*time.Second, 10*time.Millisecond)
	t.Logf("measured: superseded %s after the switch", time.Since(took).Round(time.Millisecond))
	got, err = st.GetSweep(ctx, first.ID)
	require.NoError(t, err)
	require.Contains(t, got.Error, "dataset version switched from 1 to 2")
	require.Equal(t, 2, successor.DatasetVersion)
	require.Equal(t, first.ID, *successor.Supersedes)
	require.Equal(t, "often", successor.Schedule)
	require.Eventually(t, func() bool {
		got, err := st.GetSweep(ctx, successor.ID)
		return err == nil && got.State == sweep.Done
	}, 60*time.Second, 20*time.Millisecond, "the successor sweeps the new version to the end")
}
