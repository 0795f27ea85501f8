package trace_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/trace"
	tracepg "github.com/triad-dev/triad/trace/postgres"
)

// receiver is a receiver over a real Postgres store in a test schema.
type receiver struct {
	store   *tracepg.Store
	rcv     *trace.Receiver
	http    *httptest.Server
	grpc    string
	metrics *trace.Metrics
}

func newReceiver(t testing.TB, cfg trace.Config) *receiver {
	t.Helper()
	return newReceiverToken(t, cfg, "")
}

// newReceiverToken is newReceiver requiring a sender token.
func newReceiverToken(t testing.TB, cfg trace.Config, token string) *receiver {
	t.Helper()
	ns := stacktest.New(t)
	ns.Migrate(t)
	metrics := trace.NewMetrics(nil)
	r := &receiver{store: tracepg.New(ns.Pool()), metrics: metrics}
	b := trace.NewBatcher(r.store, cfg, stacktest.Logger(t), metrics)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	r.rcv = trace.NewReceiver(b, cfg, token, stacktest.Logger(t), metrics)
	r.http = httptest.NewServer(r.rcv.Handler())
	gs := grpc.NewServer(r.rcv.GRPCServerOptions()...)
	r.rcv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(ln) }()
	r.grpc = ln.Addr().String()
	t.Cleanup(func() {
		r.http.Close()
		gs.Stop()
		cancel()
		<-done
	})
	return r
}

func traceID(b byte) pcommon.TraceID {
	return pcommon.TraceID{b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
}
func spanID(b byte) pcommon.SpanID { return pcommon.SpanID{b, 1, 2, 3, 4, 5, 6, 7} }

// request builds one export: service svc's spans of trace tb, parent
// chain 1 ← 2 ← 3, plus span 4 whose parent (9) is never sent, plus one
// span with a zero trace ID and one with a zero span ID.
func request(tb byte, svc string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	rs.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	base := time.Now().Add(-time.Minute)
	add := func(tid pcommon.TraceID, id, parent byte, name string, startMs, endMs int) ptrace.Span {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid)
		if id != 0 {
			sp.SetSpanID(spanID(id))
		}
		if parent != 0 {
			sp.SetParentSpanID(spanID(parent))
		}
		sp.SetName(name)
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(startMs) * time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(endMs) * time.Millisecond)))
		return sp
	}
	add(traceID(tb), 1, 0, "root", 0, 100)
	s2 := add(traceID(tb), 2, 1, "child", 10, 90)
	s2.Attributes().PutInt("http.status_code", 500)
	s2.Status().SetCode(ptrace.StatusCodeError)
	ev := s2.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.message", "<script>alert(1)</script>")
	add(traceID(tb), 3, 2, "grandchild", 20, 80)
	add(traceID(tb), 4, 9, "orphan", 30, 40)
	add(pcommon.TraceID{}, 5, 0, "zero trace", 0, 1)
	add(traceID(tb), 0, 0, "zero span", 0, 1)
	return td
}

// post sends an export; header holds extra name, value pairs.
func post(t *testing.T, url, contentType, encoding string, body []byte, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/traces", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, resp *http.Response) []byte {
	var b bytes.Buffer
	_, err := b.ReadFrom(resp.Body)
	require.NoError(t, err)
	return b.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	_, err := w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out.Bytes()
}

// TestReceiverStoresAndReportsPartialSuccess: protobuf, JSON and gzip
// over HTTP and protobuf over gRPC are stored; the invalid spans of each
// request are reported as partial success and every valid one is kept.
func TestReceiverStoresAndReportsPartialSuccess(t *testing.T) {
	r := newReceiver(t, trace.DefaultConfig())
	send := map[byte]func(td ptrace.Traces) ptraceotlp.ExportResponse{
		1: func(td ptrace.Traces) ptraceotlp.ExportResponse { // protobuf
			body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			require.NoError(t, err)
			resp := post(t, r.http.URL, "application/x-protobuf", "", body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
			out := ptraceotlp.NewExportResponse()
			require.NoError(t, out.UnmarshalProto(readAll(t, resp)))
			return out
		},
		2: func(td ptrace.Traces) ptraceotlp.ExportResponse { // JSON
			body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
			require.NoError(t, err)
			resp := post(t, r.http.URL, "application/json", "", body)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			out := ptraceotlp.NewExportResponse()
			require.NoError(t, out.UnmarshalJSON(readAll(t, resp)))
			return out
		},
		3: func(td ptrace.Traces) ptraceotlp.ExportResponse { // gzip protobuf
			body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			require.NoError(t, err)
			resp := post(t, r.http.URL, "application/x-protobuf", "gzip", gzipped(t, body))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			out := ptraceotlp.NewExportResponse()
			require.NoError(t, out.UnmarshalProto(readAll(t, resp)))
			return out
		},
		4: func(td ptrace.Traces) ptraceotlp.ExportResponse { // gRPC
			conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			out, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
			require.NoError(t, err)
			return out
		},
	}
	for tb, fn := range send {
		before := r.metrics.Refused()
		out := fn(request(tb, "svc"))
		ps := out.PartialSuccess()
		require.Equal(t, int64(2), ps.RejectedSpans(), "request %d", tb)
		require.Equal(t, before+2, r.metrics.Refused(), "what the trace_ingest_rejecting rule reads")
		require.Contains(t, ps.ErrorMessage(), "trace_id is all zero")
		require.Contains(t, ps.ErrorMessage(), "span_id is all zero")

		id := trace.TraceID(traceID(tb))
		spans, more, err := r.store.Trace(t.Context(), id, 100, 100)
		require.NoError(t, err)
		require.False(t, more)
		require.Len(t, spans, 4, "request %d: every valid span kept", tb)
		a := trace.Assemble(id, spans, trace.AssembleOptions{})
		require.Equal(t, 1, a.Summary.Orphans, "span 4's parent never arrives: a counted orphan")
		require.Equal(t, 1, a.Summary.Errors)
		require.Equal(t, []string{"go"}, a.Summary.Languages)
		var child *trace.Node
		for i := range a.Nodes {
			if a.Nodes[i].Name == "child" {
				child = &a.Nodes[i]
			}
		}
		require.NotNil(t, child)
		child.Decode()
		require.Empty(t, child.Garbled)
		require.EqualValues(t, 500, child.Attributes["http.status_code"])
		require.Equal(t, "<script>alert(1)</script>", child.Events[0].Attributes["exception.message"])
		require.Equal(t, "svc", child.Resource["service.name"])
	}
}

func statusOf(t *testing.T, resp *http.Response) *statuspb.Status {
	t.Helper()
	st := &statuspb.Status{}
	body := readAll(t, resp)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, protojson.Unmarshal(body, st), string(body))
	} else {
		require.NoError(t, proto.Unmarshal(body, st))
	}
	return st
}

// TestReceiverRefusesBadRequests: each bad request gets its specified
// status and a reason, never a 500.
func TestReceiverRefusesBadRequests(t *testing.T) {
	cfg := trace.DefaultConfig()
	cfg.MaxBodyBytes = 64 << 10
	r := newReceiver(t, cfg)
	big := bytes.Repeat([]byte("x"), 100<<10)
	for _, c := range []struct {
		name, contentType, encoding string
		body                        []byte
		want                        int
		reason                      string
	}{
		{"malformed protobuf", "application/x-protobuf", "", []byte{0x0a, 0xff, 0xff, 0xff}, 400, "malformed OTLP protobuf"},
		{"malformed JSON", "application/json", "", []byte(`{"resourceSpans": [`), 400, "malformed OTLP json"},
		{"JSON with a bad trace ID", "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708"}]}]}]}`), 400, "malformed OTLP json"},
		{"wrong content type", "text/plain", "", []byte("hello"), 415, "application/x-protobuf or application/json"},
		{"unknown encoding", "application/x-protobuf", "br", []byte("x"), 415, "Content-Encoding"},
		{"bad gzip", "application/x-protobuf", "gzip", []byte("not gzip"), 400, "gzip"},
		{"oversized", "application/x-protobuf", "", big, 413, "over the limit"},
		{"oversized after gunzip", "application/x-protobuf", "gzip", gzipped(t, big), 413, "after decompression"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := post(t, r.http.URL, c.contentType, c.encoding, c.body)
			require.Equal(t, c.want, resp.StatusCode)
			require.Contains(t, statusOf(t, resp).GetMessage(), c.reason)
		})
	}
	// A JSON body gets a JSON status.
	resp := post(t, r.http.URL, "application/json", "", []byte("nope"))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	// gRPC: a message over the limit is RESOURCE_EXHAUSTED.
	td := request(7, strings.Repeat("s", 100<<10))
	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(td))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
}

// blocking is a Submitter that holds every request until released: a
// unit test of the receiver's own limits.
type blocking struct {
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) Submit(ctx context.Context, _ []trace.Span) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	return nil
}

type overloaded struct{}

func (overloaded) Submit(context.Context, []trace.Span) error { return trace.ErrOverloaded }

// TestReceiverOverload: a request beyond MaxConcurrent waits QueueWait
// and gets 429 with Retry-After; a full write queue gets 503 with
// Retry-After (gRPC: UNAVAILABLE).
func TestReceiverOverload(t *testing.T) {
	cfg := trace.DefaultConfig()
	cfg.MaxConcurrent, cfg.QueueWait = 1, 20*time.Millisecond
	b := &blocking{entered: make(chan struct{}), release: make(chan struct{})}
	srv := httptest.NewServer(trace.NewReceiver(b, cfg, "", stacktest.Logger(t), trace.NewMetrics(nil)).Handler())
	defer srv.Close()
	body, err := ptraceotlp.NewExportRequestFromTraces(request(1, "svc")).MarshalProto()
	require.NoError(t, err)
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/traces", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-b.entered
	resp := post(t, srv.URL, "application/x-protobuf", "", body)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	close(b.release)
	require.Equal(t, http.StatusOK, <-first)

	srv2 := httptest.NewServer(trace.NewReceiver(overloaded{}, trace.DefaultConfig(), "", stacktest.Logger(t), trace.NewMetrics(nil)).Handler())
	defer srv2.Close()
	resp = post(t, srv2.URL, "application/x-protobuf", "", body)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"))
	require.Contains(t, statusOf(t, resp).GetMessage(), "retry later")
}

// slowStore holds writes, so the batcher's pending bound is reached.
type slowStore struct {
	trace.Store
	entered, release chan struct{}
}

func (s slowStore) Write(ctx context.Context, _ []trace.Span) error {
	s.entered <- struct{}{}
	<-s.release
	return nil
}

// TestBatcherBoundsPendingSpans: spans beyond MaxPendingSpans are refused
// at once with ErrOverloaded; accepted ones are written.
func TestBatcherBoundsPendingSpans(t *testing.T) {
	cfg := trace.DefaultConfig()
	cfg.MaxPendingSpans, cfg.Writers = 10, 1
	st := slowStore{entered: make(chan struct{}, 2), release: make(chan struct{})}
	b := trace.NewBatcher(st, cfg, stacktest.Logger(t), trace.NewMetrics(nil))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = b.Run(ctx) }()
	errs := make(chan error, 1)
	go func() { errs <- b.Submit(ctx, make([]trace.Span, 8)) }()
	<-st.entered // 8 spans are being written: 8 pending
	require.ErrorIs(t, b.Submit(ctx, make([]trace.Span, 5)), trace.ErrOverloaded)
	close(st.release)
	require.NoError(t, <-errs)
	require.NoError(t, b.Submit(ctx, make([]trace.Span, 5)), "room again once written")
}

// TestReceiverToken: with auth.otlp_token set, exports without it (or with
// another) are 401 over HTTP and UNAUTHENTICATED over gRPC; with it they
// are stored.
func TestReceiverToken(t *testing.T) {
	const token = "otlp-token-0123456789abcdef"
	r := newReceiverToken(t, trace.DefaultConfig(), token)
	body, err := ptraceotlp.NewExportRequestFromTraces(request(7, "svc")).MarshalProto()
	require.NoError(t, err)
	send := func(auth string) *http.Response {
		if auth == "" {
			return post(t, r.http.URL, "application/x-protobuf", "", body)
		}
		return post(t, r.http.URL, "application/x-protobuf", "", body, "Authorization", auth)
	}
	for _, bad := range []string{"", "Bearer wrong", token} {
		resp := send(bad)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, bad)
		require.Contains(t, statusOf(t, resp).GetMessage(), "auth.otlp_token")
	}
	require.Equal(t, http.StatusOK, send("Bearer "+token).StatusCode)

	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	_, err = client.Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(request(8, "svc")))
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	_, err = client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(request(8, "svc")))
	require.NoError(t, err)
}
