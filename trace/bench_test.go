package trace_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/trace"
)

// batch builds an export request of n spans in traces of 100 spans (a
// root and a chain of children), with a few attributes each, as an
// instrumented HTTP service sends them. seq makes trace IDs unique.
func batch(seq uint64, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "bench-svc")
	rs.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
	rs.Resource().Attributes().PutStr("host.name", "bench-host")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("bench")
	start := time.Now().Add(-time.Minute)
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		var tid pcommon.TraceID
		var x [8]byte
		for b := range 8 {
			x[b] = byte((seq*uint64(n) + uint64(i/100)) >> (8 * b))
		}
		copy(tid[:8], x[:])
		tid[15] = 1
		sp.SetTraceID(tid)
		sp.SetSpanID(pcommon.SpanID{byte(i % 100), 1, 2, 3, 4, 5, 6, byte(i%100) + 1})
		if i%100 != 0 {
			sp.SetParentSpanID(pcommon.SpanID{byte(i%100 - 1), 1, 2, 3, 4, 5, 6, byte(i % 100)})
		}
		sp.SetName(fmt.Sprintf("GET /api/items/%d", i%20))
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Microsecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i)*time.Microsecond + time.Millisecond)))
		sp.Attributes().PutStr("http.request.method", "GET")
		sp.Attributes().PutInt("http.response.status_code", 200)
		sp.Attributes().PutStr("url.path", "/api/items")
	}
	return td
}

// BenchmarkOTLPIngest posts OTLP/HTTP requests of 1000 spans from 8
// senders into a receiver backed by the real Postgres store and reports
// spans/s stored (each request is answered after its spans commit).
func BenchmarkOTLPIngest(b *testing.B) {
	for _, enc := range []string{"protobuf", "json"} {
		b.Run(enc, func(b *testing.B) {
			r := newReceiver(b, trace.DefaultConfig())
			const perRequest, senders = 1000, 8
			bodies := make([][]byte, 64)
			for i := range bodies {
				req := ptraceotlp.NewExportRequestFromTraces(batch(uint64(i), perRequest))
				var err error
				if enc == "json" {
					bodies[i], err = req.MarshalJSON()
				} else {
					bodies[i], err = req.MarshalProto()
				}
				require.NoError(b, err)
			}
			ct := map[string]string{"protobuf": "application/x-protobuf", "json": "application/json"}[enc]
			var next atomic.Int64
			var failed atomic.Int64
			requests := max(b.N, 2*senders)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range senders {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(requests) {
							return
						}
						resp, err := http.Post(r.http.URL+"/v1/traces", ct, bytes.NewReader(bodies[i%int64(len(bodies))]))
						if err != nil || resp.StatusCode != http.StatusOK {
							failed.Add(1)
						}
						if resp != nil {
							resp.Body.Close()
						}
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			b.StopTimer()
			require.Zero(b, failed.Load(), "every request stored")
			b.ReportMetric(float64(requests*perRequest)/took.Seconds(), "spans/s")
			b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkTraceByID reads and assembles one 10k-span trace of three
// services from the real Postgres store and reports p50 and p99.
func BenchmarkTraceByID(b *testing.B) {
	r := newReceiver(b, trace.DefaultConfig())
	const n = 10000
	id := trace.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}
	d := trace.FromOTLP(trace.SyntheticTrace(id, n, time.Now().Add(-time.Minute)), trace.DefaultLimits())
	require.Len(b, d.Spans, n)
	require.NoError(b, r.store.Write(context.Background(), d.Spans))
	var times []time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		spans, _, err := r.store.Trace(context.Background(), id, 50000, trace.DefaultConfig().MaxDetailSpans)
		require.NoError(b, err)
		a := trace.Assemble(id, spans, trace.AssembleOptions{})
		_ = a.View()
		times = append(times, time.Since(t0))
		require.Equal(b, n, a.Summary.Spans)
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkSpanStoreWrite is the baseline for BenchmarkOTLPIngest: the
// same spans, already decoded, written by two writers in batches of 5000
// straight into the Postgres store (no HTTP, no decoding).
func BenchmarkSpanStoreWrite(b *testing.B) {
	r := newReceiver(b, trace.DefaultConfig())
	batches := make([][]trace.Span, 64)
	for i := range batches {
		batches[i] = trace.FromOTLP(batch(uint64(1000+i), 5000), trace.DefaultLimits()).Spans
	}
	var next atomic.Int64
	total := max(b.N, 4)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 2 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				if err := r.store.Write(context.Background(), batches[i%int64(len(batches))]); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(b, failed.Load(), "every batch written")
	b.ReportMetric(float64(total*5000)/time.Since(start).Seconds(), "spans/s")
}

// peakRSS is this process's peak resident set (VmHWM): the receiver, the
// batcher, the store's client and the senders with their 64 prepared
// bodies; 0 where /proc is missing.
func peakRSS() int64 { return procStatus("VmHWM:") }

// BenchmarkRead50kTrace reads one 50,000-span trace through the API (the
// real Postgres store, assembly, JSON, gzip as asked) and reports how much
// the process's RSS grew while it did (VmHWM after the read, reset before
// it through /proc/self/clear_refs, against VmRSS before), with the
// detail budget (trace.max_detail_spans) and with every span's details.
func BenchmarkRead50kTrace(b *testing.B) {
	r := newReceiver(b, trace.DefaultConfig())
	const n = 50000
	id := trace.TraceID{5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}
	d := trace.FromOTLP(trace.SyntheticTrace(id, n, time.Now().Add(-time.Minute)), trace.DefaultLimits())
	require.Len(b, d.Spans, n)
	for i := 0; i < n; i += 5000 {
		require.NoError(b, r.store.Write(context.Background(), d.Spans[i:i+5000]))
	}
	d = trace.Decoded{}
	for _, details := range []int{trace.DefaultConfig().MaxDetailSpans, n} {
		b.Run(fmt.Sprintf("details=%d", details), func(b *testing.B) {
			reg := prometheus.NewRegistry()
			s := server.New(server.Options{Config: server.DefaultConfig(), Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg,
				Auth:   auth.NewAuthenticator(nil, "bench-token-0123456789abcdef"),
				Traces: &server.Traces{Store: r.store, MaxSpans: n, DetailSpans: details}})
			var growth, size int64
			var took time.Duration
			for range b.N {
				runtime.GC()
				debug.FreeOSMemory()
				before := procStatus("VmRSS:")
				require.NoError(b, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)) // VmHWM := VmRSS
				req := httptest.NewRequest(http.MethodGet, "/api/v1/traces/"+id.String(), nil)
				req.Host = "127.0.0.1:8383"
				req.Header.Set("Authorization", "Bearer bench-token-0123456789abcdef")
				req.Header.Set("Accept-Encoding", "gzip")
				rec := httptest.NewRecorder()
				t0 := time.Now()
				s.Handler().ServeHTTP(rec, req)
				took = time.Since(t0)
				require.Equal(b, http.StatusOK, rec.Code)
				require.Equal(b, "gzip", rec.Header().Get("Content-Encoding"))
				growth = max(growth, procStatus("VmHWM:")-before)
				size = int64(rec.Body.Len())
			}
			b.ReportMetric(float64(growth)/(1<<20), "rss-growth-MiB")
			b.ReportMetric(float64(size)/(1<<20), "gzip-MiB")
			b.ReportMetric(float64(took.Milliseconds()), "ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// procStatus reads one of /proc/self/status's kB lines, in bytes.
func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
