package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/trace"
)

// rss reads this process's resident set and its peak (VmRSS, VmHWM) in
// bytes.
func rss(t *testing.T) (now, peak int64) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			now = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return now, peak
}

// costOf runs fn and returns how far the process's peak RSS rose above
// its RSS before. The heap an earlier request left is handed back to the
// kernel first (debug.FreeOSMemory), or a request that fits in memory the
// runtime kept would seem free; then the peak is reset
// (/proc/self/clear_refs 5).
func costOf(t *testing.T, fn func()) int64 {
	t.Helper()
	debug.FreeOSMemory()
	require.NoError(t, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
	before, _ := rss(t)
	fn()
	_, peak := rss(t)
	return peak - before
}

// TestHostileCallers measures what the largest request each role may send
// costs the server (peak RSS), that many at once stay within the
// in-flight budget, that no query outlives the statement timeout, that
// slow-body connections do not keep a real OTLP exporter out, and that a
// viewer never sees a webhook's URL.
func TestHostileCallers(t *testing.T) {
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Server.RateLimit = 0
	cfg.Postgres.StatementTimeout = time.Second
	cfg.Trace.BodyTimeout = 2 * time.Second
	a := startMigrated(t, cfg)
	mint := func(name, role string) string {
		r := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": name, "role": role})
		require.Equal(t, http.StatusCreated, r.code, r.raw)
		return r.body["data"].(map[string]any)["secret"].(string)
	}
	viewer, operator := mint("h-viewer", "viewer"), mint("h-operator", "operator")
	const limit = 64 << 20

	// The largest batch an operator may post: max_body_bytes of JSONL.
	var batch bytes.Buffer
	g := ingest.NewGenerator(51)
	for i := int64(0); batch.Len() < int(cfg.Server.MaxBodyBytes)-4096; i++ {
		batch.Write(g.AppendJSONL(nil, i))
		batch.WriteByte('\n')
	}
	ids := make([]int64, 1000)
	for i := range ids {
		ids[i] = 1 << 40 // the longest IDs the JSON holds
	}
	var attrs []string
	for i := range 16 {
		attrs = append(attrs, "attr="+fmt.Sprintf("k%d=", i)+strings.Repeat("v", 1000))
	}
	// A 50k-span trace (trace.max_trace_spans) for the trace readers below.
	huge := trace.TraceID{0x40, 0x57, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	payload, err := ptraceotlp.NewExportRequestFromTraces(trace.SyntheticTrace(huge, 50000, time.Now().Add(-time.Minute))).MarshalProto()
	require.NoError(t, err)
	res, err := http.Post("http://"+a.OTLPHTTPAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(payload))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	payload = nil
	longName := strings.Repeat("s", 256) // the longest name allowed
	// 200,000 repair-log entries for the export below.
	var run int64
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `INSERT INTO repair_runs (trigger, actor, entity) VALUES ('api', 'h', 'profile') RETURNING id`).Scan(&run))
	_, err = ns.Pool().Exec(t.Context(), `INSERT INTO repair_log (run_id, entity, key, store, class, action, priority, outcome, dedupe_key, fields)
		SELECT $1, 'profile', g::text, 'redis', 'field_mismatch', 'write', 'high', 'repaired', 'h' || g, '{tags,props}' FROM generate_series(1, 200000) g`, run)
	require.NoError(t, err)
	planIDs := make([]int64, repair.MaxPlanKeys)
	for i := range planIDs {
		planIDs[i] = g.ID(int64(i))
	}
	for _, tc := range []struct {
		role, name string
		do         func() int
	}{
		{"viewer", "GET /traces/{id}, 50k spans", func() int {
			return drain(t, a, "/api/v1/traces/"+huge.String(), viewer)
		}},
		{"viewer", "GET /traces/{a}/compare/{b}, two 50k-span traces (read to 25k each)", func() int {
			return drain(t, a, "/api/v1/traces/"+huge.String()+"/compare/"+huge.String(), viewer)
		}},
		{"viewer", "GET /services/graph, 90 days (the longest window)", func() int {
			return call(t, a, http.MethodGet, "/api/v1/services/graph?since=2160h", viewer, nil).code
		}},
		{"viewer", "GET /services, 90 days", func() int {
			return call(t, a, http.MethodGet, "/api/v1/services?since=2160h", viewer, nil).code
		}},
		{"viewer", "GET /services/{256-byte name}/operations, 90 days", func() int {
			return call(t, a, http.MethodGet, "/api/v1/services/"+longName+"/operations?since=2160h", viewer, nil).code
		}},
		{"viewer", "GET /services/{name}/operations, a 50k-span service, 90 days", func() int {
			return call(t, a, http.MethodGet, "/api/v1/services/checkout-go/operations?since=2160h", viewer, nil).code
		}},
		{"operator", "POST /profiles/batch, max_body_bytes (4 MiB)", func() int {
			return call(t, a, http.MethodPost, "/api/v1/profiles/batch", operator, batch.Bytes()).code
		}},
		{"viewer", "GET /repairs?format=ndjson, 200,000 entries streamed", func() int {
			return drain(t, a, "/api/v1/repairs?format=ndjson", viewer)
		}},
		{"viewer", "POST /profiles/lookup, 1000 IDs", func() int {
			return call(t, a, http.MethodPost, "/api/v1/profiles/lookup", viewer, map[string]any{"ids": ids}).code
		}},
		{"viewer", "POST /checks, 1000 IDs", func() int {
			return call(t, a, http.MethodPost, "/api/v1/checks", viewer, map[string]any{"entity": "profile", "ids": ids}).code
		}},
		{"viewer", "GET /traces, 16 attr filters of 1 KiB", func() int {
			return call(t, a, http.MethodGet, "/api/v1/traces?"+strings.Join(attrs, "&"), viewer, nil).code
		}},
		{"viewer", "POST /checks, an 8 MiB ids array", func() int {
			big := []byte(`{"entity": "profile", "ids": [` + strings.Repeat("1,", 4<<20) + `1]}`)
			return call(t, a, http.MethodPost, "/api/v1/checks", viewer, big).code
		}},
	} {
		var code int
		cost := costOf(t, func() { code = tc.do() })
		t.Logf("measured: %s (%s): status %d, peak RSS +%.1f MiB", tc.name, tc.role, code, float64(cost)/(1<<20))
		require.Less(t, code, 500, tc.name)
		require.LessOrEqual(t, cost, int64(limit), "%s costs at most 64 MiB", tc.name)
	}

	// The largest plan an operator may ask for: 10,000 IDs, once the
	// batch above has gone through the pipeline (its derived writes would
	// count here otherwise).
	var left int
	require.Eventually(t, func() bool {
		return ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profile_outbox`).Scan(&left) == nil && left == 0
	}, 60*time.Second, 100*time.Millisecond, "the batch's outbox entries settle")
	var planCode int
	planCost := costOf(t, func() {
		planCode = call(t, a, http.MethodPost, "/api/v1/plans", operator, map[string]any{"entity": "profile", "ids": planIDs}).code
	})
	t.Logf("measured: POST /plans, 10,000 IDs (the most a plan takes) (operator): status %d, peak RSS +%.1f MiB", planCode, float64(planCost)/(1<<20))
	require.Less(t, planCode, 500)
	require.LessOrEqual(t, planCost, int64(limit), "a 10,000-ID plan costs at most 64 MiB")

	// Many at once: 32 maximal batches; the in-flight budget (64 MiB of
	// bodies) refuses what is beyond it with 429.
	codes := map[int]int{}
	var mu sync.Mutex
	cost := costOf(t, func() {
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr+"/api/v1/profiles/batch", bytes.NewReader(batch.Bytes()))
				req.Header.Set("Authorization", "Bearer "+operator)
				res, err := http.DefaultClient.Do(req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					codes[0]++
					return
				}
				res.Body.Close()
				codes[res.StatusCode]++
			})
		}
		wg.Wait()
	})
	t.Logf("measured: 32 concurrent maximal batches: statuses %v, peak RSS +%.1f MiB", codes, float64(cost)/(1<<20))
	require.Positive(t, codes[http.StatusTooManyRequests], "the budget refused some")
	require.Positive(t, codes[http.StatusOK], "the budget let some in")
	require.LessOrEqual(t, cost, int64(4*limit), "32 maximal batches stay within a few times the budget")

	// No query outlives the statement timeout (1 s here), whatever asks.
	var st string
	require.NoError(t, a.Clients.Postgres.QueryRow(t.Context(), "SHOW statement_timeout").Scan(&st))
	require.Equal(t, "1s", st)
	start := time.Now()
	_, err = a.Clients.Postgres.Exec(t.Context(), "SELECT pg_sleep(10)")
	require.ErrorContains(t, err, "statement timeout")
	require.Less(t, time.Since(start), 3*time.Second)

	// Slow bodies do not keep a real exporter out: 32 connections each
	// declare a 1 MiB body and send a byte a second.
	for range 32 {
		conn, err := net.Dial("tcp", a.OTLPHTTPAddr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1048576\r\n\r\n")
		go func() {
			for range 60 {
				if _, err := conn.Write([]byte{0}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	exp, err := otlptracehttp.New(t.Context(), otlptracehttp.WithEndpointURL("http://"+a.OTLPHTTPAddr+"/v1/traces"))
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	_, span := tp.Tracer("hostile-test").Start(context.Background(), "exported-past-slow-bodies")
	traceID := span.SpanContext().TraceID().String()
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, tp.Shutdown(ctx), "the exporter's request was taken while 32 slow bodies were open")
	require.Eventually(t, func() bool {
		return call(t, a, http.MethodGet, "/api/v1/traces/"+traceID, viewer, nil).code == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond)

	// Webhook URLs (which may carry tokens) never reach a viewer.
	hook := "http://127.0.0.1:1/hooks/T0KEN-in-path?token=s3cr3t"
	w := call(t, a, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "pager", "url": hook, "format": "json"})
	require.Equal(t, http.StatusCreated, w.code, w.raw)
	require.Equal(t, http.StatusOK, call(t, a, http.MethodPost, "/api/v1/webhooks/pager/test", adminToken, nil).code)
	require.Equal(t, http.StatusForbidden, call(t, a, http.MethodGet, "/api/v1/webhooks", viewer, nil).code)
	require.Eventually(t, func() bool {
		d := call(t, a, http.MethodGet, "/api/v1/alerts/deliveries", viewer, nil)
		return d.code == http.StatusOK && strings.Contains(d.raw, "last_error")
	}, 30*time.Second, 200*time.Millisecond, "the test delivery failed and says why")
	for _, path := range []string{"/api/v1/alerts/deliveries", "/api/v1/alerts"} {
		r := call(t, a, http.MethodGet, path, viewer, nil)
		require.Equal(t, http.StatusOK, r.code)
		require.NotContains(t, r.raw, "T0KEN", path)
		require.NotContains(t, r.raw, "s3cr3t", path)
	}
}

// drain GETs path and discards the answer as it arrives: the cost
// measured is the server's, not the test client's decoding of a large
// answer (a 50k-span trace is 16 MB of JSON).
func drain(t *testing.T, a *app.App, path, token string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+a.Addr+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	_, err = io.Copy(io.Discard, res.Body)
	require.NoError(t, err)
	return res.StatusCode
}
