package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

// TestRedisDataLossIsDetectedAndRewarmed: Redis is killed with SIGKILL
// mid-ingest (profiles streaming in through the batch endpoint) and comes
// back empty (its files removed, as with a lost volume or no
// persistence). The leader notices the restart, fires StoreDataLoss and
// re-warms every profile through the catch-up log; the writes made while
// Redis was gone reach it through the catch-up log too. Afterwards Redis
// holds every acknowledged profile.
func TestRedisDataLossIsDetectedAndRewarmed(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "redis")
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Redis.Addr = priv.Endpoints().RedisAddr
	cfg.Ingest.RedisWatch = 200 * time.Millisecond
	cfg.Alert.Interval = 200 * time.Millisecond
	a := startMigrated(t, cfg)
	rdb := redis.NewClient(&redis.Options{Addr: priv.Endpoints().RedisAddr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })

	g := ingest.NewGenerator(41)
	var mu sync.Mutex
	acked := map[int64]bool{}
	next := int64(0)
	write := func(n int64) {
		var body bytes.Buffer
		var ids []int64
		for i := next; i < next+n; i++ {
			body.Write(g.AppendJSONL(nil, i))
			body.WriteByte('\n')
			ids = append(ids, g.ID(i))
		}
		next += n
		if code, applied := postBatch(t, a, &body); code == http.StatusOK && applied == n {
			mu.Lock()
			for _, id := range ids {
				acked[id] = true
			}
			mu.Unlock()
		}
	}
	write(2000)
	profiles := func() int {
		keys, _ := rdb.Keys(t.Context(), ns.RedisPrefix+"profile:*").Result()
		return len(keys)
	}
	require.Eventually(t, func() bool { return profiles() == 2000 }, 30*time.Second, 50*time.Millisecond)
	time.Sleep(time.Second) // the watch's baseline holds the keys

	stop, done := make(chan struct{}), make(chan struct{})
	go func() { // the ingest Redis dies in the middle of
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				write(200)
			}
		}
	}()
	time.Sleep(time.Second)
	require.NoError(t, syscall.Kill(priv.Pid(t), syscall.SIGKILL))
	dir := filepath.Join(priv.Config.Dir, "redis")
	for _, f := range []string{"appendonlydir", "dump.rdb"} {
		require.NoError(t, os.RemoveAll(filepath.Join(dir, f)))
	}
	killed := time.Now()
	time.Sleep(2 * time.Second) // writes go on while Redis is gone
	priv.Start(t)
	t.Logf("measured: Redis restarted %.1fs after the kill", time.Since(killed).Seconds())
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	mu.Lock()
	n := len(acked)
	mu.Unlock()

	var alerted, rewarmed time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for alerted == 0 || rewarmed == 0 {
		require.True(t, time.Now().Before(deadline), "alerted after %s, re-warmed after %s; Redis holds %d of %d", alerted, rewarmed, profiles(), n)
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
		if rewarmed == 0 && profiles() >= n {
			rewarmed = time.Since(killed)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id := range acked {
		require.EqualValues(t, 1, rdb.Exists(t.Context(), ns.RedisPrefix+"profile:"+strconv.FormatInt(id, 10)).Val(), "acknowledged profile %d is in Redis", id)
	}
	t.Logf("measured: %d profiles acknowledged (%d streamed in over the 5 s around the kill); StoreDataLoss listed %.1fs and every one in Redis %.1fs after the kill",
		n, n-2000, alerted.Seconds(), rewarmed.Seconds())
}

// postBatch posts a JSONL body to the batch endpoint as the admin and
// returns the status and how many profiles were applied (0 and 0 when
// the request failed). Not call: writers run in their own goroutines,
// where a failed require must not be used.
func postBatch(t *testing.T, a *app.App, body io.Reader) (int, int64) {
	req, _ := http.NewRequestWithContext(context.WithoutCancel(t.Context()), http.MethodPost, "http://"+a.Addr+"/api/v1/profiles/batch", body)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer res.Body.Close()
	var r struct {
		Data struct {
			Applied int64 `json:"applied"`
		} `json:"data"`
	}
	_ = json.NewDecoder(res.Body).Decode(&r)
	return res.StatusCode, r.Data.Applied
}

// privateConfig points a namespace's configuration at private servers.
func privateConfig(t *testing.T, ns *stacktest.Namespace, pg, rd, es, etcd *stacktest.Private) config.Config {
	t.Helper()
	cfg := configtest.For(t, ns)
	cfg.Postgres.Host, cfg.Postgres.Port, cfg.Postgres.Schema = pg.Config.Host, pg.Config.PostgresPort, ""
	cfg.Redis.Addr = rd.Endpoints().RedisAddr
	cfg.Elasticsearch.Addresses = []string{es.Endpoints().ElasticsearchURL}
	cfg.Etcd.Endpoints = []string{etcd.Endpoints().EtcdEndpoint}
	return cfg
}

type probe struct {
	path string
	body any
}

// TestHungStoresDegradeOnePath hangs each store in turn (SIGSTOP for 30 s)
// while profiles stream in through the batch endpoint and a repairing
// sweep runs. While a store hangs: every API call answers within its
// deadline (503 naming the store, or an answer from another tier); writes
// keep being acknowledged unless the hung store is Postgres itself. After
// SIGCONT the sweep finishes and every acknowledged profile is consistent
// in all three stores.
func TestHungStoresDegradeOnePath(t *testing.T) {
	t.Parallel()
	pg := stacktest.StartPrivate(t, "postgres")
	rd := stacktest.StartPrivate(t, "redis")
	es := stacktest.StartPrivate(t, "elasticsearch")
	ed := stacktest.StartPrivate(t, "etcd")
	ns := stacktest.New(t)
	cfg := privateConfig(t, ns, pg, rd, es, ed)
	cfg.Server.RequestTimeout, cfg.Server.BatchTimeout, cfg.Server.RateLimit = 2*time.Second, 3*time.Second, 0
	cfg.Redis.Timeout, cfg.Elasticsearch.Timeout = time.Second, 2*time.Second
	cfg.Ingest.DerivedTimeout, cfg.Ingest.DerivedAttempts, cfg.Ingest.PrimaryTimeout = time.Second, 2, 5*time.Second
	cfg.Ingest.OutboxGrace = 10 * time.Second
	a := startMigrated(t, cfg)

	// A writer: 100 new profiles every 200 ms; acknowledged IDs kept. The
	// sweeps run at 2,000 records/s, faster than the writer adds rows, so
	// each one is mid-way when its store hangs and can still finish.
	g := ingest.NewGenerator(42)
	var mu sync.Mutex
	var acked []int64
	next := int64(0)
	write := func(n int64) (int, time.Duration) {
		var body bytes.Buffer
		ids := make([]int64, 0, n)
		for i := next; i < next+n; i++ {
			body.Write(g.AppendJSONL(nil, i))
			body.WriteByte('\n')
			ids = append(ids, g.ID(i))
		}
		next += n
		start := time.Now()
		code, applied := postBatch(t, a, &body)
		if code == http.StatusOK && applied == n {
			mu.Lock()
			acked = append(acked, ids...)
			mu.Unlock()
		}
		return code, time.Since(start)
	}
	for range 5 { // 10,000 profiles, in bodies under server.max_body_bytes
		code, _ := write(2000)
		require.Equal(t, http.StatusOK, code)
	}
	ackedNow := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	var slowestBatch atomic.Int64 // ns, reset per hung store
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			_, took := write(100)
			for {
				cur := slowestBatch.Load()
				if int64(took) <= cur || slowestBatch.CompareAndSwap(cur, int64(took)) {
					break
				}
			}
		}
	}()

	probes := []probe{
		{"/api/v1/profiles/" + fmt.Sprint(g.ID(7)), nil},
		{"/api/v1/checks", map[string]any{"entity": "profile", "ids": []int64{g.ID(1), g.ID(2), g.ID(3)}}},
		{"/api/v1/sweeps", nil},
		{"/api/v1/dataset", nil},
		{"/api/v1/repairs", nil},
		// The trace readers (the span store is Postgres): a search, the
		// dropdowns, the service graph, a trace by ID.
		{"/api/v1/traces?limit=5", nil},
		{"/api/v1/services", nil},
		{"/api/v1/services/graph", nil},
		{"/api/v1/traces/0123456789abcdef0123456789abcdef", nil},
	}
	for _, victim := range []*stacktest.Private{rd, es, ed, pg} {
		sw := call(t, a, http.MethodPost, "/api/v1/sweeps", adminToken, map[string]any{"entity": "profile", "repair": true, "segment_size": 100, "rate": 2000})
		require.Equal(t, http.StatusCreated, sw.code, sw.raw)
		time.Sleep(time.Second)
		before := ackedNow()
		slowestBatch.Store(0)
		victim.Pause(t)
		paused := time.Now()
		var slowest time.Duration
		answers := map[int]int{}
		for time.Since(paused) < 30*time.Second {
			var wg sync.WaitGroup
			var pmu sync.Mutex
			for _, p := range probes {
				wg.Go(func() {
					method := http.MethodGet
					if p.body != nil {
						method = http.MethodPost
					}
					start := time.Now()
					r := call(t, a, method, p.path, adminToken, p.body)
					took := time.Since(start)
					pmu.Lock()
					defer pmu.Unlock()
					slowest = max(slowest, took)
					answers[r.code]++
					if r.code == http.StatusServiceUnavailable && answers[r.code] == 1 {
						t.Logf("%s hung: %s answered 503: %.300s", victim.Name, p.path, r.raw)
					}
					require.Less(t, took, cfg.Server.RequestTimeout+time.Second, "%s hung %s: %s answered after %s", victim.Name, time.Since(paused), p.path, took)
					if r.code == http.StatusServiceUnavailable {
						require.NotContains(t, r.raw, "internal error", p.path)
						require.Contains(t, r.raw, victim.Name, "a 503 names the store that hangs")
					}
				})
			}
			wg.Wait()
			time.Sleep(500 * time.Millisecond)
		}
		during := ackedNow() - before
		batchSlowest := time.Duration(slowestBatch.Load())
		victim.Resume(t)
		t.Logf("measured: %s hung 30s: slowest API answer %s, slowest batch %s, answers by status %v, %d profiles acknowledged during the hang",
			victim.Name, slowest.Round(time.Millisecond), batchSlowest.Round(time.Millisecond), answers, during)
		require.Less(t, batchSlowest, cfg.Server.BatchTimeout+time.Second, "the batch endpoint answers within its deadline while %s hangs", victim.Name)
		if victim != pg {
			require.Greater(t, during, 1000, "writes went on while %s hung", victim.Name)
		}
		id := int64(sw.body["data"].(map[string]any)["id"].(float64))
		resumed := time.Now()
		var last string
		for {
			r := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/sweeps/%d", id), adminToken, nil)
			last = r.raw
			if r.code == http.StatusOK && r.body["data"].(map[string]any)["state"] == "done" {
				break
			}
			require.Less(t, time.Since(resumed), 3*time.Minute, "the sweep started before %s hung finishes: %s", victim.Name, last)
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("measured: sweep %d done %.1fs after %s resumed", id, time.Since(resumed).Seconds(), victim.Name)
	}
	close(stop)
	<-writerDone

	// Converged: nothing owed, and every acknowledged profile consistent.
	start := time.Now()
	pool := a.Clients.Postgres
	require.Eventually(t, func() bool {
		var owed int64
		_ = pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM profile_catchup) + (SELECT count(*) FROM profile_outbox)`).Scan(&owed)
		return owed == 0
	}, 3*time.Minute, 200*time.Millisecond, "the catch-up log and the outbox drain")
	mu.Lock()
	ids := append([]int64(nil), acked...)
	mu.Unlock()
	inconsistent := 0
	for i := 0; i < len(ids); i += 1000 {
		r := call(t, a, http.MethodPost, "/api/v1/checks", adminToken, map[string]any{"entity": "profile", "ids": ids[i:min(i+1000, len(ids))]})
		require.Equal(t, http.StatusOK, r.code, r.raw)
		inconsistent += int(r.body["data"].(map[string]any)["inconsistent"].(float64))
	}
	t.Logf("measured: %d acknowledged profiles checked, %d inconsistent, %.1fs after the last resume", len(ids), inconsistent, time.Since(start).Seconds())
	require.Zero(t, inconsistent, "every acknowledged profile agrees in the three stores")
}
