package trace_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/trace"
	tracepg "github.com/triad-dev/triad/trace/postgres"
)

// TestGarbageInTheSpanStore: another service writes, with SQL, stored
// JSON of the wrong shape into the span store (a resource that is an
// array, attributes that are a string, events that are an object, links
// with a null in them). Every read still answers 200: the trace view and
// the span name what could not be read with an excerpt; the OTLP export
// carries it as triad.garbled.* attributes; the service graph and search
// carry on; a viewer sees the notes without their excerpts, which could
// hold redacted values.
func TestGarbageInTheSpanStore(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ns.Migrate(t)
	store := tracepg.New(ns.Pool())
	id := trace.TraceID{0x9a, 0x7b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	d := trace.FromOTLP(trace.SyntheticTrace(id, 30, time.Now().Add(-time.Minute)), trace.DefaultLimits())
	require.Len(t, d.Spans, 30)
	ctx := context.Background()
	require.NoError(t, store.Write(ctx, d.Spans))

	// The drift, as another writer would make it.
	victim := d.Spans[3]
	exec := func(sql string, args ...any) {
		_, err := ns.Pool().Exec(ctx, sql, args...)
		require.NoError(t, err, sql)
	}
	exec(`UPDATE spans SET attributes = '"user.email=someone@example.com"', events = '{"not": "a list"}',
		links = '[null, 5, {"trace_id": 7}]' WHERE trace_id = $1 AND span_id = $2`, id[:], victim.SpanID[:])
	exec(`UPDATE span_resources SET attributes = '["not", "an", "object"]' WHERE id = $1`, int64(d.Spans[0].ResourceKey))

	reg := prometheus.NewRegistry()
	tokens := auth.NewStore(ns.Pool())
	viewer, _, err := tokens.Create(ctx, "reader", auth.RoleViewer, 0)
	require.NoError(t, err)
	const admin = "bench-token-0123456789abcdef"
	s := server.New(server.Options{Config: server.DefaultConfig(), Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(tokens, admin), Traces: &server.Traces{Store: store, MaxSpans: 1000, DetailSpans: 1000}})
	get := func(token, path string) (int, string) {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1:8383"
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	code, body := get(admin, "/api/v1/traces/"+id.String())
	require.Equal(t, http.StatusOK, code, body)
	var env struct{ Data trace.View }
	require.NoError(t, json.Unmarshal([]byte(body), &env))
	require.Len(t, env.Data.Spans, 30, "every span is shown")
	var got trace.ViewSpan
	for _, sp := range env.Data.Spans {
		if sp.SpanID == victim.SpanID.String() {
			got = sp
		}
	}
	require.Contains(t, got.Garbled["attributes"], "stored attributes are not a JSON object")
	require.Contains(t, got.Garbled["attributes"], "someone@example.com", "an excerpt of the stored form")
	require.Contains(t, got.Garbled["events"], "stored events are not a JSON array")
	require.Nil(t, got.Attributes, "a string is not passed on as attributes")
	require.NotEmpty(t, got.Links, "an array of links is passed on; the page reads its elements with care")
	// The resource that is an array is named in the resources.
	found := false
	for _, r := range env.Data.Resources {
		if note, ok := r[trace.GarbledKey].(string); ok {
			require.Contains(t, note, "could not be read")
			found = true
		}
	}
	require.True(t, found, "the garbled resource is noted: %v", env.Data.Resources)

	code, body = get(admin, "/api/v1/traces/"+id.String()+"/spans/"+victim.SpanID.String())
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "stored events are not a JSON array")

	code, body = get(admin, "/api/v1/traces/"+id.String()+"?format=otlp")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, trace.GarbledKey+".attributes")
	require.Contains(t, body, trace.GarbledKey+".links", "links that do not decode are exported as a note")

	for _, path := range []string{"/api/v1/services/graph", "/api/v1/services", "/api/v1/traces?limit=5", "/api/v1/traces/" + id.String() + "/compare/" + id.String()} {
		code, body = get(admin, path)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}

	// A viewer: the notes are there, their excerpts are not.
	for _, path := range []string{"/api/v1/traces/" + id.String(), "/api/v1/traces/" + id.String() + "?format=otlp",
		"/api/v1/traces/" + id.String() + "/spans/" + victim.SpanID.String()} {
		code, body = get(viewer, path)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
		require.NotContains(t, body, "someone@example.com", path)
		require.True(t, strings.Contains(body, server.GarbledHidden), "%s says something could not be read", path)
	}
}
