package redis_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
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
	w := redisstore.NewWatch(rdb, ns.RedisPrefix)
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
	w2 := redisstore.NewWatch(rdb, ns.RedisPrefix)
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
