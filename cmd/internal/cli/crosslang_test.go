package cli

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/trace"
)

// serviceDir is where the sample services live (built by `make
// trace-services`, which `make test` runs first).
var serviceDir = filepath.Join("..", "..", "..", "trace", "testdata")

// startService runs a sample service and returns its address, read from
// the "listening on ADDR" line it prints first. It is stopped with
// SIGTERM (each service flushes its spans) at the end of the test.
func startService(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = testWriter{t, filepath.Base(name)}
	require.NoError(t, cmd.Start(), "start %s", name)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	go func() {
		defer close(lines) // stdout closed: the service ended
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l, ok := <-lines:
		require.True(t, ok, "%s exited before it listened (its stderr is above)", name)
		m := regexp.MustCompile(`listening on (\S+)`).FindStringSubmatch(l)
		require.NotNil(t, m, "%s said %q", name, l)
		return m[1]
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start within 60s", name)
		return ""
	}
}

type testWriter struct {
	t    *testing.T
	name string
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s: %s", w.name, strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestCrossLanguageTrace is the proof with real services: a Go service
// (otel-go) calls a Python service (opentelemetry-sdk from PyPI) which
// calls a Scala service (the OpenTelemetry Java SDK, compiled with
// Maven), over HTTP with W3C traceparent, all exporting OTLP to a running
// triad. One trace comes back, with correct parents across the three
// processes, languages go, python and scala (Scala told apart from Java by
// its class path), and every child inside its parent's time.
func TestCrossLanguageTrace(t *testing.T) {
	t.Parallel()
	python := filepath.Join(serviceDir, "pysvc", ".venv", "bin", "python")
	scalaJar := filepath.Join(serviceDir, "scalasvc", "target", "price-scala-1.0.0.jar")
	for _, f := range []string{python, scalaJar} {
		_, err := os.Stat(f)
		require.NoError(t, err, "the sample services are not built: run `make trace-services` (make test does)")
	}
	gosvc := filepath.Join(t.TempDir(), "gosvc")
	build := exec.Command("go", "build", "-o", gosvc, ".")
	build.Dir = filepath.Join(serviceDir, "gosvc")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the Go service: %s", out)

	ns := stacktest.New(t)
	cfg := replicaConfig(t, ns)
	// An operator who raised the limits: a span of 3000 attributes and
	// 1000 events is kept whole (below), and the page must stay light.
	cfg.Trace.Limits.Attributes, cfg.Trace.Limits.Events = 5000, 2000
	a := startReplica(t, cfg)
	awaitReady(t, a)
	require.NotEmpty(t, a.OTLPHTTPAddr)
	env := []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://" + a.OTLPHTTPAddr + "/v1/traces", "OTEL_TRACES_SAMPLER=always_on"}

	// The Scala class path names each jar (as a packaged service's does).
	jars, err := filepath.Glob(filepath.Join(serviceDir, "scalasvc", "target", "lib", "*.jar"))
	require.NoError(t, err)
	cp := strings.Join(append([]string{scalaJar}, jars...), string(os.PathListSeparator))
	scala := startService(t, env, "java", "-Xmx128m", "-cp", cp, "triad.Price", "0")
	py := startService(t, env, python, filepath.Join(serviceDir, "pysvc", "app.py"), "0", "http://"+scala)
	goAddr := startService(t, env, gosvc, "-listen", "127.0.0.1:0", "-quote", "http://"+py)

	resp, err := http.Get("http://" + goAddr + "/checkout")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var answer struct {
		TraceID string          `json:"trace_id"`
		Quote   json.RawMessage `json:"quote"`
	}
	require.NoError(t, json.Unmarshal(body, &answer))
	require.Contains(t, string(answer.Quote), "total", "the call went through all three services")

	// Spans are exported in batches every 200ms: poll the API (10x that
	// and then some; the JVM's first export is the slowest).
	start := time.Now()
	v := awaitTrace(t, a.Addr, answer.TraceID, 8, 60*time.Second)
	took := time.Since(start)
	t.Logf("all spans stored %s after the request returned", took)

	s := v.Summary
	require.Equal(t, 8, s.Spans, "go: 3 spans, python: 3, scala: 2")
	require.Equal(t, []string{"go", "python", "scala"}, s.Languages)
	require.Equal(t, []string{"checkout-go", "price-scala", "quote-py"}, s.Services)
	require.Equal(t, 1, s.Roots)
	require.Zero(t, s.Orphans)
	require.False(t, s.Partial)

	byName := map[string]trace.ViewSpan{}
	for _, sp := range v.Spans {
		require.False(t, sp.Placeholder, "no placeholders: every parent arrived")
		byName[sp.Name] = sp
		lang := map[string]string{"checkout-go": "go", "quote-py": "python", "price-scala": "scala"}[sp.Service]
		require.Equal(t, lang, sp.Language, "%s %s", sp.Service, sp.Name)
		if sp.Parent >= 0 {
			p := v.Spans[sp.Parent]
			require.Equal(t, p.SpanID, sp.ParentSpanID)
			require.GreaterOrEqual(t, sp.Start, p.Start, "%s starts inside %s", sp.Name, p.Name)
			require.LessOrEqual(t, sp.End, p.End, "%s ends inside %s", sp.Name, p.Name)
		}
	}
	require.Equal(t, "heuristic", byName["GET /price"].LanguageFrom, "the Java SDK says java; the class path says scala")
	require.Equal(t, "sdk", byName["GET /quote"].LanguageFrom)
	parentOf := func(name string) string { return v.Spans[byName[name].Parent].Name }
	require.Equal(t, -1, byName["GET /checkout"].Parent)
	require.Equal(t, "GET quote", parentOf("GET /quote"), "python's server span under go's client span")
	require.Equal(t, "GET price", parentOf("GET /price"), "scala's server span under python's client span")
	require.Equal(t, "GET /price", parentOf("price lookup"))
	require.Equal(t, "GET /quote", parentOf("validate basket"))

	// A fan-out from the real Python SDK: ten parallel children (threads,
	// started a little apart), then a final one. The critical path holds
	// exactly the spans Jaeger's definition gives, computed here by a
	// port of Jaeger UI's own recursion (computeCriticalPath) over the
	// spans' real times: with threads started late under load, an early
	// parallel child that ended before the last one started is on it too.
	fan := fanOutTrace(t, a.Addr, "http://"+py+"/fanout")
	var critical []string
	for _, sp := range fan.Spans {
		if sp.Critical {
			critical = append(critical, sp.Name)
		}
	}
	slices.Sort(critical)
	want := jaegerCriticalPath(fan)
	require.Equal(t, want, critical, "Jaeger's critical path of a fan-out")
	require.Equal(t, len(want), fan.Summary.CriticalPath)
	require.Contains(t, want, "final")
	require.Less(t, len(want), 12, "not every span of the fan-out")
	t.Logf("fan-out critical path: %v", want)

	// The CLI renders the same trace.
	code, text, errs := run(t, nil, "trace", "--server", "http://"+a.Addr, "--token", replicaToken, answer.TraceID)
	require.Equal(t, ExitOK, code, errs)
	t.Logf("triad trace %s:\n%s", answer.TraceID, text)
	require.Contains(t, text, "languages: go, python, scala")
	require.Regexp(t, `price-scala GET /price\s+scala`, text)
	require.Regexp(t, `\n    quote-py GET /quote\s+python`, text, "indented under the go client span (depth 2)")
	code, _, errs = run(t, nil, "trace", "--server", "http://"+a.Addr, "--token", replicaToken, "0123456789abcdef0123456789abcdef")
	require.Equal(t, ExitNotFound, code, "an unknown trace is not a usage error: %s", errs)
	code, _, _ = run(t, nil, "trace", "--server", "http://"+a.Addr, "--token", replicaToken, "not-an-id")
	require.Equal(t, ExitUsage, code)

	code, raw, errs := run(t, nil, "trace", "--format", "otlp", "--server", "http://"+a.Addr, "--token", replicaToken, answer.TraceID)
	require.Equal(t, ExitOK, code, errs)
	require.Contains(t, raw, `"resourceSpans"`)
	require.Contains(t, raw, answer.TraceID)

	// Exports: speedscope (valid JSON, a profile per track) and a
	// self-contained HTML page (opened by the browser test below).
	code, raw, errs = run(t, nil, "trace", "--format", "speedscope", "--server", "http://"+a.Addr, "--token", replicaToken, answer.TraceID)
	require.Equal(t, ExitOK, code, errs)
	var ss struct {
		Profiles []json.RawMessage `json:"profiles"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &ss))
	require.NotEmpty(t, ss.Profiles)
	code, page, errs := run(t, nil, "trace", "--format", "html", "--server", "http://"+a.Addr, "--token", replicaToken, answer.TraceID)
	require.Equal(t, ExitOK, code, errs)
	htmlFile := filepath.Join(t.TempDir(), "trace.html")
	require.NoError(t, os.WriteFile(htmlFile, []byte(page), 0o644))

	// A 10k-span trace and a 50k-span one (the page must stay usable:
	// times reported, not asserted), sent over OTLP/HTTP like any other;
	// one span of 3000 attributes and 1000 events (the limits are raised
	// above: the page lists them virtualised); and two services that call
	// each other (cycle-a → cycle-b → cycle-a: the graph draws both edges
	// apart).
	big := trace.TraceID{0xb1, 0x6, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	huge := trace.TraceID{0xb1, 0x6, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}
	wide := trace.TraceID{0xb1, 0x6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}
	for _, td := range []ptrace.Traces{trace.SyntheticTrace(big, 10000, time.Now().Add(-time.Minute)),
		trace.SyntheticTrace(huge, 50000, time.Now().Add(-time.Minute)), wideTrace(wide, 3000, 1000), cycleTrace()} {
		payload, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		require.NoError(t, err)
		resp, err := http.Post("http://"+a.OTLPHTTPAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(payload))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	// Another writer leaves garbage in the cycle's root span, through SQL:
	// the page names what it cannot read and shows the rest.
	_, err = ns.Pool().Exec(context.Background(), `UPDATE spans SET attributes = '"not an object"', events = '[null, {"name": "kept"}]',
		links = '[7]' WHERE trace_id = $1 AND span_id = $2`, []byte{0xc7, 0xc1, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, []byte{0xc7, 1, 1, 1, 1, 1, 1, 1})
	require.NoError(t, err)

	// The CLI renders it whole (the time is logged, not asserted).
	t0 := time.Now()
	code, text, errs = run(t, nil, "trace", "--server", "http://"+a.Addr, "--token", replicaToken, big.String())
	took = time.Since(t0)
	require.Equal(t, ExitOK, code, errs)
	require.Equal(t, 10000+3, strings.Count(text, "\n"), "a header, a column line, a row per span and the legend")
	t.Logf("triad trace of 10000 spans: %s (API, assembly, render)", took)

	// The browser: Debian's Chromium driven by playwright-core renders the
	// flame timeline of both and saves screenshots.
	e2e := filepath.Join("..", "..", "..", "web", "e2e")
	_, err = os.Stat(filepath.Join(e2e, "node_modules", "playwright-core"))
	require.NoError(t, err, "playwright-core is not installed: run `make e2e-deps` (make test does)")
	artifacts, err := filepath.Abs(filepath.Join(e2e, "artifacts"))
	require.NoError(t, err)
	node := exec.Command("node", "trace.mjs")
	node.Dir = e2e
	node.Env = append(os.Environ(), "BASE_URL=http://"+a.Addr, "TOKEN="+replicaToken, "TRACE_ID="+answer.TraceID,
		"BIG_TRACE_ID="+big.String(), "HUGE_TRACE_ID="+huge.String(), "WIDE_TRACE_ID="+wide.String(), "HTML_FILE="+htmlFile, "ARTIFACTS="+artifacts)
	got, err := node.CombinedOutput()
	require.NoError(t, err, "browser test: %s", got)
	t.Logf("browser (first render measured in the page; screenshots in %s): %s", artifacts, got)
	var measured struct {
		Big  struct{ Spans int } `json:"big"`
		Huge struct{ Spans int } `json:"huge"`
	}
	require.NoError(t, json.Unmarshal(bytes.TrimSpace(got[bytes.LastIndexByte(bytes.TrimSpace(got), '\n')+1:]), &measured))
	require.Equal(t, 10000, measured.Big.Spans, "the page drew all 10k spans")
	require.Equal(t, 50000, measured.Huge.Spans, "the page drew all 50k spans")
	for _, f := range []string{"trace-flame.png", "trace-flame-big.png"} {
		st, err := os.Stat(filepath.Join(artifacts, f))
		require.NoError(t, err)
		require.Greater(t, st.Size(), int64(1000), f)
	}
}

func apiGet(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("http://%s%s", addr, path), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+replicaToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(b, &env))
		return resp.StatusCode, env.Data
	}
	return resp.StatusCode, b
}

// TestOwnSpans: with trace.self.endpoint "self", triad's own ingest
// batches, derived-store writes and repair runs arrive at its own
// receiver as spans of service "triad".
func TestOwnSpans(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cfg := replicaConfig(t, ns)
	cfg.Trace.Self.Endpoint = "self"
	a := startReplica(t, cfg)
	awaitReady(t, a)
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(1, 3, "a")+"\n"+profileLine(2, 3, "b")))
	require.Equal(t, http.StatusOK, code, body)
	code, body = post(t, a, "/api/v1/repairs", []byte(`{"entity": "profile", "ids": ["1", "2"], "dry_run": true}`))
	require.Equal(t, http.StatusOK, code, body)

	// Spans are exported every second: poll (10x and more).
	for _, op := range []string{"ingest.batch", "ingest.derived_write", "repair.run"} {
		var found []trace.Found
		took := until(t, 30*time.Second, op+" spans of service triad", func() bool {
			code, got := apiGet(t, a.Addr, "/api/v1/traces?service=triad&operation="+op)
			if code != http.StatusOK {
				return false
			}
			var out struct{ Traces []trace.Found }
			require.NoError(t, json.Unmarshal(got, &out))
			found = out.Traces
			return len(found) > 0
		})
		t.Logf("%s: %d traces, the first after %s", op, len(found), took)
		require.Equal(t, "triad", found[0].RootService)
	}
	code, got := apiGet(t, a.Addr, "/api/v1/traces?service=triad&operation=repair.run&attr=triad.dry_run=true&attr=triad.keys=2")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, string(got), `"root_name":"repair.run"`, "found by its attributes")
	t.Run("drift links to the trace of its write", func(t *testing.T) { driftLinksToTheTraceOfItsWrite(t, ns, a) })
}

// fanOutTrace calls the Python service's /fanout and returns its trace once
// all 12 spans are stored.
func fanOutTrace(t *testing.T, api, url string) trace.View {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var answer struct {
		TraceID string `json:"trace_id"`
	}
	require.NoError(t, json.Unmarshal(body, &answer))
	return awaitTrace(t, api, answer.TraceID, 12, 30*time.Second)
}

// awaitTrace polls the API until trace id holds at least spans spans (the
// SDKs export in batches) and returns its view; it fails after limit.
func awaitTrace(t *testing.T, api, id string, spans int, limit time.Duration) trace.View {
	t.Helper()
	start := time.Now()
	for {
		code, got := apiGet(t, api, "/api/v1/traces/"+id)
		if code == http.StatusOK {
			var v trace.View
			require.NoError(t, json.Unmarshal(got, &v))
			if v.Summary.Spans >= spans {
				return v
			}
		}
		require.Less(t, time.Since(start), limit, "%d spans of trace %s; last answer: %d %s", spans, id, code, got)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJVMLanguages runs the JVM sample service on the plain OpenTelemetry
// Java SDK (telemetry.sdk.language=java, no language attribute), each time
// with exactly one JVM-language signal, and reads its span back: the
// runtime's description, an sbt-assembly jar on the command line, or a
// Scala library's instrumentation scope each make it scala; with none it
// stays java. The standard library is on the class path behind a wildcard,
// so its jar name is not a signal here.
func TestJVMLanguages(t *testing.T) {
	t.Parallel()
	appJar := filepath.Join(serviceDir, "scalasvc", "target", "price-scala-1.0.0.jar")
	libs, err := filepath.Glob(filepath.Join(serviceDir, "scalasvc", "target", "lib", "*.jar"))
	require.NoError(t, err)
	require.NotEmpty(t, libs, "the sample services are not built: run `make trace-services` (make test does)")
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "lib"), 0o755))
	for _, f := range libs {
		copyFile(t, f, filepath.Join(dir, "lib", filepath.Base(f)))
	}
	ns := stacktest.New(t)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)
	for i, tc := range []struct {
		name, jar, resource, scope, want string
	}{
		{name: "runtime-description", jar: "price.jar", want: "scala",
			resource: "process.runtime.description=OpenJDK 64-Bit Server VM 17.0.13+11 Scala 2.13.16"},
		{name: "assembly-jar", jar: "price-assembly-1.0.0.jar", want: "scala"},
		{name: "library-scope", jar: "price.jar", scope: "sttp.client3", want: "scala"},
		{name: "no-signal", jar: "price.jar", want: "java"},
	} {
		jar := filepath.Join(dir, tc.name, tc.jar)
		require.NoError(t, os.Mkdir(filepath.Dir(jar), 0o755))
		copyFile(t, appJar, jar)
		service := "jvm-" + tc.name
		env := []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://" + a.OTLPHTTPAddr + "/v1/traces",
			"OTEL_RESOURCE_ATTRIBUTES=service.name=" + service + "," + tc.resource, "PRICE_TRACER_SCOPE=" + cmp.Or(tc.scope, "triad.testdata.jvm")}
		addr := startService(t, env, "java", "-Xmx96m", "-cp", jar+string(os.PathListSeparator)+filepath.Join(dir, "lib", "*"), "triad.Price", "0")
		traceID := fmt.Sprintf("%032x", 0xabc000+i)
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/price", nil)
		require.NoError(t, err)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		v := awaitTrace(t, a.Addr, traceID, 2, 60*time.Second)
		for _, sp := range v.Spans {
			if sp.Placeholder {
				continue // the caller's span (00f067aa0ba902b7) was never sent
			}
			require.Equal(t, service, sp.Service)
			require.Equal(t, tc.want, sp.Language, "%s: %s", tc.name, sp.Name)
		}
		t.Logf("%s: %s (%s)", tc.name, v.Summary.Languages, tc.want)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

// jaegerCriticalPath ports Jaeger UI's computeCriticalPath: from the root,
// go down into the child that finished last; at a span without such a
// child, go back up to its parent and look for the child that finished
// before this one started. The names of the spans visited, sorted.
func jaegerCriticalPath(v trace.View) []string {
	children := map[int][]int{}
	for i, sp := range v.Spans {
		if sp.Parent >= 0 {
			children[sp.Parent] = append(children[sp.Parent], i)
		}
	}
	for _, ch := range children {
		slices.SortFunc(ch, func(a, b int) int { return cmp.Compare(v.Spans[b].End, v.Spans[a].End) })
	}
	visited := map[int]bool{}
	var walk func(i int, spawn int64, returning bool)
	walk = func(i int, spawn int64, returning bool) {
		visited[i] = true
		next := -1
		for _, c := range children[i] {
			if !returning || v.Spans[c].End < spawn {
				next = c
				break
			}
		}
		switch {
		case next >= 0:
			walk(next, 0, false)
		case v.Spans[i].Parent >= 0:
			walk(v.Spans[i].Parent, v.Spans[i].Start, true)
		}
	}
	walk(0, 0, false)
	var names []string
	for i := range visited {
		names = append(names, v.Spans[i].Name)
	}
	slices.Sort(names)
	return names
}

// wideTrace is one span with attrs attributes (attr.0000…) and events
// events (event 0…), each event with one attribute.
func wideTrace(id trace.TraceID, attrs, events int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "wide-svc")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID(id))
	sp.SetSpanID(pcommon.SpanID{7, 7, 7, 7, 7, 7, 7, 7})
	sp.SetName("wide")
	start := time.Now().Add(-time.Minute)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second)))
	for i := range attrs {
		sp.Attributes().PutStr(fmt.Sprintf("attr.%04d", i), fmt.Sprintf("value %d", i))
	}
	sp.Attributes().PutStr("attr.long", strings.Repeat("x", 2000))
	for i := range events {
		ev := sp.Events().AppendEmpty()
		ev.SetName(fmt.Sprintf("event %d", i))
		ev.SetTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Millisecond)))
		ev.Attributes().PutInt("n", int64(i))
	}
	return td
}

// cycleTrace is one trace in which cycle-a calls cycle-b, which calls
// cycle-a back.
func cycleTrace() ptrace.Traces {
	td := ptrace.NewTraces()
	id := pcommon.TraceID{0xc7, 0xc1, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	start := time.Now().Add(-time.Minute)
	for i, svc := range []string{"cycle-a", "cycle-b", "cycle-a"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{0xc7, byte(i + 1), 1, 1, 1, 1, 1, 1})
		if i > 0 {
			sp.SetParentSpanID(pcommon.SpanID{0xc7, byte(i), 1, 1, 1, 1, 1, 1})
		}
		sp.SetName(fmt.Sprintf("call %d", i))
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(10-i) * time.Millisecond)))
	}
	return td
}

// driftLinksToTheTraceOfItsWrite (run by TestOwnSpans, whose replica
// exports its own spans to itself: the SDK's global provider binds
// triad's tracers once per process, so one test per package may do it):
// each profile written by a traced ingest batch keeps that batch's trace.
// A check, and every repair-log entry, name it while the row is still
// what the batch wrote; the trace lists the records it wrote and their
// consistency now. A row changed behind triad (psql) claims no trace.
func driftLinksToTheTraceOfItsWrite(t *testing.T, ns *stacktest.Namespace, a *app.App) {
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(11, 3, "a")+"\n"+profileLine(12, 3, "b")))
	require.Equal(t, http.StatusOK, code, body)

	type view struct {
		Consistent bool
		Stores     map[string]repair.StoreView
	}
	check := func(id string) view {
		code, got := apiGet(t, a.Addr, "/api/v1/checks/profile/"+id)
		require.Equal(t, http.StatusOK, code, string(got))
		var v view
		require.NoError(t, json.Unmarshal(got, &v))
		return v
	}
	// Drift written the way another service would: HSET on the cached copy.
	key := ns.RedisPrefix + "profile:11"
	until(t, 30*time.Second, "profile 11 cached", func() bool { return ns.Redis().Exists(t.Context(), key).Val() == 1 })
	require.NoError(t, ns.Redis().HSet(t.Context(), key, "tags", `["written-behind"]`).Err())
	v := check("11")
	require.False(t, v.Consistent)
	write := v.Stores["postgres"].WriteTrace
	require.Len(t, write, 32, "the primary's copy names the trace of the batch that wrote it: %+v", v.Stores["postgres"])
	write12 := check("12").Stores["postgres"].WriteTrace
	require.Len(t, write12, 32) // its shard's batch: the same trace or another

	// The trace is a real one: its ingest.batch span arrives (exported
	// every second; polled up to 30 s).
	took := until(t, 30*time.Second, "the write's trace", func() bool {
		code, got := apiGet(t, a.Addr, "/api/v1/traces/"+write)
		return code == http.StatusOK && strings.Contains(string(got), `"name":"ingest.batch"`)
	})
	t.Logf("the write's trace was readable %s after the check", took)

	// A dry-run repair's entry carries it.
	code, body = post(t, a, "/api/v1/repairs", []byte(`{"entity": "profile", "ids": [11], "dry_run": true}`))
	require.Equal(t, http.StatusOK, code, body)
	code, got := apiGet(t, a.Addr, "/api/v1/repairs?key=11&store=redis")
	require.Equal(t, http.StatusOK, code)
	var page struct{ Entries []repair.Entry }
	require.NoError(t, json.Unmarshal(got, &page))
	require.Len(t, page.Entries, 1, string(got))
	require.Equal(t, repair.ClassFieldMismatch, page.Entries[0].Class)
	require.Equal(t, write, page.Entries[0].WriteTrace)

	// Another writer changes profile 12 behind triad: no trace is claimed.
	_, err := ns.Pool().Exec(t.Context(), `UPDATE profiles SET props = '{"by": "psql"}' WHERE user_id = 12`)
	require.NoError(t, err)
	require.Empty(t, check("12").Stores["postgres"].WriteTrace)

	// From each trace to the records it wrote, as they are now.
	type record struct {
		Key        string
		Current    bool
		Consistent bool
	}
	records := func(trace string) map[string]record {
		code, got := apiGet(t, a.Addr, "/api/v1/traces/"+trace+"/records")
		require.Equal(t, http.StatusOK, code, string(got))
		var recs struct {
			Batches []struct {
				UserIDs []int64 `json:"user_ids"`
			}
			Records []record
		}
		require.NoError(t, json.Unmarshal(got, &recs))
		require.Len(t, recs.Batches, 1, string(got))
		out := map[string]record{}
		for _, r := range recs.Records {
			out[r.Key] = r
		}
		require.Len(t, out, len(recs.Batches[0].UserIDs), string(got))
		return out
	}
	r11 := records(write)["11"]
	require.True(t, r11.Current, "11 still holds what the trace wrote")
	require.False(t, r11.Consistent, "11's cached copy drifted")
	r12, ok := records(write12)["12"]
	require.True(t, ok, "12 is listed under its trace")
	require.False(t, r12.Current, "12 was changed since by another writer")
	code, _ = apiGet(t, a.Addr, "/api/v1/traces/nothex/records")
	require.Equal(t, http.StatusBadRequest, code)
}
