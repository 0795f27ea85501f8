package trace

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/sync/semaphore"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // gzip-compressed gRPC requests
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Submitter takes decoded spans and answers once they are stored
// (Batcher).
type Submitter interface {
	Submit(ctx context.Context, spans []Span) error
}

// Receiver is the OTLP/HTTP and OTLP/gRPC trace receiver, as the OTLP
// specification describes them: protobuf and JSON bodies, gzip, partial
// success for rejected spans, 400 for malformed bodies, 413 for bodies
// over the limit, 415 for other media types, 429 (too many requests in
// flight) and 503 (writes backed up or the store down) with Retry-After.
// It never answers 500: every failure says whether to retry.
type Receiver struct {
	sub   Submitter
	cfg   Config
	log   *slog.Logger
	m     *Metrics
	slot  chan struct{} // decoding slots (Config.MaxConcurrent)
	token []byte        // the bearer token senders must present; nil: none
	// bytes is the budget of request bodies being received at once,
	// charged as the bytes arrive (Config.MaxInflightBytes).
	bytes *semaphore.Weighted
}

// NewReceiver returns a receiver handing spans to sub. A non-empty token
// is required of every sender as "Authorization: Bearer <token>" (HTTP
// header or gRPC metadata); others get 401 / UNAUTHENTICATED.
func NewReceiver(sub Submitter, cfg Config, token string, log *slog.Logger, m *Metrics) *Receiver {
	r := &Receiver{sub: sub, cfg: cfg, log: log.With("component", "trace.receiver"), m: m, slot: make(chan struct{}, cfg.MaxConcurrent),
		bytes: semaphore.NewWeighted(int64(cfg.MaxInflightBytes))}
	if token != "" {
		r.token = []byte("Bearer " + token)
	}
	return r
}

// authorized checks a sender's Authorization value in constant time.
func (r *Receiver) authorized(got string) bool {
	return r.token == nil || subtle.ConstantTimeCompare([]byte(got), r.token) == 1
}

// Retry-After values, in seconds.
const (
	retryBusy       = 1 // too many requests decoding
	retryBackedUp   = 2 // write queue full
	retryStoreError = 5 // the store failed
)

// acquire takes a decoding slot, waiting up to QueueWait.
func (r *Receiver) acquire(ctx context.Context) bool {
	select {
	case r.slot <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(r.cfg.QueueWait)
	defer t.Stop()
	select {
	case r.slot <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (r *Receiver) release() { <-r.slot }

// Handler serves POST /v1/traces.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/traces", r.serveHTTP)
	return mux
}

type httpAnswer struct {
	code    int
	retry   int // seconds; 0: no Retry-After
	message string
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	encoding := "protobuf"
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch mt {
	case "application/x-protobuf", "application/protobuf":
	case "application/json":
		encoding = "json"
	default:
		r.answerHTTP(w, "unknown", encoding, httpAnswer{http.StatusUnsupportedMediaType, 0,
			fmt.Sprintf("Content-Type %q: OTLP/HTTP takes application/x-protobuf or application/json", req.Header.Get("Content-Type"))}, nil)
		return
	}
	if !r.authorized(req.Header.Get("Authorization")) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="triad-otlp"`)
		r.answerHTTP(w, encoding, encoding, httpAnswer{http.StatusUnauthorized, 0, "OTLP export needs Authorization: Bearer <auth.otlp_token>"}, nil)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		r.answerHTTP(w, encoding, encoding, httpAnswer{http.StatusMethodNotAllowed, 0, "OTLP/HTTP exports are POST requests"}, nil)
		return
	}
	// The body is received before a decoding slot is taken, within
	// BodyTimeout and charged to the byte budget as it arrives: a slow
	// sender holds only the bytes it sent, for at most BodyTimeout, and
	// never a slot that real exporters need.
	wire, charged, ans := r.receive(w, req)
	defer r.bytes.Release(charged)
	if ans.code != 0 {
		r.answerHTTP(w, encoding, encoding, ans, nil)
		return
	}
	if !r.acquire(req.Context()) {
		r.answerHTTP(w, encoding, encoding, httpAnswer{http.StatusTooManyRequests, retryBusy, "too many export requests in flight; retry later"}, nil)
		return
	}
	defer r.release()
	ans, resp := r.export(req, wire, encoding)
	r.answerHTTP(w, encoding, encoding, ans, resp)
}

// receiveStep is how many bytes of a body are read (and charged to the
// budget) at a time.
const receiveStep = 64 << 10

// receive reads a request's body as sent (compressed or not), at most
// MaxBodyBytes, within BodyTimeout, charging the byte budget step by
// step; it returns the body, what it charged (the caller releases it),
// and an answer when the body cannot be taken.
func (r *Receiver) receive(w http.ResponseWriter, req *http.Request) ([]byte, int64, httpAnswer) {
	limit := int64(r.cfg.MaxBodyBytes)
	if req.ContentLength > limit {
		return nil, 0, httpAnswer{http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("body of %d bytes is over the limit of %d", req.ContentLength, limit)}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(r.cfg.BodyTimeout))
	var buf []byte
	var charged int64
	for {
		if int64(len(buf)) > limit {
			return nil, charged, httpAnswer{http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("body is over the limit of %d bytes", limit)}
		}
		if len(buf) == cap(buf) {
			if !r.bytes.TryAcquire(receiveStep) {
				return nil, charged, httpAnswer{http.StatusTooManyRequests, retryBusy, "too many export bytes in flight; retry later"}
			}
			charged += receiveStep
			buf = append(buf, make([]byte, receiveStep)...)[:len(buf)]
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, charged, httpAnswer{}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, charged, httpAnswer{http.StatusRequestTimeout, retryBusy, fmt.Sprintf("the body did not arrive within %s", r.cfg.BodyTimeout)}
			}
			return nil, charged, httpAnswer{http.StatusBadRequest, 0, "read body: " + err.Error()}
		}
	}
}

// export decompresses, decodes and stores one request's body.
func (r *Receiver) export(req *http.Request, wire []byte, encoding string) (httpAnswer, *ptraceotlp.ExportResponse) {
	limit := int64(r.cfg.MaxBodyBytes)
	var body io.Reader = bytes.NewReader(wire)
	switch ce := req.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return httpAnswer{http.StatusBadRequest, 0, "gzip body: " + err.Error()}, nil
		}
		defer zr.Close()
		body = io.LimitReader(zr, limit+1) // the limit holds after decompression too
	default:
		return httpAnswer{http.StatusUnsupportedMediaType, 0, fmt.Sprintf("Content-Encoding %q: gzip or none", ce)}, nil
	}
	raw, err := io.ReadAll(body)
	switch {
	case err != nil:
		return httpAnswer{http.StatusBadRequest, 0, "read body: " + err.Error()}, nil
	case int64(len(raw)) > limit:
		return httpAnswer{http.StatusRequestEntityTooLarge, 0, fmt.Sprintf("body is over the limit of %d bytes (after decompression)", limit)}, nil
	}
	er := ptraceotlp.NewExportRequest()
	if encoding == "json" {
		err = er.UnmarshalJSON(raw)
	} else {
		err = er.UnmarshalProto(raw)
	}
	if err != nil {
		return httpAnswer{http.StatusBadRequest, 0, fmt.Sprintf("malformed OTLP %s: %v", encoding, err)}, nil
	}
	resp, code, msg := r.store(req.Context(), "http", er)
	switch code {
	case codes.OK:
		return httpAnswer{code: http.StatusOK}, &resp
	case codes.ResourceExhausted:
		return httpAnswer{http.StatusServiceUnavailable, retryBackedUp, msg}, nil
	case codes.InvalidArgument:
		return httpAnswer{http.StatusBadRequest, 0, msg}, nil
	default:
		return httpAnswer{http.StatusServiceUnavailable, retryStoreError, msg}, nil
	}
}

// store converts and submits one request's spans; the code is OK,
// ResourceExhausted (backed up), InvalidArgument (the store refused their
// content) or Unavailable (the store failed).
func (r *Receiver) store(ctx context.Context, protocol string, er ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, codes.Code, string) {
	d := FromOTLP(er.Traces(), r.cfg.Limits)
	resp := ptraceotlp.NewExportResponse()
	if d.Rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(int64(d.Rejected))
		resp.PartialSuccess().SetErrorMessage(d.Message())
		r.m.spansTurnedAway(protocol, "rejected", d.Rejected)
	}
	err := r.sub.Submit(ctx, d.Spans)
	switch {
	case err == nil:
		r.m.spans.WithLabelValues(protocol, "accepted").Add(float64(len(d.Spans)))
		return resp, codes.OK, ""
	case errors.Is(err, ErrOverloaded):
		r.m.spansTurnedAway(protocol, "refused", len(d.Spans))
		return resp, codes.ResourceExhausted, err.Error()
	case errors.Is(err, ErrRejected):
		// The store refused these spans' content (written alone, so no
		// other sender's): retrying them would fail again.
		r.m.spansTurnedAway(protocol, "rejected", len(d.Spans))
		r.log.Warn("spans refused by the store", "spans", len(d.Spans), "err", err)
		return resp, codes.InvalidArgument, "the span store refused this request's spans: " + err.Error()
	default:
		r.m.spansTurnedAway(protocol, "refused", len(d.Spans))
		r.log.Warn("spans not stored", "spans", len(d.Spans), "err", err)
		return resp, codes.Unavailable, "the span store is unavailable; retry later"
	}
}

// answerHTTP writes a response body in the request's encoding: the
// export response, or a google.rpc.Status with the message.
func (r *Receiver) answerHTTP(w http.ResponseWriter, label, encoding string, a httpAnswer, resp *ptraceotlp.ExportResponse) {
	r.m.requests.WithLabelValues("http", label, strconv.Itoa(a.code)).Inc()
	var body []byte
	var err error
	switch {
	case resp != nil && encoding == "json":
		body, err = resp.MarshalJSON()
	case resp != nil:
		body, err = resp.MarshalProto()
	default:
		st := &statuspb.Status{Code: int32(httpToCode(a.code)), Message: a.message}
		if encoding == "json" {
			body, err = protojson.Marshal(st)
		} else {
			body, err = proto.Marshal(st)
		}
	}
	if err != nil {
		r.log.Error("encode answer", "err", err)
	}
	if encoding == "json" {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	if a.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(a.retry))
	}
	w.WriteHeader(a.code)
	_, _ = w.Write(body)
}

func httpToCode(status int) codes.Code {
	switch status {
	case http.StatusOK:
		return codes.OK
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusRequestEntityTooLarge:
		return codes.ResourceExhausted
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return codes.Unimplemented
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	}
	return codes.Unavailable
}

// RegisterGRPC registers the OTLP trace service on s (built with
// GRPCServerOptions).
func (r *Receiver) RegisterGRPC(s *grpc.Server) {
	s.RegisterService(&traceServiceDesc, &grpcService{r: r})
}

// GRPCServerOptions are the options the gRPC server must be built with:
// the body limit (larger messages get RESOURCE_EXHAUSTED), and a codec
// that hands the OTLP service its request's bytes undecoded, so a
// malformed request is INVALID_ARGUMENT (grpc-go answers a codec failure
// with INTERNAL, which senders read as a server fault).
func (r *Receiver) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(r.cfg.MaxBodyBytes), grpc.ForceServerCodec(rawCodec{})}
}

// rawFrame is a gRPC message's bytes, undecoded.
type rawFrame struct{ b []byte }

// rawCodec moves messages as bytes (rawFrame); the handler decodes them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*rawFrame)
	if !ok {
		return nil, fmt.Errorf("otlp grpc codec: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*rawFrame)
	if !ok {
		return fmt.Errorf("otlp grpc codec: cannot unmarshal into %T", v)
	}
	f.b = append(f.b[:0], data...) // gRPC may reuse data's buffer
	return nil
}

func (rawCodec) Name() string { return "proto" }

// rawExporter is what the service descriptor's handler calls.
type rawExporter interface {
	exportRaw(ctx context.Context, req []byte) (*rawFrame, error)
}

// traceServiceDesc is the OTLP trace service
// (opentelemetry.proto.collector.trace.v1.TraceService/Export) over
// rawCodec.
var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*rawExporter)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(rawFrame)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(rawExporter).exportRaw(ctx, in.b)
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// exportRaw decodes one request (malformed: INVALID_ARGUMENT) and
// exports it.
func (g *grpcService) exportRaw(ctx context.Context, req []byte) (*rawFrame, error) {
	er := ptraceotlp.NewExportRequest()
	if err := er.UnmarshalProto(req); err != nil {
		g.r.m.requests.WithLabelValues("grpc", "protobuf", codes.InvalidArgument.String()).Inc()
		return nil, status.Error(codes.InvalidArgument, "malformed OTLP protobuf: "+err.Error())
	}
	resp, err := g.Export(ctx, er)
	if err != nil {
		return nil, err
	}
	b, err := resp.MarshalProto()
	if err != nil {
		return nil, status.Error(codes.Internal, "encode the answer: "+err.Error())
	}
	return &rawFrame{b: b}, nil
}

type grpcService struct {
	r *Receiver
}

// Export implements the OTLP trace service. Overload and store failures
// are UNAVAILABLE, which OTLP senders retry with back-off.
func (g *grpcService) Export(ctx context.Context, er ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	r := g.r
	if r.token != nil {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) != 1 || !r.authorized(v[0]) {
			r.m.requests.WithLabelValues("grpc", "protobuf", codes.Unauthenticated.String()).Inc()
			return ptraceotlp.NewExportResponse(), status.Error(codes.Unauthenticated, "OTLP export needs authorization: Bearer <auth.otlp_token> metadata")
		}
	}
	if !r.acquire(ctx) {
		r.m.requests.WithLabelValues("grpc", "protobuf", codes.Unavailable.String()).Inc()
		return ptraceotlp.NewExportResponse(), status.Error(codes.Unavailable, "too many export requests in flight; retry later")
	}
	defer r.release()
	resp, code, msg := r.store(ctx, "grpc", er)
	if code != codes.OK {
		if code != codes.InvalidArgument {
			code = codes.Unavailable // retried by senders with back-off
		}
		r.m.requests.WithLabelValues("grpc", "protobuf", code.String()).Inc()
		return resp, status.Error(code, msg)
	}
	r.m.requests.WithLabelValues("grpc", "protobuf", code.String()).Inc()
	return resp, nil
}
