package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestThreeReplicasOnAThreeMemberEtcd: three replicas (A and B real
// `triad serve` processes, C in-process) coordinate through a
// three-member etcd. They share a repairing sweep range by range (the
// distribution is logged and each does some); A is killed with SIGKILL
// while it holds a range, and the sweep still ends with every range done,
// every row compared once and each planted drift repaired once. Then the
// etcd member that leads the raft group is killed: triad's leadership
// carries on (one leader among B and C) and a dataset switch still
// reaches both.
func TestThreeReplicasOnAThreeMemberEtcd(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cl := stacktest.StartCluster(t, "etcd")
	env := append(replicaEnv(ns), "TRIAD_ETCD_ENDPOINTS="+strings.Join(cl.Endpoints.EtcdEndpoints, ","),
		"TRIAD_ETCD_DIAL_TIMEOUT=1s", "TRIAD_ETCD_KEEP_ALIVE=1s",
		"TRIAD_REPAIR_SWEEP_RANGE_SEGMENTS=20", "TRIAD_REPAIR_SWEEP_RECHECK=200ms")
	cfg := replicaConfig(t, ns)
	cfg.Etcd.Endpoints, cfg.Etcd.DialTimeout, cfg.Etcd.KeepAlive = cl.Endpoints.EtcdEndpoints, time.Second, time.Second
	cfg.Repair.Sweep.RangeSegments, cfg.Repair.Sweep.Recheck = 20, 200*time.Millisecond
	c := startReplica(t, cfg)
	awaitReady(t, c)
	const rows = 6000
	code, _, errs := run(t, env, "loadgen", "--count", strconv.Itoa(rows), "--ingest", "--progress", "never")
	require.Equal(t, ExitOK, code, errs)

	addrs := make([]string, 2)
	procs := make([]*exec.Cmd, 2)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addrs[i] = ln.Addr().String()
		require.NoError(t, ln.Close())
		procs[i] = startServeProcess(t, env, addrs[i])
	}
	for _, addr := range addrs {
		until(t, 60*time.Second, addr+" is ready", func() bool {
			res, err := http.Get("http://" + addr + "/-/ready")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		})
	}
	a, b := addrs[0], addrs[1]

	ctx := t.Context()
	var planted []string
	for id := int64(50); id <= rows; id += 100 {
		key := fmt.Sprintf("%sprofile:%d", ns.RedisPrefix, id)
		require.NoError(t, ns.Redis().HSet(ctx, key, "d", "12345").Err())
		planted = append(planted, strconv.FormatInt(id, 10))
	}

	body, err := json.Marshal(map[string]any{"entity": "profile", "mode": "digest", "repair": true, "segment_size": 25, "rate": 300})
	require.NoError(t, err)
	code, out := post(t, c, "/api/v1/sweeps", body)
	require.Equal(t, http.StatusCreated, code, out)
	var started struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &started))
	id := started.Data.ID

	// Every replica takes ranges; A is killed holding one mid-way.
	owners := []string{"@" + a, "@" + b, "@" + c.Addr}
	until(t, 60*time.Second, "all three replicas hold or finished a range", func() bool {
		for _, o := range owners {
			var n int
			if ns.Pool().QueryRow(ctx, `SELECT count(*) FROM sweep_ranges WHERE sweep_id = $1 AND owner LIKE '%' || $2 AND cursor > lo`, id, o).Scan(&n) != nil || n == 0 {
				return false
			}
		}
		return true
	})
	var lo int64
	until(t, 60*time.Second, "A holds a range mid-way", func() bool {
		return ns.Pool().QueryRow(ctx, `SELECT lo FROM sweep_ranges WHERE sweep_id = $1 AND state = 'running'
			AND owner LIKE '%' || $2 AND cursor > lo`, id, owners[0]).Scan(&lo) == nil
	})
	// Who has worked which ranges so far (done, or running with progress).
	worked := func() map[string]int {
		out := map[string]int{}
		for i, o := range owners {
			var n int
			require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT count(*) FROM sweep_ranges WHERE sweep_id = $1 AND owner LIKE '%' || $2 AND cursor > lo`, id, o).Scan(&n))
			out[[]string{"A", "B", "C"}[i]] = n
		}
		return out
	}
	before := worked()
	t.Logf("measured: ranges worked by replica when A was killed: %v", before)
	for _, r := range []string{"A", "B", "C"} {
		require.Positive(t, before[r], "replica %s took ranges", r)
	}
	require.NoError(t, procs[0].Process.Signal(syscall.SIGKILL))
	_ = procs[0].Wait()
	var state string
	took := until(t, 120*time.Second, "B and C finish the sweep", func() bool {
		return ns.Pool().QueryRow(ctx, `SELECT state FROM sweeps WHERE id = $1 AND finished_at IS NOT NULL`, id).Scan(&state) == nil
	})
	t.Logf("measured: the sweep finished %s after A was killed", took.Round(time.Millisecond))
	require.Equal(t, "done", state)
	var ranges, done, records, findings, repaired int
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT ranges, ranges_done, records, findings, repaired FROM sweeps WHERE id = $1`, id).
		Scan(&ranges, &done, &records, &findings, &repaired))
	require.Equal(t, ranges, done, "no range lost")
	require.Equal(t, rows, records, "every row compared exactly once")
	require.Equal(t, len(planted), findings)
	require.Equal(t, len(planted), repaired)
	var attempts int
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT attempts FROM sweep_ranges WHERE sweep_id = $1 AND lo = $2`, id, lo).Scan(&attempts))
	require.Equal(t, 2, attempts, "A's range was taken over once")
	dist := map[string]int{}
	for i, o := range owners {
		var n int
		require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT count(*) FROM sweep_ranges WHERE sweep_id = $1 AND owner LIKE '%' || $2`, id, o).Scan(&n))
		dist[[]string{"A", "B", "C"}[i]] = n
	}
	t.Logf("measured: %d ranges finished by replica (A killed mid-sweep): %v", ranges, dist)
	require.Positive(t, dist["B"])
	require.Positive(t, dist["C"])
	rowsOf, err := ns.Pool().Query(ctx, `SELECT key, count(*) FROM repair_log WHERE entity = 'profile' AND outcome = 'repaired' GROUP BY key`)
	require.NoError(t, err)
	perKey := map[string]int{}
	for rowsOf.Next() {
		var k string
		var n int
		require.NoError(t, rowsOf.Scan(&k, &n))
		perKey[k] = n
	}
	require.NoError(t, rowsOf.Err())
	for _, k := range planted {
		require.Equal(t, 1, perKey[k], "profile %s repaired once", k)
	}

	// The etcd member leading the raft group dies.
	ec, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints.EtcdEndpoints, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer ec.Close()
	leaderMember := ""
	for i, ep := range cl.Endpoints.EtcdEndpoints {
		st, err := ec.Status(ctx, ep)
		require.NoError(t, err)
		if st.Leader == st.Header.MemberId {
			leaderMember = fmt.Sprintf("etcd-%d", i+1)
		}
	}
	require.NotEmpty(t, leaderMember)
	cl.Kill(t, leaderMember)
	killed := time.Now()
	leaders := func() (n int) {
		for _, addr := range []string{b, c.Addr} {
			if l, _ := leading(addr); l {
				n++
			}
		}
		return n
	}
	until(t, 60*time.Second, "one of B and C leads", func() bool { return leaders() == 1 })
	t.Logf("measured: %s (the raft leader) killed: one triad leader %s later", leaderMember, time.Since(killed).Round(time.Millisecond))
	for range 20 {
		require.LessOrEqual(t, leaders(), 1, "never two leaders")
		time.Sleep(50 * time.Millisecond)
	}

	// A dataset switch with one member of three gone.
	code, out, errs = run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "built version 2")
	code, out, errs = run(t, env, "dataset", "switch", "2")
	require.Equal(t, ExitOK, code, out, errs)
	until(t, 30*time.Second, "B and C serve version 2", func() bool {
		return servedDataset(ctx, b, 1500) == 2 && servedDataset(ctx, c.Addr, 1500) == 2
	})
}

// TestElasticsearchNodeLostWithReplicas: a replica writes profiles to a
// three-node Elasticsearch whose index has 2 shards with a replica each.
// The elected master node is killed with SIGKILL mid-ingest: writes go on, readiness
// shows the cluster yellow (with the reason), then green once the node is
// back; nothing is lost: every acknowledged profile is in the index and
// matches Postgres (dataset verify), with the outbox and catch-up empty.
func TestElasticsearchNodeLostWithReplicas(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cl := stacktest.StartCluster(t, "elasticsearch")
	es := cl.Endpoints.ElasticsearchURLs
	env := append(replicaEnv(ns), "TRIAD_ELASTICSEARCH_ADDRESSES="+strings.Join(es, ","),
		"TRIAD_PROFILE_INDEX_SHARDS=2", "TRIAD_PROFILE_INDEX_REPLICAS=1")
	cfg := replicaConfig(t, ns)
	cfg.Elasticsearch.Addresses, cfg.Elasticsearch.MaxRetries = es, 2
	cfg.ProfileIndex.Shards, cfg.ProfileIndex.Replicas = 2, 1
	a := startReplica(t, cfg)
	awaitReady(t, a)
	health := func() (string, string) {
		res, err := http.Get("http://" + a.Addr + "/-/ready")
		if err != nil {
			return "", ""
		}
		defer res.Body.Close()
		var rep struct {
			Dependencies map[string]struct {
				Health string `json:"health"`
				Note   string `json:"health_note"`
			} `json:"dependencies"`
		}
		if json.NewDecoder(res.Body).Decode(&rep) != nil {
			return "", ""
		}
		d := rep.Dependencies["elasticsearch"]
		return d.Health, d.Note
	}
	until(t, 60*time.Second, "elasticsearch green", func() bool { h, _ := health(); return h == "green" })

	// A writer: 200 profiles a batch through the replica, acknowledged IDs
	// counted.
	ctx := t.Context()
	stop := streamProfiles(ctx, a, 1, "es-node-lost", 50*time.Millisecond, nil)
	time.Sleep(2 * time.Second)
	// The elected master: the hardest node to lose.
	res, err := http.Get(es[0] + "/_cat/master?h=node")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	victim := strings.TrimSpace(string(b))
	require.True(t, strings.HasPrefix(victim, "elasticsearch-"), "master %q", victim)
	cl.Kill(t, victim)
	killed := time.Now()
	var note string
	until(t, 60*time.Second, "readiness shows elasticsearch yellow", func() bool { h, n := health(); note = n; return h == "yellow" })
	t.Logf("measured: %s (the elected master) killed: readiness yellow after %s (%s)", victim, time.Since(killed).Round(time.Millisecond), note)
	time.Sleep(3 * time.Second) // writes go on without it
	cl.Start(t, victim)
	restarted := time.Now()
	until(t, 120*time.Second, "readiness shows elasticsearch green again", func() bool { h, _ := health(); return h == "green" })
	t.Logf("measured: %s restarted: green after %s", victim, time.Since(restarted).Round(time.Millisecond))
	last := stop()
	require.Greater(t, last, int64(2000), "writes went on")
	awaitNothingOwed(t, ns)
	code, out, errs := run(t, env, "dataset", "verify", "1")
	require.Equal(t, ExitOK, code, "every acknowledged profile is in the index and matches Postgres: %s %s", out, errs)
	// Asked of a node that was never killed.
	alive := es[0]
	if victim == "elasticsearch-1" {
		alive = es[1]
	}
	res, err = http.Get(alive + "/" + ns.IndexPrefix + "profiles/_count")
	require.NoError(t, err)
	var count struct {
		Count int64 `json:"count"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&count))
	res.Body.Close()
	require.GreaterOrEqual(t, count.Count, last, "no acknowledged profile lost")
	t.Logf("measured: %d profiles acknowledged, %d in the index, verify: %s", last, count.Count, strings.TrimSpace(out))
}

// TestProfilesOnARedisCluster is the cluster lane's end-to-end test: a
// replica whose Redis is a Redis Cluster (3 masters, 3 replicas) through
// redis.addrs. Profiles stream in through the batch endpoint; a Redis
// master is killed with SIGKILL mid-ingest and a replica takes over. After
// the failover (seen as a loss: StoreDataLoss, and a re-warm) every
// acknowledged profile is in Redis, Elasticsearch and Postgres alike
// (dataset verify), the catch-up log and the outbox are empty, the read path and checks answer from the cluster, and drift
// planted with HSET on the cluster is found and repaired once by a sweep.
func TestProfilesOnARedisCluster(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cl, cfg, env, rc := onRedisCluster(t, ns)
	// A failover is a loss (replication is asynchronous): the watch sees a
	// new master and re-warms; looked for often here.
	cfg.Ingest.RedisWatch, cfg.Alert.Interval = 500*time.Millisecond, 200*time.Millisecond
	a := startReplica(t, cfg)
	awaitReady(t, a)
	ctx := t.Context()

	stop := streamProfiles(ctx, a, 1, "redis-cluster", 50*time.Millisecond, nil)
	time.Sleep(2 * time.Second)
	// A master dies.
	victim := masterMember(t, rc, cl)
	cl.Kill(t, victim)
	killed := time.Now()
	time.Sleep(8 * time.Second) // failover (cluster-node-timeout 3 s) while writes go on
	last := stop()
	require.Greater(t, last, int64(2000), "writes went on")
	cl.Start(t, victim) // back, as a replica
	t.Logf("measured: %s (a master) killed mid-ingest; %d profiles acknowledged; restarted after %s", victim, last, time.Since(killed).Round(time.Millisecond))

	noticed := until(t, 60*time.Second, "the failover is noticed as a loss (StoreDataLoss)", func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.Addr+"/api/v1/alerts", nil)
		req.Header.Set("Authorization", "Bearer "+replicaToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return strings.Contains(string(b), `"StoreDataLoss"`)
	})
	t.Logf("measured: the failover listed as StoreDataLoss %s after the restart", noticed.Round(time.Millisecond))
	drained := awaitNothingOwed(t, ns)
	t.Logf("measured: catch-up (the writes that failed over, and the re-warm) and outbox empty %s later", drained.Round(time.Millisecond))
	code, out, errs := run(t, env, "dataset", "verify", "1")
	require.Equal(t, ExitOK, code, "the three stores agree: %s %s", out, errs)
	require.Contains(t, out, "redis 0 missing, 0 stale")
	inRedis, err := stacktest.RedisKeys(ctx, rc, ns.RedisPrefix+"profile:*")
	require.NoError(t, err)
	require.GreaterOrEqual(t, int64(len(inRedis)), last, "every acknowledged profile is in the cluster")

	// The read path and checks, through the cluster.
	for _, id := range []int64{1, last / 2, last} {
		r := get(t, a, id)
		require.Equal(t, http.StatusOK, r.code, "profile %d", id)
	}
	body, err := json.Marshal(map[string]any{"entity": "profile", "ids": []int64{1, 2, 3, last}})
	require.NoError(t, err)
	code, resp := post(t, a, "/api/v1/checks", body)
	require.Equal(t, http.StatusOK, code, resp)
	require.NotContains(t, resp, `"drift"`)

	// Drift written on the cluster with HSET; a repairing sweep finds and
	// repairs exactly it.
	var planted []int64
	for id := int64(100); id <= 2000; id += 100 {
		require.NoError(t, rc.HSet(ctx, fmt.Sprintf("%sprofile:%d", ns.RedisPrefix, id), "tags", `["tampered"]`).Err())
		planted = append(planted, id)
	}
	code, out, errs = run(t, nil, "sweep", "start", "--server", "http://"+a.Addr, "--token", replicaToken, "--mode", "digest", "--repair", "--wait")
	require.Equal(t, ExitPartial, code, "a sweep that finds drift exits 3: %s %s", out, errs)
	require.Contains(t, out, fmt.Sprintf("%d findings, %d repaired", len(planted), len(planted)))
	code, out, errs = run(t, nil, "sweep", "start", "--server", "http://"+a.Addr, "--token", replicaToken, "--mode", "digest", "--wait")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "0 findings", "repaired")

	// A master hangs (SIGSTOP, not dead) for 10 s mid-ingest, past the
	// cluster's node timeout (3 s), so the cluster fails it over while it
	// hangs. triad's writes to its slots time out into the catch-up log,
	// the other writes go on, and every read answers (from Postgres where
	// Redis does not) within the request deadline; once it resumes (now a
	// replica) nothing is owed and the stores agree.
	hung := masterMember(t, rc, cl)
	stop = streamProfiles(ctx, a, last+1, "hung-member", 50*time.Millisecond, nil)
	time.Sleep(time.Second)
	cl.Pause(t, hung)
	paused := time.Now()
	var slowest time.Duration
	var owedToRedis int64 // the most the catch-up log held for Redis: the hang reached triad's writes
	reads := 0
	for time.Since(paused) < 10*time.Second {
		start := time.Now()
		r := get(t, a, 1+int64(reads*97)%last)
		require.Equal(t, http.StatusOK, r.code, "a read while a master hangs: %s", r.body)
		slowest = max(slowest, time.Since(start))
		reads++
		var n int64
		_ = ns.Pool().QueryRow(ctx, `SELECT count(*) FROM profile_catchup WHERE store = 'redis'`).Scan(&n)
		owedToRedis = max(owedToRedis, n)
		time.Sleep(50 * time.Millisecond)
	}
	cl.Resume(t, hung)
	after := stop()
	require.Greater(t, after, last+2000, "writes went on while a master hung")
	require.Less(t, slowest, cfg.Server.RequestTimeout, "every read answered within the request deadline")
	require.Positive(t, owedToRedis, "writes to the hung master's slots went to the catch-up log")
	drained = awaitNothingOwed(t, ns)
	code, out, errs = run(t, env, "dataset", "verify", "1")
	require.Equal(t, ExitOK, code, "the three stores agree after the hang: %s %s", out, errs)
	inRedis, err = stacktest.RedisKeys(ctx, rc, ns.RedisPrefix+"profile:*")
	require.NoError(t, err)
	require.GreaterOrEqual(t, int64(len(inRedis)), after, "every acknowledged profile is in the cluster")
	t.Logf("measured: %s (a master) hung 10 s mid-ingest: %d profiles acknowledged meanwhile (up to %d owed to Redis in the catch-up log), %d reads, the slowest %s; nothing owed %s after it resumed",
		hung, after-last, owedToRedis, reads, slowest.Round(time.Millisecond), drained.Round(time.Millisecond))
}

// masterMember is the first cluster member (redis-N) that says it is a
// master (ROLE, asked of each member itself: another node's CLUSTER NODES
// can still show a restarted master as one) and serves slots.
func masterMember(t *testing.T, rc *redis.ClusterClient, cl *stacktest.Cluster) string {
	t.Helper()
	for i, addr := range cl.Endpoints.RedisAddrs {
		c := redis.NewClient(&redis.Options{Addr: addr})
		role, err := c.Do(t.Context(), "ROLE").Slice()
		var id string
		if err == nil && len(role) > 0 && role[0] == "master" {
			id, err = c.ClusterMyID(t.Context()).Result()
		}
		_ = c.Close()
		if err == nil && id != "" && slotsOf(t, rc, id) > 0 {
			return fmt.Sprintf("redis-%d", i+1)
		}
	}
	t.Fatal("no member is a master serving slots")
	return ""
}

// TestRedisClusterReshardMidIngest moves 2,000 slots between masters
// (redis-cli --cluster reshard: keys migrate while clients are redirected
// with MOVED and ASK) while profiles stream in, and older versions of
// profiles already written are sent again: afterwards every acknowledged
// profile is in Redis at its newest version (the version guard held
// through redirections), the stores agree and nothing is owed.
func TestRedisClusterReshardMidIngest(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cl, cfg, env, rc := onRedisCluster(t, ns)
	a := startReplica(t, cfg)
	awaitReady(t, a)
	ctx := t.Context()

	// Version 2 of profiles 1–2000 first.
	var lines []string
	for id := int64(1); id <= 2000; id++ {
		lines = append(lines, profileLine(id, 2, "v2"))
	}
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(strings.Join(lines, "\n")))
	require.Equal(t, http.StatusOK, code, body)

	// New profiles, each batch with version 1 of 200 profiles that have
	// version 2 (stale: the guard must refuse them).
	stop := streamProfiles(ctx, a, 2001, "during-reshard", 0, func(next int64) []string {
		var stale []string
		for id := (next/200)%10*200 + 1; id <= (next/200)%10*200+200; id++ {
			stale = append(stale, profileLine(id, 1, "stale"))
		}
		return stale
	})
	time.Sleep(time.Second)
	masters := masterIDs(t, rc)
	require.Len(t, masters, 3)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "redis-cli", "--cluster", "reshard", cl.Endpoints.RedisAddrs[0],
		"--cluster-from", masters[0], "--cluster-to", masters[1], "--cluster-slots", "2000", "--cluster-yes").CombinedOutput()
	require.NoError(t, err, "%s", lastLinesOf(string(out), 10))
	took := time.Since(start)
	require.Greater(t, slotsOf(t, rc, masters[1]), 5461+1900, "the slots moved to %s", masters[1])
	time.Sleep(time.Second)
	last := stop()
	t.Logf("measured: 2000 slots moved in %s; %d new profiles acknowledged from 1 s before the move to 1 s after it", took.Round(time.Millisecond), last-2000)
	require.Greater(t, last, int64(4000), "writes went on during the reshard")

	awaitNothingOwed(t, ns)
	code, vout, errs := run(t, env, "dataset", "verify", "1")
	require.Equal(t, ExitOK, code, "the three stores agree: %s %s", vout, errs)
	for id := int64(1); id <= 2000; id += 37 {
		v, err := rc.HGet(ctx, fmt.Sprintf("%sprofile:%d", ns.RedisPrefix, id), "v").Int64()
		require.NoError(t, err)
		require.EqualValues(t, 2, v, "profile %d keeps its newest version", id)
	}
	for id := int64(2001); id <= last; id += 97 {
		require.EqualValues(t, 1, rc.Exists(ctx, fmt.Sprintf("%sprofile:%d", ns.RedisPrefix, id)).Val(), "acknowledged profile %d is in Redis", id)
	}
}

// masterIDs are the Redis Cluster's masters' node IDs (failed ones left
// out), sorted.
func masterIDs(t *testing.T, rc *redis.ClusterClient) []string {
	t.Helper()
	txt, err := rc.ClusterNodes(t.Context()).Result()
	require.NoError(t, err)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.Contains(f[2], "master") && !strings.Contains(f[2], "fail") {
			out = append(out, f[0])
		}
	}
	slices.Sort(out)
	return out
}

// slotsOf counts the slots a master serves (CLUSTER NODES' ranges).
func slotsOf(t *testing.T, rc *redis.ClusterClient, id string) int {
	t.Helper()
	txt, err := rc.ClusterNodes(t.Context()).Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != id {
			continue
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue // a slot being migrated
			}
			lo, hi, found := strings.Cut(r, "-")
			a, _ := strconv.Atoi(lo)
			b := a
			if found {
				b, _ = strconv.Atoi(hi)
			}
			n += b - a + 1
		}
	}
	return n
}

// lastLinesOf is the last n lines of s.
func lastLinesOf(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestDatasetVersionsOnARedisCluster: a dataset build, switch and gc with
// Redis a Redis Cluster: version 2's keys are written on every master,
// the replica serves version 2, and gc removes version 1's keys from
// every master (a SCAN walks one node: gc walks each).
func TestDatasetVersionsOnARedisCluster(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	_, cfg, env, rc := onRedisCluster(t, ns)
	a := startReplica(t, cfg)
	awaitReady(t, a)
	const rows = 3000
	code, _, errs := run(t, env, "loadgen", "--count", strconv.Itoa(rows), "--ingest", "--progress", "never")
	require.Equal(t, ExitOK, code, errs)
	perMaster := func(pattern string) map[string]int {
		out := map[string]int{}
		var mu sync.Mutex
		require.NoError(t, rc.ForEachMaster(t.Context(), func(ctx context.Context, m *redis.Client) error {
			keys, err := m.Keys(ctx, pattern).Result()
			mu.Lock()
			out[m.Options().Addr] = len(keys)
			mu.Unlock()
			return err
		}))
		return out
	}
	sum := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	v1 := perMaster(ns.RedisPrefix + "profile:*")
	require.Equal(t, rows, sum(v1))

	code, out, errs := run(t, env, "dataset", "build")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "built version 2")
	v2 := perMaster(ns.RedisPrefix + "v2:profile:*")
	require.Equal(t, rows, sum(v2))
	require.Len(t, v2, 3)
	for addr, n := range v2 {
		require.Positive(t, n, "version 2 has keys on master %s", addr)
	}
	code, out, errs = run(t, append(env, "TRIAD_DATASET_RETIRE_AFTER=0s"), "dataset", "switch", "2")
	require.Equal(t, ExitOK, code, out, errs)
	until(t, 10*time.Second, "the replica serves version 2", func() bool { return get(t, a, 1500).dataset == 2 })
	code, out, errs = run(t, env, "dataset", "gc")
	require.Equal(t, ExitOK, code, out, errs)
	require.Zero(t, sum(perMaster(ns.RedisPrefix+"profile:*")), "gc removed version 1's keys from every master: %s", out)
	require.Equal(t, rows, sum(perMaster(ns.RedisPrefix+"v2:profile:*")))
	t.Logf("measured: version 1 keys per master %v, version 2 keys per master %v; gc: %s", v1, v2, strings.TrimSpace(out))
}

// streamProfiles posts batches of 200 new profiles (IDs from first up)
// through a's batch endpoint, pause apart, each with extra(next)'s lines
// added when extra is set, until the returned stop is called; stop
// returns the last acknowledged new ID (batches are acknowledged in
// order). It never calls require: it runs outside the test goroutine.
func streamProfiles(ctx context.Context, a *app.App, first int64, tag string, pause time.Duration, extra func(next int64) []string) (stop func() int64) {
	done := make(chan struct{})
	acked := make(chan int64, 1)
	go func() {
		var last int64
		for next := first; ; next += 200 {
			select {
			case <-done:
				acked <- last
				return
			default:
			}
			var lines []string
			for id := next; id < next+200; id++ {
				lines = append(lines, profileLine(id, 1, tag))
			}
			if extra != nil {
				lines = append(lines, extra(next)...)
			}
			if postBatchAsync(ctx, a.Addr, strings.Join(lines, "\n")) == http.StatusOK {
				last = next + 199
			}
			time.Sleep(pause)
		}
	}()
	return func() int64 { close(done); return <-acked }
}

// awaitNothingOwed waits until the catch-up log and the outbox of ns are
// empty and returns how long that took.
func awaitNothingOwed(t *testing.T, ns *stacktest.Namespace) time.Duration {
	t.Helper()
	return until(t, 120*time.Second, "the outbox and the catch-up log drain", func() bool {
		var owed int64
		_ = ns.Pool().QueryRow(t.Context(), `SELECT (SELECT count(*) FROM profile_catchup) + (SELECT count(*) FROM profile_outbox)`).Scan(&owed)
		return owed == 0
	})
}

// onRedisCluster starts a private Redis Cluster (3 masters, 3 replicas)
// and returns it, a replica configuration and a CLI environment of ns
// pointed at it (redis.addrs), and a cluster client for the test's own
// reads and drift.
func onRedisCluster(t *testing.T, ns *stacktest.Namespace) (*stacktest.Cluster, config.Config, []string, *redis.ClusterClient) {
	t.Helper()
	cl := stacktest.StartCluster(t, "redis")
	cfg := replicaConfig(t, ns)
	cfg.Redis.Addrs = cl.Endpoints.RedisAddrs
	env := append(replicaEnv(ns), "TRIAD_REDIS_ADDRS="+strings.Join(cl.Endpoints.RedisAddrs, ","))
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Endpoints.RedisAddrs})
	t.Cleanup(func() { _ = rc.Close() })
	return cl, cfg, env, rc
}
