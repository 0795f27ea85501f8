package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/internal/secret"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/server"
)

const replicaToken = "replica-test-admin-token-0123"

// replicaEnv is the environment a CLI run needs to share ns with the
// replicas.
func replicaEnv(ns *stacktest.Namespace) []string {
	return append(configtest.Env(ns),
		"TRIAD_DATASET_SESSION_TTL=2s",
		"TRIAD_DATASET_CONFIRM_TIMEOUT=10s",
		// Several serve processes at once: OTLP on free ports.
		"TRIAD_TRACE_HTTP_ADDR=127.0.0.1:0",
		"TRIAD_TRACE_GRPC_ADDR=127.0.0.1:0",
	)
}

func replicaConfig(t testing.TB, ns *stacktest.Namespace) config.Config {
	cfg := configtest.For(t, ns)
	cfg.Auth.AdminToken = secret.Value(replicaToken)
	cfg.Server.ProbeInterval = 200 * time.Millisecond
	cfg.Server.ProbeTimeout = 500 * time.Millisecond
	cfg.Dataset.SessionTTL = 2 * time.Second
	cfg.Dataset.ResyncInterval = 500 * time.Millisecond
	// These tests time propagation by polling every 2 ms with one token;
	// the per-principal rate limit has its own test (TestDashboardSessions).
	cfg.Server.RateLimit = 0
	return cfg
}

// startReplica runs a whole serving replica in-process on a free port,
// logging to the test.
func startReplica(t testing.TB, cfg config.Config) *app.App {
	t.Helper()
	return startReplicaLogging(t, cfg, stacktest.Logger(t))
}

func startReplicaLogging(t testing.TB, cfg config.Config, log *slog.Logger) *app.App {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a, err := app.Start(t.Context(), app.Options{Config: cfg, Logger: log, Listener: ln, Migrate: true, Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	return a
}

type answer struct {
	code    int
	tier    string
	version int64
	dataset int
	body    string
}

func get(t testing.TB, a *app.App, id int64) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("http://%s/api/v1/profiles/%d", a.Addr, id), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	v, _ := strconv.ParseInt(res.Header.Get("X-Triad-Profile-Version"), 10, 64)
	d, _ := strconv.Atoi(res.Header.Get("X-Triad-Dataset-Version"))
	return answer{code: res.StatusCode, tier: res.Header.Get("X-Triad-Tier"), version: v, dataset: d, body: string(b)}
}

// postBatchAsync posts body to addr's batch endpoint as the admin and
// returns the status (0 when the request failed). It never calls
// require, so writers in their own goroutines may use it.
func postBatchAsync(ctx context.Context, addr, body string) int {
	code, _ := requestAsync(ctx, http.MethodPost, "http://"+addr+"/api/v1/profiles/batch", strings.NewReader(body))
	return code
}

// requestAsync sends one request as the admin, discards the body and
// returns the status and headers (0 and nil when it failed); it never
// calls require.
func requestAsync(ctx context.Context, method, url string, body io.Reader) (int, http.Header) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header
}

func post(t testing.TB, a *app.App, path string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+a.Addr+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// awaitReady waits until every replica's /-/ready is 200 (migrations
// applied, pipeline built, filter built, dataset state read).
func awaitReady(t testing.TB, replicas ...*app.App) {
	t.Helper()
	for _, a := range replicas {
		deadline := time.Now().Add(90 * time.Second)
		for {
			res, err := http.Get("http://" + a.Addr + "/-/ready")
			require.NoError(t, err)
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
			require.True(t, time.Now().Before(deadline), "replica %s not ready: %s", a.Addr, b)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// until polls cond every 2ms and returns how long it took to hold; it
// fails after limit (about 10x the promise).
func until(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		require.Less(t, time.Since(start), limit, what)
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func profileLine(id, version int64, tag string) string {
	return fmt.Sprintf(`{"user_id": %d, "version": %d, "tags": [%q]}`, id, version, tag)
}

// TestReplicasReadEachOthersWrites: a profile written through replica A's
// batch endpoint, or by `triad ingest`, is readable through replica B
// within 1 s of the write returning and never 404s after that; an update
// is visible through both within 1 s.
func TestReplicasReadEachOthersWrites(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	readEachOthersWrites(t, replicaConfig(t, ns), replicaEnv(ns))
}

// TestReplicasReadEachOthersWritesOnARedisCluster: the same with Redis a
// Redis Cluster (the cluster lane; the change feed is pub/sub on the
// cluster); then a master is killed, a replica takes over, and an update
// written through A after the failover is still served by B within the
// same bound: the feed follows the failover.
func TestReplicasReadEachOthersWritesOnARedisCluster(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cl, cfg, env, rc := onRedisCluster(t, ns)
	a, b := readEachOthersWrites(t, cfg, env)
	// Kill the master of the profile's key.
	key := ns.RedisPrefix + "profile:1002"
	master, err := rc.MasterForKey(t.Context(), key)
	require.NoError(t, err)
	owner := master.Options().Addr
	member := ""
	for i, addr := range cl.Endpoints.RedisAddrs {
		if addr == owner {
			member = fmt.Sprintf("redis-%d", i+1)
		}
	}
	require.NotEmpty(t, member, "the master of %s", key)
	cl.Kill(t, member)
	killed := time.Now()
	// Writes to that slot fail until a replica takes over; the batch
	// endpoint acknowledges what Postgres holds and owes Redis the rest.
	until(t, 60*time.Second, "the update is served by B after the failover", func() bool {
		code, _ := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(1002, 9, "after-failover")))
		return code == http.StatusOK && get(t, b, 1002).version == 9
	})
	t.Logf("measured: %s (the master of profile 1002) killed: an update through A served by B %s later", member, time.Since(killed).Round(time.Millisecond))
	require.Contains(t, get(t, b, 1002).body, "after-failover")
}

// readEachOthersWrites is TestReplicasReadEachOthersWrites on cfg; it
// returns the two replicas.
func readEachOthersWrites(t *testing.T, cfg config.Config, env []string) (*app.App, *app.App) {
	a := startReplica(t, cfg)
	b := startReplica(t, cfg)
	awaitReady(t, a, b)

	// Unknown IDs stop at B's filter.
	for _, id := range []int64{1001, 1002, 1003} {
		r := get(t, b, id)
		require.Equal(t, http.StatusNotFound, r.code, r.body)
		require.Equal(t, "filter", r.tier)
	}

	var worst time.Duration
	for i, id := range []int64{1001, 1002, 1003} {
		code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(id, 1, "first")))
		require.Equal(t, http.StatusOK, code, body)
		took := until(t, 10*time.Second, "B reads the new profile", func() bool { return get(t, b, id).code == http.StatusOK })
		t.Logf("measured: profile %d written through A readable through B after %s", id, took)
		worst = max(worst, took)
		// From then on it never 404s, on either replica.
		for range 50 {
			for _, r := range []*app.App{a, b} {
				got := get(t, r, id)
				require.Equal(t, http.StatusOK, got.code, "after it was readable once: %s", got.body)
				require.EqualValues(t, 1, got.version)
			}
		}
		// Update: version 2 visible through both within 1 s (B's cache
		// holds version 1 now).
		require.Equal(t, "cache", get(t, b, id).tier, "the second read is served from B's cache")
		code, body = post(t, a, "/api/v1/profiles/batch", []byte(profileLine(id, 2, fmt.Sprint("update-", i))))
		require.Equal(t, http.StatusOK, code, body)
		took = until(t, 10*time.Second, "both replicas serve version 2", func() bool {
			return get(t, a, id).version == 2 && get(t, b, id).version == 2
		})
		t.Logf("measured: update of %d visible through A and B after %s", id, took)
		worst = max(worst, took)
		require.Contains(t, get(t, b, id).body, "update-")
	}

	// Written by `triad ingest` (another process's pipeline).
	input := filepath.Join(t.TempDir(), "in.jsonl")
	require.NoError(t, os.WriteFile(input, []byte(profileLine(2001, 1, "cli")+"\n"+profileLine(2002, 1, "cli")+"\n"), 0o644))
	require.Equal(t, http.StatusNotFound, get(t, b, 2001).code)
	code, out, errs := run(t, env, "ingest", input)
	require.Equal(t, ExitOK, code, out, errs)
	took := until(t, 10*time.Second, "replicas read what triad ingest wrote", func() bool {
		return get(t, a, 2001).code == http.StatusOK && get(t, b, 2002).code == http.StatusOK
	})
	t.Logf("measured: profiles from triad ingest readable through A and B %s after the command returned", took)
	worst = max(worst, took)

	// Deleted through B: 404 through A (the ID passes the filter).
	code, body := post(t, b, "/api/v1/profiles/batch", []byte(`{"user_id": 1001, "version": 3, "deleted": true}`))
	require.Equal(t, http.StatusOK, code, body)
	took = until(t, 10*time.Second, "a deleted profile 404s on both", func() bool {
		return get(t, a, 1001).code == http.StatusNotFound && get(t, b, 1001).code == http.StatusNotFound
	})
	require.NotEqual(t, "filter", get(t, a, 1001).tier, "a deleted ID passes the filter and 404s after the lookup")
	// The promise is 1 s; the polls above fail only past 10 s (10x), and
	// the measured windows are reported, not asserted.
	t.Logf("measured: delete through B visible through both after %s; worst window overall %s (promise 1s)", took, worst)
	return a, b
}

// TestDatasetSwitchAcrossReplicas builds version 2 while writes go on,
// switches, rolls back and collects, then kills the lock holder mid-switch
// at both dangerous points.
func TestDatasetSwitchAcrossReplicas(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	env := replicaEnv(ns)
	cfg := replicaConfig(t, ns)
	a := startReplica(t, cfg)
	b := startReplica(t, cfg)
	awaitReady(t, a, b)

	var lines []string
	for id := int64(1); id <= 2000; id++ {
		lines = append(lines, profileLine(id, 1, "v1"))
	}
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(strings.Join(lines, "\n")))
	require.Equal(t, http.StatusOK, code, body)
	// The derived stores are written asynchronously; version 1 must be
	// complete before it can be compared after a rollback.
	until(t, 60*time.Second, "version 1 complete", func() bool {
		code, _, _ := run(t, env, "dataset", "verify", "1")
		return code == ExitOK
	})

	// Build version 2 while replica A keeps taking writes: they go to both
	// versions, so the build verifies and the switch finds it complete.
	stop := make(chan struct{})
	writes := make(chan int, 1)
	go func() {
		n := 0
		for id := int64(3000); ; id++ {
			select {
			case <-stop:
				writes <- n
				return
			default:
			}
			// Not post(): require must not run outside the test goroutine.
			if postBatchAsync(t.Context(), a.Addr, profileLine(id, 1, "during-build")) == http.StatusOK {
				n++
			}
		}
	}()
	code, out, errs := run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "built version 2")
	time.Sleep(300 * time.Millisecond)
	close(stop)
	t.Logf("writes through replica A during the build: %d", <-writes)

	code, out, errs = run(t, env, "dataset", "status")
	require.Equal(t, ExitOK, code, errs)
	require.Contains(t, out, "ready")

	// A version that differs from Postgres is refused: one Redis key with
	// a wrong digest and one document missing from the index.
	key := ns.RedisPrefix + "v2:profile:77"
	good, err := ns.Redis().HGet(t.Context(), key, "d").Result()
	require.NoError(t, err)
	require.NoError(t, ns.Redis().HSet(t.Context(), key, "d", "12345").Err())
	del, err := ns.ES().Delete(ns.IndexPrefix+"profiles-v2", "78", ns.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	del.Body.Close()
	code, out, _ = run(t, env, "dataset", "verify", "2")
	require.Equal(t, ExitPartial, code, out)
	require.Contains(t, out, "redis 0 missing, 1 stale")
	require.Contains(t, out, "1 missing, 0 stale")
	require.Contains(t, out, "examples [77 78]")
	code, _, errs = run(t, env, "dataset", "switch", "2")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "not complete")
	require.Equal(t, 1, get(t, a, 1500).dataset, "nothing switched")
	// Put them back (what a repair would do), then the switch goes ahead.
	require.NoError(t, ns.Redis().HSet(t.Context(), key, "d", good).Err())
	code, _, errs = run(t, env, "loadgen", "--count", "1", "--first-id", "78", "--revision", "99999999", "--ingest", "--progress", "never")
	require.Equal(t, ExitOK, code, errs)
	// A document with no row in Postgres shows in the count.
	ires, err := ns.ES().Index(ns.IndexPrefix+"profiles-v2", strings.NewReader(`{"user_id":999999,"version":1,"digest":1,"digest_version":1,"updated_at":null,"tags":[],"interests":{},"devices":[],"behavior":[],"props":{}}`),
		ns.ES().Index.WithDocumentID("999999"), ns.ES().Index.WithRefresh("true"))
	require.NoError(t, err)
	ires.Body.Close()
	code, out, _ = run(t, env, "dataset", "verify", "2")
	require.Equal(t, ExitPartial, code, out)
	require.Regexp(t, `elasticsearch (\d+) docs \(postgres (\d+) live then\)`, out)
	dres, err := ns.ES().Delete(ns.IndexPrefix+"profiles-v2", "999999", ns.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	dres.Body.Close()

	// Switch through replica A's API: both replicas serve version 2 within
	// 1 s of the active key.
	took := switchAndMeasure(t, ns, []*app.App{a, b}, 2, func() {
		code, body := post(t, a, "/api/v1/dataset/switch", []byte(`{"version": 2}`))
		require.Equal(t, http.StatusOK, code, body)
		require.Contains(t, body, `"From":1,"To":2`)
		require.Contains(t, body, `"Lagging":null`)
	})
	t.Logf("measured: switch to 2 served by both replicas %s after the active key changed (promise 1s; the poll fails past 10s)", took)
	r := get(t, b, 1500)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, 2, r.dataset)
	alias, err := app.NewStores(cfg, ns.Clients, nil).ES.AliasVersion(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, alias)

	// Rollback to 1 through replica B (1 was written all along as the
	// previous version); a second switch to 1 is refused.
	code, body = post(t, b, "/api/v1/dataset/rollback", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = post(t, a, "/api/v1/dataset/switch", []byte(`{"version": 1}`))
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "already active")
	until(t, 10*time.Second, "both replicas back on 1", func() bool {
		return get(t, a, 1500).dataset == 1 && get(t, b, 1500).dataset == 1
	})

	// Kill the lock holder after it wrote the active key, before it moved
	// the alias: replicas follow the active key (3), and one of them
	// points the alias at 3 once the dead holder's lease expires.
	code, out, errs = run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "built version 3")
	killMidSwitch(t, env, 3, "before-alias")
	took = until(t, 10*time.Second, "both replicas on 3 after the holder died", func() bool {
		return get(t, a, 1500).dataset == 3 && get(t, b, 1500).dataset == 3
	})
	t.Logf("measured: after the holder was killed past the active key, both replicas served 3 within %s", took)
	stores := app.NewStores(cfg, ns.Clients, nil)
	took = until(t, 30*time.Second, "the alias is repaired", func() bool {
		v, err := stores.ES.AliasVersion(t.Context())
		return err == nil && v == 3
	})
	t.Logf("measured: alias repaired %s after the replicas moved (the dead holder's lease TTL is 2s)", took)

	// Kill the lock holder before it wrote the active key: nothing changes;
	// the next switch waits for the dead holder's lease, then succeeds.
	code, out, errs = run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "built version 4")
	killMidSwitch(t, env, 4, "before-activate")
	for range 20 {
		require.Equal(t, 3, get(t, a, 1500).dataset)
		require.Equal(t, 3, get(t, b, 1500).dataset)
		time.Sleep(25 * time.Millisecond)
	}
	// (No grace period for the version this switch retires, so gc below
	// removes it.)
	code, out, errs = run(t, append(env, "TRIAD_DATASET_RETIRE_AFTER=0s"), "dataset", "switch", "4")
	require.Equal(t, ExitOK, code, out, errs)
	until(t, 10*time.Second, "both replicas on 4", func() bool {
		return get(t, a, 1500).dataset == 4 && get(t, b, 1500).dataset == 4
	})

	// gc removes every version but the active one: the previous one's
	// grace period is over, the older ones are retired.
	code, out, errs = run(t, env, "dataset", "gc")
	require.Equal(t, ExitOK, code, out, errs)
	st, err := stores.Manager(cfg, ns.Clients, nil).State(t.Context())
	require.NoError(t, err)
	for v, info := range st.Versions {
		if v != 4 {
			require.Equal(t, "removed", info.State, "version %d: %+v", v, info)
		}
	}
	keys, err := stacktest.RedisKeys(t.Context(), ns.Redis(), ns.RedisPrefix+"profile:*")
	require.NoError(t, err)
	require.Empty(t, keys, "version 1's Redis keys are removed")
	res, err := ns.ES().Indices.Exists([]string{ns.IndexPrefix + "profiles-v1"})
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNotFound, res.StatusCode, "version 1's index is removed")
	r = get(t, a, 1500)
	require.Equal(t, http.StatusOK, r.code, "the active version still serves")
	require.Equal(t, 4, r.dataset)
}

// switchAndMeasure runs do and measures from the moment the active key
// changes in etcd until every replica serves version n.
func switchAndMeasure(t *testing.T, ns *stacktest.Namespace, replicas []*app.App, n int, do func()) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	changed := make(chan time.Time, 1)
	wch := ns.Etcd().Watch(ctx, ns.EtcdPrefix+"dataset/active")
	go func() {
		for resp := range wch {
			if len(resp.Events) > 0 {
				changed <- time.Now()
				return
			}
		}
	}()
	done := make(chan time.Time, 1)
	go func() {
		for {
			all := true
			for _, r := range replicas {
				if servedDataset(ctx, r.Addr, 1500) != n {
					all = false
				}
			}
			if all || ctx.Err() != nil {
				done <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	do()
	at := <-changed
	select {
	case served := <-done:
		return served.Sub(at)
	case <-time.After(10 * time.Second):
		t.Fatalf("replicas did not serve version %d within 10s", n)
		return 0
	}
}

// servedDataset is the dataset version a replica answers id from (0 on
// any error); safe outside the test goroutine.
func servedDataset(ctx context.Context, addr string, id int64) int {
	_, h := requestAsync(ctx, http.MethodGet, fmt.Sprintf("http://%s/api/v1/profiles/%d", addr, id), nil)
	d, _ := strconv.Atoi(h.Get(server.HeaderDataset))
	return d
}

// killMidSwitch runs `triad dataset switch n` in a child process that
// pauses at step, then kills it with SIGKILL.
func killMidSwitch(t *testing.T, env []string, n int, step string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), env...), "TRIAD_HELPER_ARGS=dataset switch "+strconv.Itoa(n), pauseEnv+"="+step)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(stderr)
	paused := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "paused at "+step) {
			paused = true
			break
		}
	}
	require.True(t, paused, "the switch reached %s", step)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	t.Logf("killed `dataset switch %d` (pid %d) at %s", n, cmd.Process.Pid, step)
}

// startServeProcess runs `triad serve` on addr in a child process (killed
// at the end of the test), with env and the replicas' admin token.
func startServeProcess(t *testing.T, env []string, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), env...), "TRIAD_HELPER_ARGS=serve", "TRIAD_SERVER_LISTEN="+addr,
		"TRIAD_ADMIN_TOKEN="+replicaToken, "TRIAD_LOG_LEVEL=warn", "TRIAD_SERVER_RATE_LIMIT=0")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestHelperProcess runs the CLI in a child process for killMidSwitch; it
// does nothing in a normal test run.
func TestHelperProcess(t *testing.T) {
	args := os.Getenv("TRIAD_HELPER_ARGS")
	if args == "" {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(Main(ctx, strings.Fields(args), os.Stdout, os.Stderr))
}

// TestServingWithoutEtcd: with etcd stopped, a replica keeps serving the
// last known version and says so in /-/ready and metrics; when etcd
// returns it follows the state again (a rollback made then reaches it).
func TestServingWithoutEtcd(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	priv := stacktest.StartPrivate(t, "etcd")
	cfg := replicaConfig(t, ns)
	cfg.Etcd.Endpoints = []string{priv.Endpoints().EtcdEndpoint}
	env := append(replicaEnv(ns), "TRIAD_ETCD_ENDPOINTS="+priv.Endpoints().EtcdEndpoint)
	a := startReplica(t, cfg)
	awaitReady(t, a)
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(7, 1, "x")+"\n"+profileLine(8, 1, "y")))
	require.Equal(t, http.StatusOK, code, body)
	until(t, 60*time.Second, "version 1 complete", func() bool {
		code, _, _ := run(t, env, "dataset", "verify", "1")
		return code == ExitOK
	})
	code, out, errs := run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	code, out, errs = run(t, env, "dataset", "switch", "2")
	require.Equal(t, ExitOK, code, out, errs)
	require.Equal(t, 2, get(t, a, 7).dataset)

	priv.Stop(t)
	took := until(t, 30*time.Second, "ready says etcd is unreachable", func() bool {
		res, err := http.Get("http://" + a.Addr + "/-/ready")
		require.NoError(t, err)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode == http.StatusOK && strings.Contains(string(b), "unreachable: serving the last known version")
	})
	t.Logf("measured: /-/ready reported etcd unreachable %s after it stopped (resync interval 500ms), still 200", took)
	require.Contains(t, metrics(t, a), "triad_dataset_etcd_reachable 0")
	for range 20 {
		r := get(t, a, 8)
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, 2, r.dataset, "the last known version")
	}

	priv.Start(t)
	took = until(t, 30*time.Second, "etcd reachable again", func() bool {
		return strings.Contains(metrics(t, a), "triad_dataset_etcd_reachable 1")
	})
	t.Logf("measured: follower reached etcd again %s after it restarted", took)
	code, out, errs = run(t, env, "dataset", "rollback")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "switched from version 2 to 1")
	require.NotContains(t, out, "NOT serving", "the replica reported the rollback under a fresh lease")
	require.Equal(t, 1, get(t, a, 8).dataset)
}

func metrics(t testing.TB, a *app.App) string {
	t.Helper()
	res, err := http.Get("http://" + a.Addr + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// TestDeadMemberReportExpires: a process that writes profiles (here a long
// `triad loadgen --ingest`) reports under its own lease; killed with
// SIGKILL, its report disappears when the lease expires, and a switch
// after that confirms every live replica without waiting for it.
func TestDeadMemberReportExpires(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	env := replicaEnv(ns)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), env...), "TRIAD_HELPER_ARGS=loadgen --count 100000000 --ingest --progress never")
	require.NoError(t, cmd.Start())
	members := func() map[string]string {
		res, err := ns.Etcd().Get(t.Context(), ns.EtcdPrefix+"dataset/members/", clientv3.WithPrefix())
		require.NoError(t, err)
		out := map[string]string{}
		for _, kv := range res.Kvs {
			out[string(kv.Key)] = string(kv.Value)
		}
		return out
	}
	until(t, 30*time.Second, "the ingest process reports", func() bool {
		for _, v := range members() {
			if strings.Contains(v, `"kind":"ingest"`) {
				return true
			}
		}
		return false
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	took := until(t, 30*time.Second, "the dead process's report expires", func() bool {
		for _, v := range members() {
			if strings.Contains(v, `"kind":"ingest"`) {
				return false
			}
		}
		return true
	})
	t.Logf("measured: the killed ingest process's report disappeared %s after the kill (lease TTL 2s)", took)
	require.Len(t, members(), 1, "only the serving replica is left")
}

// TestLeaderFailover: one replica leads (runs the singleton jobs); killed
// with SIGKILL, its lease expires and the other replica takes over.
// leading reads a replica's readiness report: whether it leads, and who
// does.
func leading(base string) (bool, string) {
	res, err := http.Get("http://" + base + "/-/ready")
	if err != nil {
		return false, ""
	}
	defer res.Body.Close()
	var rep struct {
		Components map[string]struct {
			Detail struct {
				Leading bool   `json:"leading"`
				Leader  string `json:"leader"`
			} `json:"detail"`
		} `json:"components"`
	}
	if json.NewDecoder(res.Body).Decode(&rep) != nil {
		return false, ""
	}
	d := rep.Components["leader"].Detail
	return d.Leading, d.Leader
}

func TestLeaderFailover(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	env := replicaEnv(ns)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	// Replica A: a real `triad serve` process, started first so it leads.
	cmd := startServeProcess(t, env, addr)
	until(t, 60*time.Second, "the serve process leads", func() bool { l, _ := leading(addr); return l })

	b := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, b)
	until(t, 10*time.Second, "B sees A as the leader", func() bool { _, who := leading(b.Addr); return strings.HasSuffix(who, "@"+addr) })
	for range 10 {
		l, _ := leading(b.Addr)
		require.False(t, l, "one leader at a time")
		time.Sleep(20 * time.Millisecond)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	took := until(t, 30*time.Second, "B takes over", func() bool { l, _ := leading(b.Addr); return l })
	t.Logf("measured: B led %s after the leader was killed (lease TTL 2s)", took)
	require.Contains(t, metrics(t, b), "triad_leader 1")
}
