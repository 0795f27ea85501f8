package redis_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// TestWatchJudgesItsMarkerNotTheKeyCount: on the shared test Redis (a
// database other services use, as in production), deletes of many keys
// are not a loss; the marker key's disappearance (a flush or restore) is,
// once; a second watch (the next leader) shares the marker. Restarts are
// tested with a private Redis (TestRedisDataLossIsDetectedAndRewarmed).
func TestWatchJudgesItsMarkerNotTheKeyCount(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ctx := t.Context()
	rdb := ns.Redis()
	for i := range 500 {
		require.NoError(t, rdb.Set(ctx, fmt.Sprintf("%sother-service:%d", ns.RedisPrefix, i), i, 0).Err())
	}
	w := redisstore.NewWatch(rdb, ns.RedisPrefix, nil)
	loss, err := w.Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss, "the first look sets the baseline")
	require.EqualValues(t, 1, rdb.Exists(ctx, w.Marker()).Val(), "and the marker")

	// Another service deletes all its 500 keys: not triad's loss.
	for i := range 500 {
		require.NoError(t, rdb.Del(ctx, fmt.Sprintf("%sother-service:%d", ns.RedisPrefix, i)).Err())
	}
	loss, err = w.Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss, "other keys' deletes are not a loss")

	// The next leader's watch shares the marker.
	w2 := redisstore.NewWatch(rdb, ns.RedisPrefix, nil)
	loss, err = w2.Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss)

	// A flush takes the marker with the data: a loss, once.
	require.NoError(t, rdb.Del(ctx, w.Marker()).Err())
	loss, err = w.Look(ctx)
	require.NoError(t, err)
	require.NotNil(t, loss)
	require.Equal(t, "flushed", loss.Reason)
	require.Contains(t, loss.String(), "marker key is gone")
	loss, err = w.Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss, "the new marker is the new baseline")
	loss, err = w2.Look(ctx)
	require.NoError(t, err)
	require.NotNil(t, loss, "the other watch sees the flush too")
}

// TestRestartWhileLeadershipChangesHands: the last leader's watch saw
// Redis, then Redis restarted (its data gone) before the next leader's
// watch first looked. With the baseline saved in Postgres, the next
// leader reports the restart; it reports it until it is settled, and not
// after. Without a saved baseline the first look could only set one.
func TestRestartWhileLeadershipChangesHands(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ns.Migrate(t)
	ctx := t.Context()
	priv := stacktest.StartPrivate(t, "redis")
	rdb := goredis.NewClient(&goredis.Options{Addr: priv.Endpoints().RedisAddr})
	t.Cleanup(func() { rdb.Close() })
	baseline := pgstore.NewWatchBaseline(ns.Pool(), "redis:"+ns.RedisPrefix)

	old := redisstore.NewWatch(rdb, ns.RedisPrefix, baseline)
	loss, err := old.Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss, "no baseline saved yet: the first look sets it")
	_, _, ok, err := baseline.Load(ctx)
	require.NoError(t, err)
	require.True(t, ok, "and saves it")

	// The old leader is gone; Redis restarts without its data.
	priv.Stop(t)
	for _, f := range []string{"appendonlydir", "dump.rdb"} {
		require.NoError(t, os.RemoveAll(filepath.Join(priv.Config.Dir, "redis", f)))
	}
	priv.Start(t)

	next := redisstore.NewWatch(rdb, ns.RedisPrefix, baseline)
	loss, err = next.Look(ctx)
	require.NoError(t, err)
	require.NotNil(t, loss, "the next leader's first look compares with the saved baseline")
	require.Equal(t, "restart", loss.Reason)
	next.Retry() // the re-warm could not start: the same watch reports it again
	loss, err = next.Look(ctx)
	require.NoError(t, err)
	require.NotNil(t, loss, "a loss not acted on is reported again")

	// Not settled (the leader died acting on it): the one after reports it again.
	again := redisstore.NewWatch(rdb, ns.RedisPrefix, baseline)
	loss, err = again.Look(ctx)
	require.NoError(t, err)
	require.NotNil(t, loss)
	require.NoError(t, again.Settle(ctx))
	loss, err = redisstore.NewWatch(rdb, ns.RedisPrefix, baseline).Look(ctx)
	require.NoError(t, err)
	require.Nil(t, loss, "settled: the new run is the baseline")
}
