package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

// TestRedisDataLossIsDetectedAndRewarmed: Redis is killed with SIGKILL
// and comes back empty (its files removed, as with a lost volume or no
// persistence). The leader notices the restart, fires StoreDataLoss, and
// re-warms every profile through the catch-up log without anyone asking.
func TestRedisDataLossIsDetectedAndRewarmed(t *testing.T) {
	priv := stacktest.StartPrivate(t, "redis")
	ns := stacktest.New(t)
	cfg := ns.Config
	cfg.Redis.Addr = priv.Endpoints().RedisAddr
	cfg.Ingest.RedisWatch = 200 * time.Millisecond
	cfg.Alert.Interval = 200 * time.Millisecond
	a := startMigrated(t, cfg)
	rdb := redis.NewClient(&redis.Options{Addr: priv.Endpoints().RedisAddr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })

	const n = 2000
	var body bytes.Buffer
	g := ingest.NewGenerator(41)
	for i := range int64(n) {
		body.Write(g.AppendJSONL(nil, i))
		body.WriteByte('\n')
	}
	r := call(t, a, http.MethodPost, "/api/v1/profiles/batch", adminToken, body.Bytes())
	require.Equal(t, http.StatusOK, r.code, r.raw)
	profiles := func() int {
		keys, _ := rdb.Keys(t.Context(), ns.RedisPrefix+"profile:*").Result()
		return len(keys)
	}
	require.Eventually(t, func() bool { return profiles() == n }, 30*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // the watch's baseline holds the keys

	require.NoError(t, syscall.Kill(priv.Pid(t), syscall.SIGKILL))
	dir := filepath.Join(priv.Config.Dir, "redis")
	for _, f := range []string{"appendonlydir", "dump.rdb"} {
		require.NoError(t, os.RemoveAll(filepath.Join(dir, f)))
	}
	killed := time.Now()
	priv.Start(t)
	t.Logf("measured: Redis restarted %.1fs after the kill", time.Since(killed).Seconds())
	require.Zero(t, profiles(), "Redis came back empty")

	var alerted, rewarmed time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for alerted == 0 || rewarmed == 0 {
		require.True(t, time.Now().Before(deadline), "alerted after %s, re-warmed after %s", alerted, rewarmed)
		if alerted == 0 {
			al := call(t, a, http.MethodGet, "/api/v1/alerts", adminToken, nil)
			require.Equal(t, http.StatusOK, al.code, al.raw)
			for _, x := range al.body["data"].(map[string]any)["alerts"].([]any) {
				if x := x.(map[string]any); x["rule"] == "StoreDataLoss" {
					alerted = time.Since(killed)
					require.Contains(t, fmt.Sprint(x["annotations"]), "re-warming", x)
				}
			}
		}
		if rewarmed == 0 && profiles() == n {
			rewarmed = time.Since(killed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("measured: StoreDataLoss listed %.1fs and all %d profiles back in Redis %.1fs after the kill (restart included)", alerted.Seconds(), n, rewarmed.Seconds())
}
