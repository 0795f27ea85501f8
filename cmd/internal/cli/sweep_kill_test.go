package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestSweepSurvivesAKilledReplica: two replicas (A a real `triad serve`
// process, B in-process) share a repairing sweep range by range under
// etcd leases. A is killed with SIGKILL while it holds a range; once its
// lease lapses B claims that range, resumes it from A's saved cursor and
// finishes the sweep: every range done, every live row compared exactly
// once, exactly the planted drift found, each drifted copy repaired once
// (one repair log entry per key), and a second sweep finds nothing.
func TestSweepSurvivesAKilledReplica(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	env := append(replicaEnv(ns), "TRIAD_REPAIR_SWEEP_RANGE_SEGMENTS=20", "TRIAD_REPAIR_SWEEP_RECHECK=200ms")
	cfg := replicaConfig(t, ns)
	cfg.Repair.Sweep.RangeSegments, cfg.Repair.Sweep.Recheck = 20, 200*time.Millisecond
	b := startReplica(t, cfg)
	awaitReady(t, b)
	code, _, errs := run(t, env, "loadgen", "--count", "4000", "--ingest", "--progress", "never")
	require.Equal(t, ExitOK, code, errs)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := startServeProcess(t, env, addr)
	until(t, 60*time.Second, "A is ready", func() bool {
		res, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})

	// Drift: 40 cached profiles get another digest behind triad's back.
	ctx := t.Context()
	var planted []string
	for id := int64(50); id <= 4000; id += 100 {
		key := fmt.Sprintf("%sprofile:%d", ns.RedisPrefix, id)
		n, err := ns.Redis().Exists(ctx, key).Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, n, key)
		require.NoError(t, ns.Redis().HSet(ctx, key, "d", "12345").Err())
		planted = append(planted, strconv.FormatInt(id, 10))
	}

	// The sweep: segments of 25 rows, ranges of 20 segments (two batches
	// of segments, 500 rows), at most 400 rows/s per replica: each replica
	// holds a range for about a second a batch.
	body, err := json.Marshal(map[string]any{"entity": "profile", "mode": "digest", "repair": true, "segment_size": 25, "rate": 400})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/sweeps", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var started struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&started))
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
	id := started.Data.ID
	require.NotZero(t, id)

	// Kill A while it holds a range with progress saved.
	owner := "@" + addr
	var lo, cursor int64
	until(t, 60*time.Second, "A holds a range mid-way", func() bool {
		err := ns.Pool().QueryRow(ctx, `SELECT lo, cursor FROM sweep_ranges WHERE sweep_id = $1 AND state = 'running'
			AND owner LIKE '%' || $2 AND cursor > lo`, id, owner).Scan(&lo, &cursor)
		return err == nil
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	t.Logf("killed A (pid %d) holding range (%d, ...] at cursor %d", cmd.Process.Pid, lo, cursor)

	// The API says at once that nobody holds A's range any more (its
	// claim lapsed with A's lease), instead of "running" under A until B
	// takes it over.
	orphaned := until(t, 60*time.Second, "B's API shows A's range without a holder", func() bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/api/v1/sweeps/%d", b.Addr, id), nil)
		req.Header.Set("Authorization", "Bearer "+replicaToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var v struct {
			Data struct {
				Ranges []struct {
					Lo     int64   `json:"lo"`
					State  string  `json:"state"`
					Owner  string  `json:"owner"`
					Holder *string `json:"holder"`
				} `json:"ranges_list"`
			} `json:"data"`
		}
		if json.NewDecoder(res.Body).Decode(&v) != nil {
			return false
		}
		for _, rg := range v.Data.Ranges {
			if rg.Lo == lo {
				return rg.State != "running" || (rg.Holder != nil && *rg.Holder == "") || !strings.HasSuffix(rg.Owner, owner)
			}
		}
		return false
	})
	t.Logf("measured: A's range shown without a holder (or taken over) %s after the kill (lease TTL 2s)", orphaned.Round(time.Millisecond))

	var state string
	took := until(t, 120*time.Second, "B finishes the sweep", func() bool {
		err := ns.Pool().QueryRow(ctx, `SELECT state FROM sweeps WHERE id = $1 AND finished_at IS NOT NULL`, id).Scan(&state)
		return err == nil
	})
	t.Logf("measured: the sweep finished %s after A was killed (lease TTL 2s)", took.Round(time.Millisecond))
	require.Equal(t, "done", state)

	var ranges, done, records, findings, repaired int
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT ranges, ranges_done, records, findings, repaired FROM sweeps WHERE id = $1`, id).
		Scan(&ranges, &done, &records, &findings, &repaired))
	require.Equal(t, ranges, done, "no range lost")
	require.Equal(t, 4000, records, "every live row compared exactly once")
	require.Equal(t, len(planted), findings)
	require.Equal(t, len(planted), repaired)
	var attempts int
	var takenBy string
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT attempts, owner FROM sweep_ranges WHERE sweep_id = $1 AND lo = $2`, id, lo).Scan(&attempts, &takenBy))
	require.Equal(t, 2, attempts, "A's range was taken over once")
	require.NotContains(t, takenBy, owner)
	var segments, expected int
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT sum(segments) FROM sweep_ranges WHERE sweep_id = $1`, id).Scan(&segments))
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT segments FROM sweeps WHERE id = $1`, id).Scan(&expected))
	require.Equal(t, expected, segments, "each segment counted once")

	// One repair log entry per planted key: nothing repaired twice.
	rows, err := ns.Pool().Query(ctx, `SELECT key, count(*) FROM repair_log WHERE entity = 'profile' AND outcome = 'repaired' GROUP BY key ORDER BY key`)
	require.NoError(t, err)
	perKey := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		perKey[k] = n
	}
	require.NoError(t, rows.Err())
	require.Len(t, perKey, len(planted))
	for _, k := range planted {
		require.Equal(t, 1, perKey[k], "profile %s repaired once", k)
	}

	// A second sweep finds nothing.
	code, out, errs := run(t, nil, "sweep", "start", "--server", "http://"+b.Addr, "--token", replicaToken, "--mode", "digest", "--wait")
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "0 findings")
}
