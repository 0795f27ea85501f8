package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestCheckThroughTheAPI: `triad check` asks a running replica; a document
// deleted behind triad's back comes out as missing, an unknown key as
// absent; bad requests are 4xx with a clear message.
func TestCheckThroughTheAPI(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(1, 3, "a")+"\n"+profileLine(2, 3, "b")))
	require.Equal(t, http.StatusOK, code, body)
	flags := []string{"--server", "http://" + a.Addr, "--token", replicaToken}
	until(t, 30*time.Second, "derived stores written", func() bool {
		code, _, _ := run(t, nil, append(append([]string{"check"}, flags...), "1", "2")...)
		return code == ExitOK
	})

	res, err := ns.ES().Delete(ns.IndexPrefix+"profiles-v1", "2", ns.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	res.Body.Close()
	code, out, errs := run(t, nil, append(append([]string{"check"}, flags...), "1", "2", "999")...)
	require.Equal(t, ExitPartial, code, out, errs)
	require.Contains(t, out, "3 checked, 1 inconsistent")
	require.Regexp(t, `2\s+elasticsearch\s+no\s+0\s+0\s+missing`, out)
	require.Regexp(t, `999\s+redis\s+no\s+0\s+0\s+absent`, out)

	code, out, _ = run(t, nil, append(append([]string{"check", "--json"}, flags...), "1")...)
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, `"class":"ok"`)

	// Orders: loadgen writes them into their own stores; check by order ID.
	code, _, errs = run(t, replicaEnv(ns), "loadgen", "--entity", "order", "--count", "300", "--ingest")
	require.Equal(t, ExitOK, code, errs)
	require.Contains(t, errs, "orders: 300 written")
	code, out, errs = run(t, nil, append(append([]string{"check", "--entity", "order"}, flags...), "1", "150", "300")...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "3 checked, 0 inconsistent")
	require.NoError(t, ns.Redis().Del(t.Context(), ns.RedisPrefix+"order:150").Err())
	code, out, _ = run(t, nil, append(append([]string{"check", "--entity", "order"}, flags...), "150")...)
	require.Equal(t, ExitPartial, code, out)
	require.Regexp(t, `150\s+redis\s+no\s+0\s+0\s+missing`, out)

	code, _, errs = run(t, nil, append(append([]string{"check", "--entity", "orders"}, flags...), "1")...)
	require.Equal(t, ExitNotFound, code)
	require.Contains(t, errs, `unknown entity "orders"`)
	code, _, errs = run(t, nil, append(append([]string{"check"}, flags...), "1", "-5")...)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errs, "keys[1]")
	code, _, errs = run(t, nil, "check", "--server", "http://"+a.Addr, "--token", "wrong-token-0000000000", "1")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "401")

	// The API directly.
	r := get(t, a, 1) // a profile read, to be sure the route table is live
	require.Equal(t, http.StatusOK, r.code)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("http://%s/api/v1/checks/profile/2", a.Addr), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("X-Triad-Inconsistent"))
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = fmt.Sprint(i + 1)
	}
	code, body = post(t, a, "/api/v1/checks", []byte(`{"entity":"profile","ids":[`+strings.Join(ids, ",")+`]}`))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "1 to 1000 keys, got 1001")
	code, body = post(t, a, "/api/v1/checks", []byte(`{"entity":"profile","ids":[1.5]}`))
	require.Equal(t, http.StatusBadRequest, code, body)
	code, body = post(t, a, "/api/v1/checks", []byte(`{"entity":"nope","ids":[1]}`))
	require.Equal(t, http.StatusNotFound, code, body)
	require.Contains(t, body, "known: [order profile]")

	// A document deleted behind triad's back leaves a tombstone that refuses
	// its external version for index.gc_deletes (60 s): the repair creates
	// the still-absent document instead, at once.
	code, out, errs = run(t, nil, append(append([]string{"repair"}, flags...), "2")...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Regexp(t, `2\s+elasticsearch\s+missing\s+write\s+medium\s+-\s+v3/\S+\s+repaired`, out)
	require.Contains(t, out, "1 repaired")
	code, out, errs = run(t, nil, append(append([]string{"check"}, flags...), "2")...)
	require.Equal(t, ExitOK, code, out, errs)

	// Other content at the same version in the index: a dry run plans the
	// rewrite, the real run does it, a third run finds nothing to do.
	v := 3
	ires, err := ns.ES().Index(ns.IndexPrefix+"profiles", strings.NewReader(`{"user_id":1,"version":3,"digest":7,"digest_version":1,"updated_at":null,"tags":["tampered"],"interests":{},"devices":[],"behavior":[],"props":{}}`),
		ns.ES().Index.WithDocumentID("1"), ns.ES().Index.WithVersion(v), ns.ES().Index.WithVersionType("external_gte"), ns.ES().Index.WithRefresh("true"))
	require.NoError(t, err)
	ires.Body.Close()
	require.False(t, ires.IsError(), ires.String())
	code, out, errs = run(t, nil, append(append([]string{"repair", "--dry-run"}, flags...), "1")...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Regexp(t, `1\s+elasticsearch\s+field_mismatch\s+write\s+medium\s+v3/\S+\s+v3/\S+\s+planned`, out)
	require.Contains(t, out, "1 planned, 0 repaired")
	code, out, errs = run(t, nil, append(append([]string{"repair"}, flags...), "1")...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "0 planned, 1 repaired, 1 no-op")
	code, out, errs = run(t, nil, append(append([]string{"repair"}, flags...), "1")...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "0 repaired, 2 no-op")
	code, _, _ = run(t, nil, append(append([]string{"check"}, flags...), "1")...)
	require.Equal(t, ExitOK, code, "consistent after the repair")

	// The repair log is served; bad parameters are named.
	for path, want := range map[string]int{
		"/api/v1/repairs?entity=profile&limit=10": http.StatusOK, "/api/v1/repairs/runs": http.StatusOK,
		"/api/v1/repairs?limit=5000": http.StatusBadRequest, "/api/v1/repairs?since=yesterday": http.StatusBadRequest,
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+a.Addr+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+replicaToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, "%s: %s", path, b)
		if want == http.StatusOK && strings.Contains(path, "entity") {
			require.Contains(t, string(b), `"key":"1","store":"elasticsearch","class":"field_mismatch","action":"write"`)
		}
	}
}

// TestSweepThroughTheAPI: `triad sweep start --repair --wait` finds planted
// drift and repairs it; pause, resume and cancel act on a running sweep;
// bad requests are 4xx.
func TestSweepThroughTheAPI(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)
	var lines []string
	for id := 1; id <= 600; id++ {
		lines = append(lines, profileLine(int64(id), 3, "x"))
	}
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(strings.Join(lines, "\n")))
	require.Equal(t, http.StatusOK, code, body)
	flags := []string{"--server", "http://" + a.Addr, "--token", replicaToken}
	until(t, 30*time.Second, "derived stores written", func() bool {
		code, _, _ := run(t, nil, append(append([]string{"check"}, flags...), "1", "9", "300", "600")...)
		return code == ExitOK
	})
	// Drift: profile 9's cache copy is an older version (planted after the
	// pipeline wrote it, so no late write undoes it).
	require.NoError(t, ns.Redis().HSet(t.Context(), ns.RedisPrefix+"profile:9", "v", "2").Err())

	code, out, errs := run(t, nil, append([]string{"sweep", "start", "--repair", "--wait", "--segment-size", "100"}, flags...)...)
	require.Equal(t, ExitPartial, code, out, errs)
	require.Regexp(t, `done; ranges 1/1, 7 segments \(\d+ dirty\), 600 records`, out)
	require.Contains(t, out, "1 findings, 1 repaired")
	require.Contains(t, out, "9\tredis\tstale")
	code, out, _ = run(t, nil, append(append([]string{"check"}, flags...), "9")...)
	require.Equal(t, ExitOK, code, out)

	// Control: a sweep of 1-row segments is slow enough to pause.
	code, out, errs = run(t, nil, append([]string{"sweep", "start", "--segment-size", "1"}, flags...)...)
	require.Equal(t, ExitOK, code, out, errs)
	var id int64
	_, err := fmt.Sscanf(out, "sweep %d", &id)
	require.NoError(t, err, out)
	code, out, errs = run(t, nil, append(append([]string{"sweep", "pause"}, flags...), fmt.Sprint(id))...)
	require.Equal(t, ExitOK, code, out, errs)
	require.Contains(t, out, "paused")
	paused := func() int {
		code, out, _ := run(t, nil, append(append([]string{"sweep", "status", "--json"}, flags...), fmt.Sprint(id))...)
		require.Equal(t, ExitOK, code, out)
		var d struct{ Segments int }
		require.NoError(t, json.Unmarshal([]byte(out), &d))
		return d.Segments
	}
	time.Sleep(300 * time.Millisecond) // the segment in progress finishes
	n := paused()
	time.Sleep(time.Second)
	require.Equal(t, n, paused(), "no segment runs while paused")
	code, _, errs = run(t, nil, append(append([]string{"sweep", "resume"}, flags...), fmt.Sprint(id))...)
	require.Equal(t, ExitOK, code, errs)
	took := until(t, 20*time.Second, "the sweep moves again", func() bool { return paused() > n })
	t.Logf("measured: a resumed sweep saved its next segment %s after resume returned (promise 2s)", took)
	code, _, errs = run(t, nil, append(append([]string{"sweep", "cancel"}, flags...), fmt.Sprint(id))...)
	require.Equal(t, ExitOK, code, errs)
	until(t, 20*time.Second, "the cancelled sweep ends", func() bool {
		_, out, _ := run(t, nil, append(append([]string{"sweep", "status"}, flags...), fmt.Sprint(id))...)
		return strings.Contains(out, "cancelled")
	})
	code, _, errs = run(t, nil, append(append([]string{"sweep", "resume"}, flags...), fmt.Sprint(id))...)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errs, "409")

	code, _, errs = run(t, nil, append(append([]string{"sweep", "status"}, flags...), "999999")...)
	require.Equal(t, ExitNotFound, code, "a well-formed ID the server does not know is not a usage error")
	require.Contains(t, errs, "404")
	code, _, errs = run(t, nil, append([]string{"sweep", "start", "--entity", "orders"}, flags...)...)
	require.Equal(t, ExitNotFound, code)
	require.Contains(t, errs, `unknown entity "orders"`)
	code, out, _ = run(t, nil, append([]string{"sweep", "status"}, flags...)...)
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "cancelled")
}
