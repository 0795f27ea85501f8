package repair_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/migrations"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
	"github.com/triad-dev/triad/repair/sweep"
)

// TestPostgresUnreachable is the matrix's "Postgres unreachable" cell
// against a real Postgres that is stopped: a check, a repair and a sweep
// fail naming Postgres, and nothing is written to the derived stores (a
// stale cache copy stays as it was); once Postgres is back the same
// repair fixes it.
func TestPostgresUnreachable(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t) // Redis and index prefixes
	priv := stacktest.StartPrivate(t, "postgres")
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, priv.Endpoints().PostgresURL+"&connect_timeout=2")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	m, err := migrations.New(pool, "public", stacktest.Logger(t))
	require.NoError(t, err)
	_, err = m.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Close())
	s := &repairtest.Stores{NS: ns, PG: pgstore.New(pool),
		RS: redisstore.New(ns.Redis(), redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: time.Hour}, prometheus.NewRegistry()),
		ES: esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix})}
	require.NoError(t, s.ES.Setup(ctx))
	s.Write(t, repairtest.Profile(t, 1, 2, "new"), "postgres", "elasticsearch")
	s.Write(t, repairtest.Profile(t, 1, 1, "old"), "redis")
	require.NoError(t, s.ES.Refresh(ctx))

	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	r := repair.NewRepairer(c, repairpg.NewLog(pool))
	res, err := c.Check(ctx, "profile", []string{"1"})
	require.NoError(t, err)
	require.Equal(t, repair.ClassStale, res[0].Stores["redis"].Class)
	before, err := ns.Redis().HGetAll(ctx, s.RS.Key(1)).Result()
	require.NoError(t, err)

	priv.Stop(t)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	_, err = c.Check(cctx, "profile", []string{"1"})
	require.ErrorContains(t, err, "postgres")
	_, _, err = r.Repair(cctx, repair.Request{Entity: "profile", Keys: []string{"1"}, Trigger: repair.TriggerAPI, Actor: "test"})
	require.Error(t, err, "a repair without the source of truth fails")
	_, err = sweep.New(c, r).Sweep(cctx, sweep.Options{Entity: "profile", Repair: true, Recheck: time.Millisecond})
	require.ErrorContains(t, err, "postgres")
	after, err := ns.Redis().HGetAll(ctx, s.RS.Key(1)).Result()
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing written to the cache while Postgres was unreachable")

	priv.Start(t)
	require.Eventually(t, func() bool { return pool.Ping(ctx) == nil }, 60*time.Second, 100*time.Millisecond)
	run, _, err := r.Repair(ctx, repair.Request{Entity: "profile", Keys: []string{"1"}, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	require.Equal(t, 1, run.Repaired)
	got, ok, err := s.RS.Get(ctx, 1)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 2, got.Version)
}

// TestHungRedisRangeBacksOff: a Redis that hangs (SIGSTOP, not dead) in
// the middle of a persisted sweep fails its ranges at the client's
// deadline; each backs off with its error shown on the sweep, a sweep of
// another entity on other stores runs to the end meanwhile, and once
// Redis resumes the sweep finishes with exactly the planted drift and no
// stale error.
func TestHungRedisRangeBacksOff(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	priv := stacktest.StartPrivate(t, "redis")
	// The client's deadline is the store call's: one second, no retries
	// (go-redis retries 3 times unless MaxRetries is -1).
	rdb := goredis.NewClient(&goredis.Options{Addr: priv.Endpoints().RedisAddr, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	rs := redisstore.New(rdb, redisstore.Config{KeyPrefix: s.NS.RedisPrefix, TTL: time.Hour}, prometheus.NewRegistry())
	var bulk []*ingest.Profile
	for id := int64(1); id <= 600; id++ {
		bulk = append(bulk, repairtest.Profile(t, id, 1, "ok"))
	}
	out := make([]ingest.WriteResult, len(bulk))
	_, err := s.PG.Apply(ctx, bulk, make([]bool, len(bulk)), nil)
	require.NoError(t, err)
	require.NoError(t, rs.WriteAt(ctx, 1, bulk, out))
	require.NoError(t, s.ES.WriteAt(ctx, 1, bulk, out))
	require.NoError(t, s.ES.Refresh(ctx))
	require.NoError(t, rdb.HSet(ctx, rs.KeyAt(1, 7), "tags", `["by-hset"]`).Err())

	orders := s.Orders(t, 300)

	c := repair.NewChecker(repair.NewProfile(s.PG, rs, s.ES), orders)
	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())))
	st := repairpg.NewSweeps(s.NS.Pool())
	claims := leader.NewClaims(s.NS.Etcd(), s.NS.EtcdPrefix, "w1", time.Second)
	t.Cleanup(func() { _ = claims.Close() })
	hook := &hangAtFinish{Sweeps: st, hang: func() { priv.Pause(t) }}
	t.Cleanup(func() { priv.Resume(t) }) // never leave it hung for the server's own clean-up
	w := sweep.NewWorker(sw, hook, claims, sweep.WorkerConfig{Owner: "w1", Recheck: 50 * time.Millisecond, Poll: 20 * time.Millisecond, RangeSegments: 1}, nil)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.Run(wctx)

	pid := priv.Pid(t)
	require.Positive(t, pid)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	resumed := false
	defer func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}()
	start := time.Now()
	prof, err := w.Start(ctx, sweep.Record{Entity: "profile", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	ord, err := w.Start(ctx, sweep.Record{Entity: "order", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	var hung sweep.Record
	require.Eventually(t, func() bool {
		hung, err = st.GetSweep(ctx, prof.ID)
		require.NoError(t, err)
		return hung.Error != ""
	}, 30*time.Second, 20*time.Millisecond, "a range failed at the deadline and says so")
	failedAfter := time.Since(start)
	require.Equal(t, sweep.Running, hung.State)
	require.Contains(t, hung.Error, "redis")
	require.Eventually(t, func() bool {
		r, err := st.GetSweep(ctx, ord.ID)
		require.NoError(t, err)
		return r.State == sweep.Done
	}, 60*time.Second, 20*time.Millisecond, "the other entity's sweep runs meanwhile")
	orderDone := time.Since(start)
	ranges, err := st.Ranges(ctx, prof.ID)
	require.NoError(t, err)
	failures := 0
	for _, rg := range ranges {
		failures += rg.Failures
		if rg.Failures > 0 {
			require.NotEmpty(t, rg.LastError)
			require.NotNil(t, rg.RetryAt, "a failed range backs off")
		}
	}
	require.Positive(t, failures)

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	resumed = true
	resumedAt := time.Now()
	var done sweep.Record
	require.Eventually(t, func() bool {
		done, err = st.GetSweep(ctx, prof.ID)
		require.NoError(t, err)
		require.NotEqual(t, sweep.Failed, done.State, "%+v", done)
		return done.State == sweep.Done
	}, 5*time.Minute, 50*time.Millisecond)
	t.Logf("measured: first range error %s after the start (Redis hung), order sweep done at %s, %d range failures; profile sweep done %s after Redis resumed",
		failedAfter.Round(time.Millisecond), orderDone.Round(time.Millisecond), failures, time.Since(resumedAt).Round(time.Millisecond))
	require.Empty(t, done.Error, "a done sweep carries no range error that a retry cleared")
	findings, err := st.Findings(ctx, prof.ID, 100)
	require.NoError(t, err)
	require.Equal(t, []sweep.Finding{{Key: "7", Store: "redis", Class: repair.ClassFieldMismatch}}, findings)

	// Redis hangs when a sweep's ranges are done and its finish (the
	// orphan scan) is due: the finish backs off and the sweep says why,
	// then finishes clean once Redis resumes.
	hook.armed.Store(true)
	third, err := w.Start(ctx, sweep.Record{Entity: "profile", SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		hung, err = st.GetSweep(ctx, third.ID)
		require.NoError(t, err)
		return hung.Error != ""
	}, time.Minute, 20*time.Millisecond, "the failed finish shows on the sweep")
	require.Equal(t, sweep.Running, hung.State)
	require.Contains(t, hung.Error, "finish:")
	require.Contains(t, hung.Error, "retrying at")
	priv.Resume(t)
	require.Eventually(t, func() bool {
		done, err = st.GetSweep(ctx, third.ID)
		require.NoError(t, err)
		return done.State == sweep.Done
	}, 5*time.Minute, 50*time.Millisecond)
	require.Empty(t, done.Error, "a finished sweep carries no stale finish error")
}

// hangAtFinish is the real sweep store, which runs hang once, when armed,
// as soon as a sweep is ready to finish: a store then hangs exactly
// between a sweep's ranges and its finish.
type hangAtFinish struct {
	*repairpg.Sweeps
	hang  func()
	armed atomic.Bool
}

func (h *hangAtFinish) Work(ctx context.Context) ([]sweep.Record, []sweep.Range, []sweep.Record, error) {
	unplanned, ranges, finishable, err := h.Sweeps.Work(ctx)
	if len(finishable) > 0 && h.armed.CompareAndSwap(true, false) {
		h.hang()
	}
	return unplanned, ranges, finishable, err
}
