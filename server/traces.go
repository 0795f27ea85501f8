package server

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/trace"
)

// Traces answers trace lookups (the span store) and how they are
// assembled.
type Traces struct {
	Store trace.Store
	// MaxSpans bounds one assembled trace (trace.max_trace_spans);
	// DetailSpans the spans of it read with their details
	// (trace.max_detail_spans; the others are lean).
	MaxSpans, DetailSpans int
	Languages             trace.Languages
	// Writes finds the records a trace wrote (ingest/postgres); nil
	// answers 503 on /traces/{id}/records.
	Writes TraceWriter
}

// TraceWriter finds what traced batches wrote to the primary.
type TraceWriter interface {
	// TraceWrites returns the batches of trace, oldest first, with at
	// most limit users in all.
	TraceWrites(ctx context.Context, trace []byte, limit int) ([]ingest.TraceWrite, error)
}

func (s *Server) traceStore() (*Traces, error) {
	if s.traces == nil || s.traces.Store == nil {
		return nil, fmt.Errorf("%w: the trace store is not configured", ErrUnavailable)
	}
	return s.traces, nil
}

// getTrace answers one trace, assembled (?adjust_skew=true shifts spans
// of other hosts into their parents' time and marks them; ?detail=false
// leaves out attributes, events, links and resources), or with
// ?format=otlp its spans as an OTLP/JSON export request, as received.
// A trace over MaxSpans answers its first MaxSpans spans by start time
// with summary.partial set.
func (s *Server) getTrace(c *gin.Context) (any, error) {
	tr, id, err := s.traceParam(c)
	if err != nil {
		return nil, err
	}
	format := c.DefaultQuery("format", "tree")
	if format != "tree" && format != "otlp" {
		return nil, fmt.Errorf("%w: format is tree or otlp, got %q", ErrBadRequest, format)
	}
	skew, detail := false, true
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"adjust_skew", &skew}, {"detail", &detail}} {
		if v := c.Query(b.name); v != "" {
			if *b.dst, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("%w: %s is true or false, got %q", ErrBadRequest, b.name, v)
			}
		}
	}
	details := 0
	switch {
	case format == "otlp":
		details = tr.MaxSpans // an export is the spans as received
	case detail:
		details = cmp.Or(tr.DetailSpans, tr.MaxSpans)
	}
	spans, more, err := tr.Store.Trace(c.Request.Context(), id, tr.MaxSpans, details)
	if err != nil {
		return nil, fmt.Errorf("%w: span store (postgres): %w", ErrUnavailable, err)
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("%w: trace %s has no spans", ErrNotFound, id)
	}
	if format == "otlp" {
		body, err := ptraceotlp.NewExportRequestFromTraces(trace.ToOTLP(spans)).MarshalJSON()
		if err != nil {
			return nil, err
		}
		if s.redact.applies(c) {
			if body, err = s.redact.Spans(body); err != nil {
				return nil, err
			}
		}
		return rawBody{contentType: "application/json", body: body}, nil
	}
	a := trace.Assemble(id, spans, trace.AssembleOptions{Languages: tr.Languages, AdjustSkew: skew})
	if more {
		a.Summary.Partial = true
		a.Summary.Status = fmt.Sprintf("partial: the trace has more than %d spans (trace.max_trace_spans); these are the first %d by start time", tr.MaxSpans, tr.MaxSpans)
	}
	// Streamed span by span: memory follows the trace's skeleton; a
	// viewer's answer is redacted span by span on the way.
	var filter func([]byte) ([]byte, error)
	if s.redact.applies(c) {
		filter = s.redact.Spans
	}
	return jsonStream(func(w io.Writer) error { return a.WriteView(w, !detail, filter) }), nil
}

// viewAnswer is v as the caller may see it: redacted as a whole for a
// viewer the redaction applies to, as it is otherwise.
func (s *Server) viewAnswer(c *gin.Context, v *trace.View) (any, error) {
	if !s.redact.applies(c) {
		return v, nil
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if body, err = s.redact.Spans(body); err != nil {
		return nil, err
	}
	return rawJSON(body), nil
}

// getSpan answers one span of a trace with its details (attributes,
// events, links, resource): what a lean span of a large trace's view
// leaves out. The answer is a View holding that one span.
func (s *Server) getSpan(c *gin.Context) (any, error) {
	tr, id, err := s.traceParam(c)
	if err != nil {
		return nil, err
	}
	sid, err := trace.ParseSpanID(c.Param("span"))
	if err != nil || sid.IsZero() {
		return nil, fmt.Errorf("%w: a span ID is 16 hex digits, not all zero, got %q", ErrBadRequest, c.Param("span"))
	}
	sp, ok, err := tr.Store.Span(c.Request.Context(), id, sid)
	if err != nil {
		return nil, unavailable("span store (postgres)", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: trace %s has no span %s", ErrNotFound, id, sid)
	}
	v := trace.Assemble(id, []trace.Span{sp}, trace.AssembleOptions{Languages: tr.Languages}).View()
	// Alone, the span hangs under a placeholder for its parent: answer
	// the span only (its parent_span_id still names the parent).
	for _, vs := range v.Spans {
		if !vs.Placeholder {
			vs.Parent, vs.Depth = -1, 0
			v.Spans = []trace.ViewSpan{vs}
			break
		}
	}
	return s.viewAnswer(c, v)
}

// traceParam is the span store and the trace ID the route names (:id):
// 503 when traces are off, 400 for an ID that is not one.
func (s *Server) traceParam(c *gin.Context) (*Traces, trace.TraceID, error) {
	tr, err := s.traceStore()
	if err != nil {
		return nil, trace.TraceID{}, err
	}
	id, err := parseTraceID(c.Param("id"))
	return tr, id, err
}

// parseTraceID is trace.ParseTraceID with its error a bad request.
func parseTraceID(s string) (trace.TraceID, error) {
	id, err := trace.ParseTraceID(s)
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return id, nil
}

// compareTraces sets two traces side by side: their summaries and their
// structure by call path (counts and summed durations per position, and
// the spans only one of them has). Both are read without details, one at
// a time: the first is folded into rows before the second is read. Each
// is compared by at most half of trace.max_trace_spans, so a comparison
// reads no more spans than one trace read may.
func (s *Server) compareTraces(c *gin.Context) (any, error) {
	tr, err := s.traceStore()
	if err != nil {
		return nil, err
	}
	var comparer trace.Comparer
	limit := max(1, tr.MaxSpans/2)
	for _, p := range []string{c.Param("id"), c.Param("other")} {
		id, err := parseTraceID(p)
		if err != nil {
			return nil, err
		}
		spans, more, err := tr.Store.Trace(c.Request.Context(), id, limit, 0)
		if err != nil {
			return nil, unavailable("span store (postgres)", err)
		}
		if len(spans) == 0 {
			return nil, fmt.Errorf("%w: trace %s has no spans", ErrNotFound, id)
		}
		a := trace.Assemble(id, spans, trace.AssembleOptions{Languages: tr.Languages})
		if more {
			a.Summary.Partial = true
			a.Summary.Status = fmt.Sprintf("partial: compared by its first %d spans by start time (half of trace.max_trace_spans)", limit)
		}
		comparer.Add(a)
	}
	res := comparer.Result()
	return jsonStream(res.WriteJSON), nil
}

// maxNames bounds a list of services or operations.
const maxNames = 1000

// traceWindow is the trace store and the start of the window ?since asks
// for: what the services, operations and graph answers read.
func (s *Server) traceWindow(c *gin.Context) (*Traces, time.Time, error) {
	tr, err := s.traceStore()
	if err != nil {
		return nil, time.Time{}, err
	}
	since, err := namesSince(c)
	return tr, since, err
}

// namesSince reads ?since (a Go duration, default 24h, at most the span
// retention's 90 days).
func namesSince(c *gin.Context) (time.Time, error) {
	d := 24 * time.Hour
	if v := c.Query("since"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 || d > 90*24*time.Hour {
			return time.Time{}, fmt.Errorf("%w: since is a duration from 1s to 2160h, got %q", ErrBadRequest, v)
		}
	}
	return time.Now().Add(-d), nil
}

// listServices lists the services that sent spans since ?since (24h), by
// name: what the trace search's service dropdown offers.
func (s *Server) listServices(c *gin.Context) (any, error) {
	tr, since, err := s.traceWindow(c)
	if err != nil {
		return nil, err
	}
	names, err := tr.Store.Services(c.Request.Context(), since, maxNames)
	if err != nil {
		return nil, unavailable("span store (postgres)", err)
	}
	if names == nil {
		names = []string{}
	}
	return map[string]any{"services": names}, nil
}

// maxGraphSpans bounds the recent spans a service graph is drawn from.
const maxGraphSpans = 200_000

// serviceGraph answers the services of the most recent spans since ?since
// (default 24h; at most 200,000 spans) and the calls between them, each
// service with its language.
func (s *Server) serviceGraph(c *gin.Context) (any, error) {
	tr, since, err := s.traceWindow(c)
	if err != nil {
		return nil, err
	}
	calls, err := tr.Store.Calls(c.Request.Context(), since, maxGraphSpans)
	if err != nil {
		return nil, unavailable("span store (postgres)", err)
	}
	return calls.Graph(tr.Languages), nil
}

// listOperations lists one service's span names since ?since (24h).
func (s *Server) listOperations(c *gin.Context) (any, error) {
	service := c.Param("service")
	if len(service) > 256 || !utf8.ValidString(service) || strings.ContainsRune(service, 0) {
		return nil, fmt.Errorf("%w: a service name is at most 256 bytes of UTF-8 without NUL", ErrBadRequest)
	}
	tr, since, err := s.traceWindow(c)
	if err != nil {
		return nil, err
	}
	names, err := tr.Store.Operations(c.Request.Context(), service, since, maxNames)
	if err != nil {
		return nil, unavailable("span store (postgres)", err)
	}
	if names == nil {
		names = []string{}
	}
	return map[string]any{"service": service, "operations": names}, nil
}

// maxAttrFilters bounds a trace search's attr filters (each is a join in
// the span store's query).
const maxAttrFilters = 16

// searchTraces lists traces with a span matching every given filter:
// service, operation, min_duration and max_duration (Go durations),
// error=true, from and to (RFC 3339; default the last hour), attr=key=value
// (repeatable) and limit (at most 1000).
func (s *Server) searchTraces(c *gin.Context) (any, error) {
	tr, err := s.traceStore()
	if err != nil {
		return nil, err
	}
	q := trace.Query{Service: c.Query("service"), Operation: c.Query("operation")}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadRequest}, a...)...)
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"min_duration", &q.MinDuration}, {"max_duration", &q.MaxDuration}} {
		if v := c.Query(d.name); v != "" {
			if *d.dst, err = time.ParseDuration(v); err != nil || *d.dst < 0 {
				return nil, bad("%s is a duration such as 250ms, got %q", d.name, v)
			}
		}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if v := c.Query(t.name); v != "" {
			if *t.dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return nil, bad("%s is an RFC 3339 time, got %q", t.name, v)
			}
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return nil, bad("from must be before to")
	}
	if v := c.Query("error"); v != "" {
		if q.ErrorsOnly, err = strconv.ParseBool(v); err != nil {
			return nil, bad("error is true or false, got %q", v)
		}
	}
	attrs := c.QueryArray("attr")
	if len(attrs) > maxAttrFilters {
		return nil, bad("at most %d attr filters, got %d", maxAttrFilters, len(attrs))
	}
	for _, kv := range attrs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, bad("attr is key=value, got %q", kv)
		}
		// Searching by a redacted attribute's value would confirm a guess
		// of it: only roles that can read the value may search by it.
		if s.redact.applies(c) && s.redact.span[k] {
			return nil, fmt.Errorf("%w: attribute %q is redacted for the %s role; searching by its value needs the operator role", ErrForbidden, k, principal(c).Role)
		}
		if q.Attributes == nil {
			q.Attributes = map[string]string{}
		}
		q.Attributes[k] = v
	}
	if v := c.Query("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > trace.MaxSearchLimit {
			return nil, bad("limit is from 1 to %d, got %q", trace.MaxSearchLimit, v)
		}
	}
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	found, err := tr.Store.Search(c.Request.Context(), q)
	if err != nil {
		return nil, fmt.Errorf("%w: span store (postgres): %w", ErrUnavailable, err)
	}
	if found == nil {
		found = []trace.Found{}
	}
	if format != "" {
		return pagedExport(format, "triad-traces", traceColumns, traceCells, onePage(found, nil)), nil
	}
	return gin.H{"traces": found}, nil
}

// traceRecord is one record a trace wrote, as it is now.
type traceRecord struct {
	Entity  string `json:"entity"`
	Key     string `json:"key"`
	Version int64  `json:"version"`
	// Current: the primary still holds what this trace wrote (its last
	// write through triad is this trace, and nothing changed it since).
	Current    bool                        `json:"current"`
	Consistent bool                        `json:"consistent"`
	Stores     map[string]repair.StoreView `json:"stores"`
}

type traceRecords struct {
	TraceID string              `json:"trace_id"`
	Batches []ingest.TraceWrite `json:"batches"`
	Records []traceRecord       `json:"records"`
	// Truncated: the trace wrote more than limit records; the first are
	// listed.
	Truncated bool `json:"truncated,omitempty"`
}

// traceRecords lists the profiles a trace's ingest batches wrote (at most
// limit, default 100, up to the check bound of 1000) and checks each
// across the stores now: the way from a write to the consistency of what
// it wrote.
func (s *Server) traceRecords(c *gin.Context) (any, error) {
	tr, id, err := s.traceParam(c)
	if err != nil {
		return nil, err
	}
	if tr.Writes == nil {
		return nil, fmt.Errorf("%w: write traces are not configured", ErrUnavailable)
	}
	ch, err := s.checker()
	if err != nil {
		return nil, err
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return nil, fmt.Errorf("%w: limit must be 1..1000, got %q", ErrBadRequest, v)
		}
	}
	batches, err := tr.Writes.TraceWrites(c.Request.Context(), id[:], limit+1)
	if err != nil {
		return nil, unavailable("", fmt.Errorf("postgres: %w", err))
	}
	out := traceRecords{TraceID: id.String(), Batches: batches, Records: []traceRecord{}}
	if out.Batches == nil {
		out.Batches = []ingest.TraceWrite{}
	}
	var keys []string
	versions := map[string]int64{}
	for _, b := range batches {
		for i, u := range b.UserIDs {
			k := strconv.FormatInt(u, 10)
			if _, dup := versions[k]; dup {
				continue
			}
			if len(keys) == limit {
				out.Truncated = true
				break
			}
			keys = append(keys, k)
			versions[k] = b.Versions[i]
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	res, err := ch.Check(c.Request.Context(), "profile", keys)
	if err != nil {
		return nil, unavailable("", err)
	}
	want := id.String()
	for _, r := range res {
		out.Records = append(out.Records, traceRecord{Entity: r.Entity, Key: r.Key, Version: versions[r.Key],
			Current: r.Stores["postgres"].WriteTrace == want, Consistent: r.Consistent, Stores: r.Stores})
	}
	return out, nil
}

var traceColumns = []string{"trace_id", "root_service", "root_name", "start", "duration_ns", "spans", "errors", "services"}

func traceCells(f trace.Found) []string {
	start := time.Unix(0, f.Start)
	return []string{f.TraceID, f.RootService, f.RootName, timeCell(&start), itoa(f.Duration), strconv.Itoa(f.Spans), strconv.Itoa(f.Errors), strings.Join(f.Services, " ")}
}
