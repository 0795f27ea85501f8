package repair_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/migrations"
	"github.com/triad-dev/triad/repair"
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
