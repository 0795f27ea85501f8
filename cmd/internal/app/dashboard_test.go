package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

// xss is what the untrusted data (a profile's fields, a span's
// attributes) carries: if any of it ran, window.__xss would be set.
const xss = `<img src=x onerror=window.__xss=1><script>window.__xss=2</script>`

// TestDashboardInBrowser drives the dashboard in Debian's Chromium
// (web/e2e/dashboard.mjs, playwright-core) against a running triad with
// real stores: log in; check a drifted profile and repair it after the
// dry-run preview; filter the repair log; pause and resume a sweep; look
// up a trace and see its flame timeline; add a webhook and test-fire it
// to a local receiver that verifies the signature. Script payloads in a
// profile and in span attributes must show as text. Screenshots go to
// web/e2e/artifacts.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	e2e := filepath.Join("..", "..", "..", "web", "e2e")
	_, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core"))
	require.NoError(t, err, "playwright-core is not installed: run `make e2e-deps` (make test does)")
	artifacts, err := filepath.Abs(filepath.Join(e2e, "artifacts"))
	require.NoError(t, err)

	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	// triad's own spans go to its own receiver: the page follows a repair
	// entry to the trace of the ingest batch that wrote the record.
	cfg.Trace.Self.Endpoint = "self"
	a := startMigrated(t, cfg)
	viewer := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "e2e-viewer", "role": "viewer"}).body["data"].(map[string]any)["secret"].(string)

	// 300 profiles through the pipeline; profile 7 carries script payloads.
	var body bytes.Buffer
	g := ingest.NewGenerator(1)
	for i := int64(0); i < 300; i++ {
		if g.ID(i) == 7 {
			fmt.Fprintf(&body, `{"user_id": 7, "version": %d, "tags": [%q], "props": {"city": %q, "plan": "pro"}}`+"\n", g.Version(i), xss, xss)
			continue
		}
		body.Write(g.AppendJSONL(nil, i))
		body.WriteByte('\n')
	}
	r := call(t, a, http.MethodPost, "/api/v1/profiles/batch", adminToken, body.Bytes())
	require.Equal(t, http.StatusOK, r.code, r.raw)
	key := ns.RedisPrefix + "profile:7"
	require.Eventually(t, func() bool { return ns.Redis().Exists(t.Context(), key).Val() == 1 }, 30*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		c := call(t, a, http.MethodGet, "/api/v1/checks/profile/7", adminToken, nil)
		return c.code == http.StatusOK && c.body["data"].(map[string]any)["consistent"] == true
	}, 30*time.Second, 100*time.Millisecond)
	// Drift: the cached copy's digest changed behind the writer.
	require.NoError(t, ns.Redis().HSet(t.Context(), key, "d", "12345").Err())
	// And another profile's cached tags, for the page's reviewed plan.
	planned := g.ID(5)
	if planned == 7 {
		planned = g.ID(6)
	}
	plannedKey := ns.RedisPrefix + fmt.Sprintf("profile:%d", planned)
	require.Eventually(t, func() bool { // the pipeline is done with it
		c := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/checks/profile/%d", planned), adminToken, nil)
		return c.code == http.StatusOK && c.body["data"].(map[string]any)["consistent"] == true
	}, 30*time.Second, 100*time.Millisecond)
	require.NoError(t, ns.Redis().HSet(t.Context(), plannedKey, "tags", `["changed-behind-triad"]`).Err())
	pd := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/checks/profile/%d", planned), adminToken, nil)
	require.Equal(t, false, pd.body["data"].(map[string]any)["consistent"], "profile %d drifted: %s", planned, pd.raw)

	// A trace whose spans carry script payloads, over OTLP/HTTP JSON.
	traceID := "5b8efff798038103d269b633813fc60c"
	now := time.Now()
	span := func(id, parent, name string, from, to time.Duration) map[string]any {
		return map[string]any{"traceId": traceID, "spanId": id, "parentSpanId": parent, "name": name, "kind": 2,
			"startTimeUnixNano": fmt.Sprint(now.Add(from).UnixNano()), "endTimeUnixNano": fmt.Sprint(now.Add(to).UnixNano()),
			"attributes": []any{map[string]any{"key": "comment", "value": map[string]any{"stringValue": xss}}}}
	}
	otlp, err := json.Marshal(map[string]any{"resourceSpans": []any{map[string]any{
		"resource": map[string]any{"attributes": []any{
			map[string]any{"key": "service.name", "value": map[string]any{"stringValue": "checkout-go"}},
			map[string]any{"key": "telemetry.sdk.language", "value": map[string]any{"stringValue": "go"}}}},
		"scopeSpans": []any{map[string]any{"spans": []any{
			span("0000000000000001", "", "GET /checkout", 0, 80*time.Millisecond),
			span("0000000000000002", "0000000000000001", "quote", 10*time.Millisecond, 50*time.Millisecond),
			span("0000000000000003", "0000000000000002", "price", 20*time.Millisecond, 40*time.Millisecond)}}}}}})
	require.NoError(t, err)
	res, err := http.Post("http://"+a.OTLPHTTPAddr+"/v1/traces", "application/json", bytes.NewReader(otlp))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	// The webhook receiver: it checks every signature with the secret the
	// page will give the webhook.
	const secret = "e2e-webhook-secret-0123456789"
	rc := &receiver{t: t, secret: secret}
	hook := httptest.NewServer(rc)
	defer hook.Close()

	node := exec.Command("node", "dashboard.mjs")
	node.Dir = e2e
	node.Env = append(os.Environ(), "BASE_URL=http://"+a.Addr, "ADMIN_TOKEN="+adminToken, "VIEWER_TOKEN="+viewer,
		"TRACE_ID="+traceID, fmt.Sprintf("PLAN_ID=%d", planned), "HOOK_URL="+hook.URL+"/triad", "HOOK_SECRET="+secret, "ARTIFACTS="+artifacts)
	out, err := node.CombinedOutput()
	require.NoError(t, err, "browser test:\n%s", out)
	t.Logf("browser test (screenshots in %s):\n%s", artifacts, out)

	// What the page did, seen from the other side.
	var tests []received
	for _, x := range rc.snapshot() {
		if x.event == "test" {
			tests = append(tests, x)
		}
	}
	require.Len(t, tests, 1, "one test-fire reached the receiver")
	require.NoError(t, tests[0].verified, "its signature verifies")
	require.Equal(t, "TriadTest", tests[0].body["groupLabels"].(map[string]any)["alertname"])
	pc := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/checks/profile/%d", planned), adminToken, nil)
	require.Equal(t, true, pc.body["data"].(map[string]any)["consistent"], "the page's applied plan repaired the planned profile")
	c := call(t, a, http.MethodGet, "/api/v1/checks/profile/7", adminToken, nil)
	require.Equal(t, true, c.body["data"].(map[string]any)["consistent"], "the page's repair fixed the drift")
	// The page read profile 7 before the repair (its drifted copy is in
	// the read path's cache, for 5 minutes by default): the repair's
	// announcement on the change feed drops it, though the version did
	// not change.
	began := time.Now()
	require.Eventually(t, func() bool {
		p := call(t, a, http.MethodGet, "/api/v1/profiles/7", adminToken, nil)
		return p.code == http.StatusOK && p.body["data"].(map[string]any)["digest"] != float64(12345)
	}, 10*time.Second, 20*time.Millisecond, "the read path still serves the repaired copy's old content")
	t.Logf("read path served the repaired copy %s after the browser test ended", time.Since(began).Round(time.Millisecond))
	log := call(t, a, http.MethodGet, "/api/v1/repairs?key=7&outcome=repaired", adminToken, nil).body["data"].(map[string]any)["entries"].([]any)
	require.Len(t, log, 1)
	require.Equal(t, "redis", log[0].(map[string]any)["store"])
	runs := call(t, a, http.MethodGet, "/api/v1/repairs/runs", adminToken, nil).raw
	require.Contains(t, runs, `"trigger":"ui"`)
	audit := call(t, a, http.MethodGet, "/api/v1/audit?actor=bootstrap-admin&limit=1000", adminToken, nil).raw
	for _, route := range []string{"/api/v1/repairs", "/api/v1/sweeps/:id/pause", "/api/v1/sweeps/:id/resume", "/api/v1/webhooks/:id/test"} {
		require.Contains(t, audit, `"route":"`+route+`"`, "the page's mutations are audited")
	}
	require.True(t, strings.Contains(audit, `"via":"session"`))
	for _, f := range []string{"login.png", "check-drift.png", "check-repaired.png", "repairs-filtered.png", "sweep-paused.png", "write-trace.png", "plan-review.png", "trace.png", "silence-active.png", "silence-expired.png", "alerts-test-fired.png"} {
		st, err := os.Stat(filepath.Join(artifacts, f))
		require.NoError(t, err, f)
		require.Greater(t, st.Size(), int64(1000), f)
	}
}
