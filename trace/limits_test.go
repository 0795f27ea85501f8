package trace_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/trace"
)

// TestBadSpansCostOnlyThemselves: one request holds good spans, spans the
// specification or the store cannot take (an end before its start, no
// start time, a NUL in its name, an attribute that is not UTF-8) and a
// span over every limit, while 30 other senders export at the same time.
// The bad spans are rejected alone (partial success, each reason named),
// the good ones and the one over the limits are stored, the latter cut
// with its dropped counts, and every other sender gets 200 with all its
// spans stored.
func TestBadSpansCostOnlyThemselves(t *testing.T) {
	t.Parallel()
	cfg := trace.DefaultConfig()
	cfg.BatchDelay = 50 * time.Millisecond // batches mix the senders' spans
	r := newReceiver(t, cfg)
	base := time.Now().Add(-time.Minute)
	ts := func(ms int) pcommon.Timestamp {
		return pcommon.NewTimestampFromTime(base.Add(time.Duration(ms) * time.Millisecond))
	}

	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "mixed")
	ss := rs.ScopeSpans().AppendEmpty()
	add := func(id byte, name string, start, end pcommon.Timestamp) ptrace.Span {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(traceID(200))
		sp.SetSpanID(spanID(id))
		sp.SetName(name)
		sp.SetStartTimestamp(start)
		sp.SetEndTimestamp(end)
		return sp
	}
	add(1, "good root", ts(0), ts(100))
	add(2, "good child", ts(10), ts(90)).SetParentSpanID(spanID(1))
	add(3, "ends before it starts", ts(50), ts(40))
	add(4, "no start", 0, ts(40))
	add(5, "nul\x00name", ts(10), ts(20))
	add(6, "bad utf8", ts(10), ts(20)).Attributes().PutStr("k", "caf\xe9")
	big := add(7, "over every limit", ts(10), ts(20))
	big.SetDroppedAttributesCount(3) // the sender's own
	for i := range 200 {
		big.Attributes().PutInt(fmt.Sprintf("attr.%03d", i), int64(i))
	}
	big.Attributes().PutStr("attr.000", strings.Repeat("é", 50_000)) // 100,000 bytes
	for i := range 200 {
		ev := big.Events().AppendEmpty()
		ev.SetName(fmt.Sprintf("event %d", i))
		ev.SetTimestamp(ts(15))
	}
	for i := range 150 {
		l := big.Links().AppendEmpty()
		l.SetTraceID(traceID(201))
		l.SetSpanID(spanID(byte(i + 1)))
	}

	others := 30
	var wg sync.WaitGroup
	codes := make([]int, others)
	for i := range others {
		wg.Go(func() {
			body, err := ptraceotlp.NewExportRequestFromTraces(request(byte(i+1), fmt.Sprintf("sender-%d", i))).MarshalProto()
			require.NoError(t, err)
			resp := post(t, r.http.URL, "application/x-protobuf", "", body)
			readAll(t, resp)
			codes[i] = resp.StatusCode
		})
	}
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	resp := post(t, r.http.URL, "application/x-protobuf", "", body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := ptraceotlp.NewExportResponse()
	require.NoError(t, out.UnmarshalProto(readAll(t, resp)))
	wg.Wait()

	ps := out.PartialSuccess()
	require.Equal(t, int64(4), ps.RejectedSpans(), ps.ErrorMessage())
	for _, reason := range []string{"ends 10000000 ns before it starts", "start and end times must be set", "a NUL character", "not UTF-8"} {
		require.Contains(t, ps.ErrorMessage(), reason)
	}
	for i, c := range codes {
		require.Equal(t, http.StatusOK, c, "sender %d is not affected", i)
		spans, _, err := r.store.Trace(t.Context(), trace.TraceID(traceID(byte(i+1))), 100, 100)
		require.NoError(t, err)
		require.Len(t, spans, 4, "sender %d: every valid span stored", i)
	}

	spans, _, err := r.store.Trace(t.Context(), trace.TraceID(traceID(200)), 100, 100)
	require.NoError(t, err)
	require.Len(t, spans, 3, "the good spans and the one over the limits")
	var cut *trace.Span
	for i := range spans {
		if spans[i].Name == "over every limit" {
			cut = &spans[i]
		}
	}
	require.NotNil(t, cut)
	cut.Decode()
	require.Empty(t, cut.Garbled)
	lim := cfg.Limits
	require.Len(t, cut.Attributes, lim.Attributes)
	require.EqualValues(t, 3+200-lim.Attributes, cut.DroppedAttributes, "the sender's own count plus what triad dropped")
	v := cut.Attributes["attr.000"].(string)
	require.LessOrEqual(t, len(v), lim.AttributeValueBytes+len("…[+100000 bytes]"))
	require.True(t, strings.HasSuffix(v, fmt.Sprintf("…[+%d bytes]", 100_000-lim.AttributeValueBytes)), v[len(v)-30:])
	require.Len(t, cut.Events, lim.Events)
	require.EqualValues(t, 200-lim.Events, cut.DroppedEvents)
	require.Len(t, cut.Links, lim.Links)
	require.EqualValues(t, 150-lim.Links, cut.DroppedLinks)
	// The view shows the counts.
	a := trace.Assemble(trace.TraceID(traceID(200)), spans, trace.AssembleOptions{})
	for _, sp := range a.View().Spans {
		if sp.Name == "over every limit" {
			require.Equal(t, &trace.Dropped{Attributes: 75, Events: 72, Links: 22}, sp.Dropped)
		} else {
			require.Nil(t, sp.Dropped, sp.Name)
		}
	}
}

// poisonStore refuses any write holding a span named "poison", as
// Postgres refuses a value it cannot hold.
type poisonStore struct {
	trace.Store
	mu     sync.Mutex
	writes [][]string
}

func (p *poisonStore) Write(_ context.Context, spans []trace.Span) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	p.writes = append(p.writes, names)
	for _, s := range spans {
		if s.Name == "poison" {
			return fmt.Errorf("%w: copy: invalid byte sequence", trace.ErrRejected)
		}
	}
	return nil
}

// TestBatcherIsolatesARefusedRequest: when the store refuses a batch for
// its content, each request of the batch is written alone, so only the
// request holding the refused span fails.
func TestBatcherIsolatesARefusedRequest(t *testing.T) {
	t.Parallel()
	cfg := trace.DefaultConfig()
	cfg.BatchDelay, cfg.Writers = 300*time.Millisecond, 1
	st := &poisonStore{}
	b := trace.NewBatcher(st, cfg, stacktest.Logger(t), trace.NewMetrics(nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, name := range []string{"good-a", "poison", "good-b"} {
		wg.Go(func() { errs[i] = b.Submit(t.Context(), []trace.Span{{Name: name}}) })
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.True(t, errors.Is(errs[1], trace.ErrRejected), "%v", errs[1])
	require.NoError(t, errs[2])
	st.mu.Lock()
	defer st.mu.Unlock()
	require.Len(t, st.writes[0], 3, "the three requests were batched together first")
	require.Len(t, st.writes, 4, "then each written alone")
}

// bytesCodec sends a message's bytes as they are (a test's malformed
// request).
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (bytesCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (bytesCodec) Name() string { return "proto" }

// TestGRPCMalformedIsInvalidArgument: bytes that are not an OTLP export
// request get INVALID_ARGUMENT (not INTERNAL, which senders read as the
// server's fault), and a well-formed request on the same connection is
// still stored.
func TestGRPCMalformedIsInvalidArgument(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, trace.DefaultConfig())
	conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	bad := []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01} // a field longer than the message
	var out []byte
	err = conn.Invoke(t.Context(), "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &bad, &out, grpc.ForceCodec(bytesCodec{}))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "malformed OTLP protobuf")

	resp, err := ptraceotlp.NewGRPCClient(conn).Export(t.Context(), ptraceotlp.NewExportRequestFromTraces(request(77, "after-bad")))
	require.NoError(t, err)
	require.EqualValues(t, 2, resp.PartialSuccess().RejectedSpans(), "the usual zero-ID spans")
	spans, _, err := r.store.Trace(t.Context(), trace.TraceID(traceID(77)), 100, 100)
	require.NoError(t, err)
	require.Len(t, spans, 4)
}
