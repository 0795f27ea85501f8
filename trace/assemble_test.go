package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/stretchr/testify/require"
)

func sid(b byte) SpanID { return SpanID{7, 7, 7, 7, 7, 7, 7, b} }

var tid = TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func span(id, parent byte, service string, start, end int64) Span {
	var p SpanID
	if parent != 0 {
		p = sid(parent)
	}
	return Span{TraceID: tid, SpanID: sid(id), ParentID: p, Service: service, Name: service + "-op", Start: start, End: end}
}

func names(a *Assembled) []string {
	var out []string
	for _, n := range a.Nodes {
		s := n.Name
		if n.Placeholder {
			s = "[" + s + "]"
		}
		out = append(out, string(rune('0'+n.Depth))+":"+s)
	}
	return out
}

func TestAssembleTree(t *testing.T) {
	// Out of order, one duplicate.
	spans := []Span{
		span(3, 2, "scala", 30, 60),
		span(1, 0, "go", 0, 100),
		span(2, 1, "python", 10, 90),
		span(4, 1, "go-db", 91, 95),
		span(2, 1, "python", 10, 90),
	}
	a := Assemble(tid, spans, AssembleOptions{})
	require.Equal(t, []string{"0:go-op", "1:python-op", "2:scala-op", "1:go-db-op"}, names(a))
	s := a.Summary
	require.Equal(t, 4, s.Spans)
	require.Equal(t, 1, s.Duplicates)
	require.Equal(t, 1, s.Roots)
	require.Zero(t, s.Orphans)
	require.Equal(t, int64(100), s.Duration)
	require.Equal(t, []string{"go", "go-db", "python", "scala"}, s.Services)
	require.Equal(t, "complete", s.Status)
	// Parents and children are indexes into Nodes.
	require.Equal(t, -1, a.Nodes[0].Parent)
	require.Equal(t, []int{1, 3}, a.Nodes[0].Children)
	require.Equal(t, 1, a.Nodes[2].Parent)
	// Critical path: the root waited for db (ends last, 95), then python
	// (ended at 90, before db started), then scala inside python.
	for _, n := range a.Nodes {
		require.True(t, n.Critical, n.Name)
	}
}

// criticalNames lists the names of the critical received spans.
func criticalNames(a *Assembled) []string {
	var out []string
	for _, n := range a.Nodes {
		if n.Critical && !n.Placeholder {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

func named(s Span, name string) Span { s.Name = name; return s }

// TestCriticalPathAsJaeger: the walk back from a span's end takes the child
// that finished last before the cursor, then the cursor moves to that
// child's start. Each case lists exactly the spans Jaeger's definition
// marks.
func TestCriticalPathAsJaeger(t *testing.T) {
	fanOut := []Span{named(span(1, 0, "a", 0, 1200), "root")}
	for i := range 10 { // ten parallel children, starts and ends staggered
		fanOut = append(fanOut, named(span(byte(2+i), 1, "a", int64(i*5), int64(950+i*5)), fmt.Sprintf("par%d", i)))
	}
	fanOut = append(fanOut, named(span(20, 1, "a", 1000, 1200), "final"))

	for _, tc := range []struct {
		name  string
		spans []Span
		want  []string
	}{
		{"ten parallel children then a final one: the final one and the parallel child that ended last",
			fanOut, []string{"final", "par9", "root"}},
		{"overlapping children: the one ending last, then only one that ended before it started",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 10, 50), "overlapped"), // still running when c started
				named(span(3, 1, "a", 20, 90), "c"),
			}, []string{"c", "root"}},
		{"a child inside a later-ending sibling is off the path",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 30, 40), "inner"),
				named(span(3, 1, "a", 20, 90), "c"),
			}, []string{"c", "root"}},
		{"sequential children, touching: all of them",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 0, 30), "s1"),
				named(span(3, 1, "a", 30, 60), "s2"),
				named(span(4, 1, "a", 60, 100), "s3"),
			}, []string{"root", "s1", "s2", "s3"}},
		{"a child that outlives its parent is clipped to the parent's end and still waited for",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 10, 40), "early"),
				named(span(3, 1, "a", 50, 180), "outlives"),
				named(span(4, 3, "a", 150, 170), "grandchild after root's end"),
				named(span(5, 3, "a", 55, 90), "grandchild"),
			}, []string{"early", "grandchild", "outlives", "root"}},
		{"async work started after its parent ended is never on the parent's path",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 10, 60), "work"),
				named(span(3, 1, "a", 120, 300), "async consumer"),
			}, []string{"root", "work"}},
		{"nested: the path goes down into the child that ended last",
			[]Span{
				named(span(1, 0, "a", 0, 100), "root"),
				named(span(2, 1, "a", 10, 90), "mid"),
				named(span(3, 2, "a", 20, 40), "leaf1"),
				named(span(4, 2, "a", 30, 80), "leaf2"), // overlaps leaf1
				named(span(5, 1, "a", 5, 8), "before mid"),
			}, []string{"before mid", "leaf2", "mid", "root"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Assemble(tid, tc.spans, AssembleOptions{})
			want := slices.Clone(tc.want)
			slices.Sort(want)
			require.Equal(t, want, criticalNames(a))
			require.Equal(t, len(want), a.Summary.CriticalPath)
		})
	}

	// A wide overlapping fan-out marks a chain, not every span.
	wide := []Span{named(span(1, 0, "a", 0, 1_000_000), "root")}
	for i := range 50_000 {
		s := Span{TraceID: tid, ParentID: sid(1), Service: "a", Name: "w", Start: int64(i), End: int64(500_000 + i)}
		s.SpanID = SpanID{9, 9, byte(i >> 16), byte(i >> 8), byte(i), 0, 0, 1}
		wide = append(wide, s)
	}
	a := Assemble(tid, wide, AssembleOptions{})
	require.Equal(t, 2, a.Summary.CriticalPath, "the root and the fan-out child that ended last")
}

func TestAssembleOrphansAndRoots(t *testing.T) {
	spans := []Span{
		span(1, 0, "go", 0, 100),
		span(2, 1, "python", 10, 90),
		span(5, 9, "scala", 40, 50), // parent 9 never arrived
		span(6, 9, "scala", 55, 60), // same missing parent
		span(7, 0, "batch", 200, 300),
	}
	a := Assemble(tid, spans, AssembleOptions{})
	require.Equal(t, []string{
		"0:[(trace with several roots or missing parents)]",
		"1:go-op", "2:python-op",
		"1:[(missing span)]", "2:scala-op", "2:scala-op",
		"1:batch-op",
	}, names(a))
	s := a.Summary
	require.Equal(t, 5, s.Spans, "placeholders are not spans")
	require.Equal(t, 2, s.Roots)
	require.Equal(t, 2, s.Orphans)
	require.Equal(t, 1, s.MissingParents)
	ph := a.Nodes[3]
	require.True(t, ph.Placeholder)
	require.Equal(t, sid(9), ph.SpanID, "the placeholder carries the ID the orphans name")
	require.Equal(t, int64(40), ph.Start)
	require.Equal(t, int64(60), ph.End)
	require.True(t, a.Nodes[4].Orphan)
}

func TestAssembleCycle(t *testing.T) {
	// 2 and 3 name each other: reached from no root; cut loose, counted.
	spans := []Span{span(1, 0, "a", 0, 10), span(2, 3, "b", 1, 2), span(3, 2, "c", 3, 4)}
	a := Assemble(tid, spans, AssembleOptions{})
	require.Len(t, a.Nodes, 4) // trace placeholder + 3
	require.Equal(t, 3, a.Summary.Spans)
	require.Equal(t, 1, a.Summary.Orphans)
}

func TestAssembleSkew(t *testing.T) {
	// python's clock is 1000 ahead: its span (and its scala child, same
	// host assumptions aside) sit after the go parent ends.
	spans := []Span{
		span(1, 0, "go", 0, 100),
		span(2, 1, "python", 1010, 1090),
		span(3, 2, "scala", 1020, 1080),
	}
	off := Assemble(tid, spans, AssembleOptions{})
	require.Zero(t, off.Summary.SkewAdjusted, "off by default")
	require.Equal(t, int64(1010), off.Nodes[1].Start)

	on := Assemble(tid, spans, AssembleOptions{AdjustSkew: true})
	require.Equal(t, 1, on.Summary.SkewAdjusted)
	py, sc := on.Nodes[1], on.Nodes[2]
	require.Equal(t, int64(10), py.Start, "centred in the parent: 0 + (100-80)/2")
	require.Equal(t, int64(90), py.End)
	require.Equal(t, int64(-1000), py.SkewNs)
	require.Equal(t, int64(20), sc.Start, "the subtree moves with it")
	require.Zero(t, sc.SkewNs, "scala fits its (moved) parent: not adjusted itself")
	require.Equal(t, int64(1010), spans[1].Start, "the stored spans are not changed")
}

func TestLanguages(t *testing.T) {
	l := Languages{Services: map[string]string{"legacy": "Perl"}, Attribute: "service.language"}
	cases := []struct {
		service  string
		res      map[string]any
		scope    string
		want     string
		wantFrom string
	}{
		{"legacy", map[string]any{"telemetry.sdk.language": "go"}, "", "perl", "config"},
		{"x", map[string]any{"service.language": "Rust", "telemetry.sdk.language": "cpp"}, "", "rust", "attribute"},
		{"x", map[string]any{"telemetry.sdk.language": "python"}, "", "python", "sdk"},
		{"x", map[string]any{"telemetry.sdk.language": "java"}, "", "java", "sdk"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_line": "/usr/bin/java -cp /app/lib/scala-library-2.13.14.jar:/app/svc.jar Main"}, "", "scala", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_args": []any{"java", "-cp", "kotlin-stdlib-2.0.jar"}}, "", "kotlin", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java"}, "akka.http", "scala", "heuristic"},
		// Every JVM signal alone, on the Java SDK.
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.runtime.description": "Eclipse Adoptium OpenJDK 64-Bit Server VM 17.0.13+11, Scala 2.13.15"}, "", "scala", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_line": "/usr/bin/java -jar /app/price-assembly-0.1.0.jar"}, "", "scala", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_args": []any{"java", "-cp", "/app/svc-assembly.jar", "Main"}}, "", "scala", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_line": "java -cp app.jar com.example.ServerKt"}, "", "kotlin", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java"}, "io.ktor.server", "kotlin", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_line": "java -jar target/shop-1.2.0-standalone.jar"}, "", "clojure", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.command_line": "java -cp clojure-1.12.0.jar:src clojure.main -m shop.core"}, "", "clojure", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java", "telemetry.distro.name": "clj-otel"}, "", "clojure", "heuristic"},
		{"x", map[string]any{"telemetry.sdk.language": "java"}, "steffan-westcott.clj-otel.api", "clojure", "heuristic"},
		// A plain Java service stays java: a Spring fat jar, a "Kt"-less main.
		{"x", map[string]any{"telemetry.sdk.language": "java", "process.runtime.description": "Eclipse Adoptium OpenJDK 64-Bit Server VM 17.0.13+11",
			"process.command_line": "java -jar /app/orders-0.0.1-SNAPSHOT.jar --server.port=8080"}, "io.opentelemetry.jdbc", "java", "sdk"},
		{"x", map[string]any{"process.runtime.name": "CPython"}, "", "python", "heuristic"},
		{"x", map[string]any{}, "", "", ""},
	}
	for _, c := range cases {
		got, from := l.Language(c.service, c.res, c.scope)
		require.Equal(t, c.want, got, "%v", c.res)
		require.Equal(t, c.wantFrom, from, "%v", c.res)
	}
}

func TestLogHandlerAddsTraceID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil)))
	tid, _ := oteltrace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := oteltrace.SpanIDFromHex("b7ad6b7169203331")
	ctx := oteltrace.ContextWithSpanContext(t.Context(), oteltrace.NewSpanContext(oteltrace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	log.With("component", "x").InfoContext(ctx, "with a span")
	log.Info("without")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.Contains(t, lines[0], "trace_id=0af7651916cd43dd8448eb211c80319c span_id=b7ad6b7169203331")
	require.NotContains(t, lines[1], "trace_id")
}

// TestCompare: two runs of the same request line up by call path; a span
// only one run made is counted on its side; durations are summed per
// position.
func TestCompare(t *testing.T) {
	a := Assemble(tid, []Span{
		named(span(1, 0, "go", 0, 100), "GET /checkout"),
		named(span(2, 1, "python", 10, 60), "GET /quote"),
		named(span(3, 1, "python", 60, 90), "GET /quote"),
		named(span(4, 2, "scala", 20, 50), "price"),
	}, AssembleOptions{})
	b := Assemble(tid, []Span{
		named(span(1, 0, "go", 0, 300), "GET /checkout"),
		named(span(2, 1, "python", 10, 250), "GET /quote"),
		named(span(5, 2, "scala", 20, 240), "price"),
		named(span(6, 1, "go", 260, 280), "retry"),
	}, AssembleOptions{})
	c := Compare(a, b)
	require.Equal(t, []CompareRow{
		{Parent: -1, Service: "go", Name: "GET /checkout", CountA: 1, CountB: 1, DurationA: 100, DurationB: 300},
		{Parent: 0, Depth: 1, Service: "python", Name: "GET /quote", CountA: 2, CountB: 1, DurationA: 80, DurationB: 240},
		{Parent: 1, Depth: 2, Service: "scala", Name: "price", CountA: 1, CountB: 1, DurationA: 30, DurationB: 220},
		{Parent: 0, Depth: 1, Service: "go", Name: "retry", CountB: 1, DurationB: 20},
	}, c.Rows)
	require.Zero(t, c.OnlyA)
	require.Equal(t, 1, c.OnlyB)
	require.Equal(t, int64(100), c.A.Duration)
	require.Equal(t, int64(300), c.B.Duration)

	// Streamed, the answer is what encoding/json makes of it.
	var streamed bytes.Buffer
	require.NoError(t, c.WriteJSON(&streamed))
	whole, err := json.Marshal(c)
	require.NoError(t, err)
	require.JSONEq(t, string(whole), streamed.String())
}

// TestCompareDeepChain: a chain of 20,000 spans (each the only child of
// the one before) compares in an answer that grows with the chain, not
// with its square (a path string per position would be 20,000 names
// long at the bottom: gigabytes in all).
func TestCompareDeepChain(t *testing.T) {
	const n = 20000
	spans := make([]Span, n)
	for i := range spans {
		spans[i] = Span{TraceID: tid, SpanID: syntheticSpanID(i + 1), Service: "go", Name: "step", Start: int64(i), End: int64(2*n - i)}
		if i > 0 {
			spans[i].ParentID = syntheticSpanID(i)
		}
	}
	a := Assemble(tid, spans, AssembleOptions{})
	c := Compare(a, a)
	require.Len(t, c.Rows, n)
	require.Equal(t, n-1, c.Rows[n-1].Depth)
	require.Equal(t, n-2, c.Rows[n-1].Parent)
	var out bytes.Buffer
	require.NoError(t, c.WriteJSON(&out))
	require.Less(t, out.Len(), 200*n, "about a row's worth of bytes per span")
}
