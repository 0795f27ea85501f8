package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

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
