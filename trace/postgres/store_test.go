package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/trace"
	tracepg "github.com/triad-dev/triad/trace/postgres"
)

func newStore(t *testing.T) (*tracepg.Store, *stacktest.Namespace) {
	t.Helper()
	ns := stacktest.New(t)
	ns.Migrate(t)
	return tracepg.New(ns.Pool()), ns
}

// spans makes one trace: a root of service svc and a child, with
// attributes, at start.
func spans(t *testing.T, id byte, svc, op string, start time.Time, dur time.Duration, errored bool, attrs map[string]any) []trace.Span {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	rs.Resource().Attributes().PutStr("deployment.environment", "prod-"+svc)
	ss := rs.ScopeSpans().AppendEmpty()
	tid := pcommon.TraceID{id, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	root := ss.Spans().AppendEmpty()
	root.SetTraceID(tid)
	root.SetSpanID(pcommon.SpanID{id, 1, 0, 0, 0, 0, 0, 1})
	root.SetName(op)
	root.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	root.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(dur)))
	require.NoError(t, root.Attributes().FromRaw(attrs))
	if errored {
		root.Status().SetCode(ptrace.StatusCodeError)
	}
	child := ss.Spans().AppendEmpty()
	child.SetTraceID(tid)
	child.SetSpanID(pcommon.SpanID{id, 2, 0, 0, 0, 0, 0, 1})
	child.SetParentSpanID(root.SpanID())
	child.SetName("child")
	child.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
	child.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(2 * time.Millisecond)))
	d := trace.FromOTLP(td, trace.DefaultLimits())
	require.Zero(t, d.Rejected)
	return d.Spans
}

func traceID(id byte) trace.TraceID {
	return trace.TraceID{id, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
}

// TestSearch: each filter alone selects exactly the traces it should,
// newest first, with their summaries.
func TestSearch(t *testing.T) {
	st, _ := newStore(t)
	now := time.Now().UTC()
	ctx := t.Context()
	require.NoError(t, st.Write(ctx, spans(t, 1, "checkout", "GET /a", now.Add(-50*time.Minute), 20*time.Millisecond, false, map[string]any{"http.status_code": 200, "user": "u1"})))
	require.NoError(t, st.Write(ctx, spans(t, 2, "checkout", "GET /b", now.Add(-40*time.Minute), 900*time.Millisecond, true, map[string]any{"http.status_code": 500})))
	require.NoError(t, st.Write(ctx, spans(t, 3, "quote", "GET /a", now.Add(-30*time.Minute), 5*time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 4, "quote", "GET /c", now.Add(-3*time.Hour), 5*time.Millisecond, false, nil)))

	ids := func(q trace.Query) []string {
		found, err := st.Search(ctx, q)
		require.NoError(t, err)
		var out []string
		for _, f := range found {
			out = append(out, f.TraceID[:2])
		}
		return out
	}
	require.Equal(t, []string{"03", "02", "01"}, ids(trace.Query{}), "the last hour, newest first")
	require.Equal(t, []string{"03", "02", "01", "04"}, ids(trace.Query{From: now.Add(-4 * time.Hour)}))
	require.Equal(t, []string{"02", "01"}, ids(trace.Query{Service: "checkout"}))
	require.Equal(t, []string{"03", "01"}, ids(trace.Query{Operation: "GET /a"}))
	require.Equal(t, []string{"02"}, ids(trace.Query{MinDuration: 100 * time.Millisecond}))
	require.Equal(t, []string{"03", "01"}, ids(trace.Query{MaxDuration: 50 * time.Millisecond, Operation: "GET /a"}))
	require.Equal(t, []string{"02"}, ids(trace.Query{ErrorsOnly: true}))
	require.Equal(t, []string{"02"}, ids(trace.Query{Attributes: map[string]string{"http.status_code": "500"}}), "numbers match as text")
	require.Equal(t, []string{"01"}, ids(trace.Query{Attributes: map[string]string{"http.status_code": "200", "user": "u1"}}))
	require.Equal(t, []string{"03"}, ids(trace.Query{Attributes: map[string]string{"deployment.environment": "prod-quote"}}), "resource attributes match too")
	require.Equal(t, []string{"03"}, ids(trace.Query{Limit: 1}))

	found, err := st.Search(ctx, trace.Query{ErrorsOnly: true})
	require.NoError(t, err)
	f := found[0]
	require.Equal(t, 2, f.Spans)
	require.Equal(t, 1, f.Errors)
	require.Equal(t, "checkout", f.RootService)
	require.Equal(t, "GET /b", f.RootName)
	require.Equal(t, int64(900*time.Millisecond), f.Duration)
	require.Equal(t, []string{"checkout"}, f.Services)
}

// TestServicesAndOperations: the services that sent spans in the window,
// by name, and one service's span names.
func TestServicesAndOperations(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	now := time.Now().UTC()
	ctx := t.Context()
	require.NoError(t, st.Write(ctx, spans(t, 1, "checkout", "GET /a", now.Add(-50*time.Minute), time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 2, "checkout", "GET /b", now.Add(-40*time.Minute), time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 3, "quote", "GET /q", now.Add(-30*time.Minute), time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 4, "archived", "old", now.Add(-3*24*time.Hour), time.Millisecond, false, nil)))
	got, err := st.Services(ctx, now.Add(-24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{"checkout", "quote"}, got, "by name; a service silent in the window is left out")
	got, err = st.Services(ctx, now.Add(-7*24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{"archived", "checkout", "quote"}, got)
	got, err = st.Services(ctx, now.Add(-7*24*time.Hour), 1)
	require.NoError(t, err)
	require.Equal(t, []string{"archived"}, got)
	got, err = st.Operations(ctx, "checkout", now.Add(-24*time.Hour), 100)
	require.NoError(t, err)
	require.Equal(t, []string{"GET /a", "GET /b", "child"}, got)
	got, err = st.Operations(ctx, "nobody", now.Add(-24*time.Hour), 100)
	require.NoError(t, err)
	require.Empty(t, got)
}

// TestServiceGraph: calls between services from recent spans, each child
// of another service's span one call (an error when the child failed),
// and each service's language from its resource.
func TestServiceGraph(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ctx := t.Context()
	now := time.Now()
	td := ptrace.NewTraces()
	add := func(svc, lang string) ptrace.SpanSlice {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("telemetry.sdk.language", lang)
		return rs.ScopeSpans().AppendEmpty().Spans()
	}
	goSpans, pySpans, jvmSpans := add("checkout-go", "go"), add("quote-py", "python"), add("price-scala", "java")
	span := func(ss ptrace.SpanSlice, tr, id, parent byte, failed bool) {
		sp := ss.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{tr, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
		sp.SetSpanID(pcommon.SpanID{tr, id, 0, 0, 0, 0, 0, 1})
		if parent != 0 {
			sp.SetParentSpanID(pcommon.SpanID{tr, parent, 0, 0, 0, 0, 0, 1})
		}
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute + time.Millisecond)))
		if failed {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	for tr := byte(1); tr <= 3; tr++ {
		span(goSpans, tr, 1, 0, false)
		span(goSpans, tr, 2, 1, false) // same service: not a call
		span(pySpans, tr, 3, 2, tr == 3)
		span(jvmSpans, tr, 4, 3, false)
	}
	d := trace.FromOTLP(td, trace.DefaultLimits())
	require.Zero(t, d.Rejected)
	require.NoError(t, st.Write(ctx, d.Spans))

	calls, err := st.Calls(ctx, now.Add(-time.Hour), 1000)
	require.NoError(t, err)
	require.Equal(t, 12, calls.Spans)
	g := calls.Graph(trace.DefaultConfig().Languages)
	require.Equal(t, []trace.CallEdge{
		{From: "checkout-go", To: "quote-py", Calls: 3, Errors: 1},
		{From: "quote-py", To: "price-scala", Calls: 3},
	}, g.Edges)
	require.Equal(t, []trace.ServiceNode{{Service: "checkout-go", Language: "go"}, {Service: "price-scala", Language: "java"}, {Service: "quote-py", Language: "python"}}, g.Nodes)

	calls, err = st.Calls(ctx, now.Add(-time.Hour), 4)
	require.NoError(t, err)
	require.Equal(t, 4, calls.Spans, "bounded by the limit")
}

// TestPartitionsAndRetention: spans go to their day's partition; a span
// far outside the window waits in the default partition and moves into
// its day's partition when that is created; retention drops whole days
// and trims the default partition.
func TestPartitionsAndRetention(t *testing.T) {
	st, ns := newStore(t)
	ctx := t.Context()
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	st.Now = func() time.Time { return now }
	future := now.Add(20 * 24 * time.Hour) // outside the 8-day window
	require.NoError(t, st.Write(ctx, spans(t, 1, "a", "today", now, time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 2, "a", "two days ago", now.Add(-48*time.Hour), time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 3, "a", "future", future, time.Millisecond, false, nil)))
	require.NoError(t, st.Write(ctx, spans(t, 4, "a", "ancient", now.Add(-400*24*time.Hour), time.Millisecond, false, nil)))

	count := func(table string) int {
		var n int
		require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n))
		return n
	}
	require.Equal(t, 2, count("spans_20261124"))
	require.Equal(t, 2, count("spans_20261122"))
	require.Equal(t, 4, count("spans_default"), "the future and the ancient trace")

	// 20 days later the future day is inside the window: its spans move.
	now = future
	require.NoError(t, st.Write(ctx, spans(t, 5, "a", "then", future, time.Millisecond, false, nil)))
	require.Equal(t, 4, count("spans_"+future.Format("20060102")))
	require.Equal(t, 2, count("spans_default"))
	got, more, err := st.Trace(ctx, traceID(3), 10, 10)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, got, 2, "a moved trace reads whole")

	// Keep a week before "now" (= future): the two older days go, and the
	// ancient spans in the default partition.
	parts, rows, err := st.Retain(ctx, future.Add(-7*24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 2, parts)
	require.Equal(t, int64(2), rows)
	require.Zero(t, count("spans_default"))
	var left int
	require.NoError(t, ns.Pool().QueryRow(ctx, `SELECT count(*) FROM spans`).Scan(&left))
	require.Equal(t, 4, left, "traces 3 and 5, on the kept day")
	got, _, err = st.Trace(ctx, traceID(1), 10, 10)
	require.NoError(t, err)
	require.Empty(t, got, "an unknown trace is no spans, no error")
}

// TestTraceLimit: a trace over the limit answers its first spans by start
// time and says there are more.
func TestTraceLimit(t *testing.T) {
	st, _ := newStore(t)
	id := trace.TraceID{0x11, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	d := trace.FromOTLP(trace.SyntheticTrace(id, 500, time.Now().Add(-time.Minute)), trace.DefaultLimits())
	require.NoError(t, st.Write(t.Context(), d.Spans))
	got, more, err := st.Trace(t.Context(), id, 100, 100)
	require.NoError(t, err)
	require.True(t, more)
	require.Len(t, got, 100)
	for i := 1; i < len(got); i++ {
		require.LessOrEqual(t, got[i-1].Start, got[i].Start)
	}
	a := trace.Assemble(id, got, trace.AssembleOptions{})
	require.Equal(t, 100, a.Summary.Spans)
	got, more, err = st.Trace(t.Context(), id, 500, 500)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, got, 500)
}
