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

func (l limited) Trace(_ context.Context, _ trace.TraceID, limit int) ([]trace.Span, bool, error) {
	if len(l.spans) > limit {
		return l.spans[:limit], true, nil
	}
	return l.spans, false, nil
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
		Traces: &Traces{Store: limited{spans: d.Spans}, MaxSpans: 100}})
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
