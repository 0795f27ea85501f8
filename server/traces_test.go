package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/trace"
)

// limited is an in-memory trace.Store for the handler's own logic (the
// Postgres store has its own tests): it holds one synthetic trace and
// honours the limit.
type limited struct {
	trace.Store
	spans []trace.Span
}

func (l limited) Trace(_ context.Context, _ trace.TraceID, limit, details int) ([]trace.Span, bool, error) {
	more := len(l.spans) > limit
	out := append([]trace.Span(nil), l.spans[:min(limit, len(l.spans))]...)
	for i := details; i < len(out); i++ {
		out[i].Detail, out[i].Lean = nil, true
	}
	return out, more, nil
}

func (l limited) Services(context.Context, time.Time, int) ([]string, error) {
	return []string{"checkout-go", "quote-py"}, nil
}

func (l limited) Operations(_ context.Context, service string, _ time.Time, _ int) ([]string, error) {
	if service == "quote-py" {
		return []string{"GET /quote"}, nil
	}
	return nil, nil
}

func (l limited) Calls(context.Context, time.Time, int) (trace.Calls, error) {
	return trace.Calls{Edges: []trace.CallEdge{{From: "checkout-go", To: "quote-py", Calls: 2}}, Spans: 5,
		Resources: map[string][]map[string]any{"quote-py": {{"telemetry.sdk.language": "python"}}}}, nil
}

func (l limited) Span(_ context.Context, _ trace.TraceID, id trace.SpanID) (trace.Span, bool, error) {
	for _, s := range l.spans {
		if s.SpanID == id {
			return s, true, nil
		}
	}
	return trace.Span{}, false, nil
}

// TestTraceAPI: a trace over the limit answers a partial view that says
// so; detail=false leaves attributes out; bad IDs and parameters are 400,
// an unknown trace 404.
func TestTraceAPI(t *testing.T) {
	id := trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	d := trace.FromOTLP(trace.SyntheticTrace(id, 300, time.Now()), trace.DefaultLimits())
	reg := prometheus.NewRegistry()
	s := New(Options{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth:   auth.NewAuthenticator(nil, "bootstrap-token-0123456789"),
		Traces: &Traces{Store: limited{spans: d.Spans}, MaxSpans: 100, DetailSpans: 40}})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer bootstrap-token-0123456789")
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, body := get("/api/v1/traces/" + id.String())
	require.Equal(t, http.StatusOK, code, body)
	var env struct{ Data trace.View }
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	require.True(t, env.Data.Summary.Partial)
	require.Contains(t, env.Data.Summary.Status, "more than 100 spans")
	require.Equal(t, 100, env.Data.Summary.Spans)
	require.Contains(t, body, `"attributes":{"item":`)
	// Past the detail budget spans are lean; their details are one read
	// away.
	lean := 0
	for i, sp := range env.Data.Spans {
		if sp.Lean {
			lean++
			require.Nil(t, sp.Attributes, "span %d", i)
		}
	}
	require.Equal(t, 60, lean, "100 spans, the first 40 with details")
	var one trace.ViewSpan
	for _, sp := range env.Data.Spans {
		if sp.Lean {
			one = sp
			break
		}
	}
	code, body = get("/api/v1/traces/" + id.String() + "/spans/" + one.SpanID)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	require.Len(t, env.Data.Spans, 1)
	require.Equal(t, one.SpanID, env.Data.Spans[0].SpanID)
	require.False(t, env.Data.Spans[0].Lean)
	require.Contains(t, string(env.Data.Spans[0].Attributes), `"item"`)
	code, _ = get("/api/v1/traces/" + id.String() + "/spans/0000000000000001")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get("/api/v1/traces/" + id.String() + "/spans/xyz")
	require.Equal(t, http.StatusBadRequest, code)

	code, body = get("/api/v1/services")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"data":{"services":["checkout-go","quote-py"]}`)
	code, body = get("/api/v1/services/quote-py/operations?since=1h")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"operations":["GET /quote"]`)
	code, body = get("/api/v1/services/nobody/operations")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"operations":[]`)
	code, body = get("/api/v1/traces/" + id.String() + "/compare/" + id.String())
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"only_a_spans":0,"only_b_spans":0`, "a trace compared with itself")
	require.Contains(t, body, `"partial":true,"status":"partial: compared by its first 50 spans by start time (half of trace.max_trace_spans)"`,
		"a comparison reads at most max_trace_spans spans in all")
	code, _ = get("/api/v1/traces/" + id.String() + "/compare/xyz")
	require.Equal(t, http.StatusBadRequest, code)
	code, body = get("/api/v1/services/graph")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"nodes":[{"service":"checkout-go"},{"service":"quote-py","language":"python"}],"edges":[{"from":"checkout-go","to":"quote-py","calls":2,"errors":0}],"spans":5`)
	code, _ = get("/api/v1/services?since=forever")
	require.Equal(t, http.StatusBadRequest, code)

	code, body = get("/api/v1/traces/" + id.String() + "?detail=false")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, `"attributes"`)

	for path, want := range map[string]int{
		"/api/v1/traces/xyz":                                    400,
		"/api/v1/traces/00000000000000000000000000000000":       400,
		"/api/v1/traces/" + id.String() + "?adjust_skew=maybe":  400,
		"/api/v1/traces/" + id.String() + "?format=zip":         400,
		"/api/v1/traces?min_duration=fast":                      400,
		"/api/v1/traces?attr=novalue":                           400,
		"/api/v1/traces?limit=5000":                             400,
		"/api/v1/traces?service=a%00b":                          400, // NUL: never reaches Postgres
		"/api/v1/traces?service=%ff%fe":                         400, // invalid UTF-8
		"/api/v1/traces?operation=" + strings.Repeat("x", 2000): 400,
		"/api/v1/traces?" + strings.Repeat("attr=k=v&", 17):     400,
	} {
		code, body := get(path)
		require.Equal(t, want, code, "%s: %s", path, body)
	}
	s2 := New(Options{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(), Gatherer: reg,
		Auth:   auth.NewAuthenticator(nil, "bootstrap-token-0123456789"),
		Traces: &Traces{Store: limited{}, MaxSpans: 100}})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/traces/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer bootstrap-token-0123456789")
	s2.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusNotFound, rec.Code)
}
