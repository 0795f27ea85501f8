package server

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/triad-dev/triad/trace"
)

// Traces answers trace lookups (the span store) and how they are
// assembled.
type Traces struct {
	Store trace.Store
	// MaxSpans bounds one assembled trace (trace.max_trace_spans).
	MaxSpans  int
	Languages trace.Languages
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
	tr, err := s.traceStore()
	if err != nil {
		return nil, err
	}
	id, err := trace.ParseTraceID(c.Param("id"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
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
	spans, more, err := tr.Store.Trace(c.Request.Context(), id, tr.MaxSpans)
	if err != nil {
		return nil, fmt.Errorf("%w: span store (postgres): %w", ErrUnavailable, err)
	}
	if len(spans) == 0 {
		return nil, fmt.Errorf("%w: trace %s has no spans", ErrNotFound, id)
	}
	if format == "otlp" {
		td, err := trace.ToOTLP(spans)
		if err != nil {
			return nil, err
		}
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
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
	v := a.View()
	if !detail {
		v.Lean()
	}
	if s.redact.applies(c) {
		body, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if body, err = s.redact.Spans(body); err != nil {
			return nil, err
		}
		return rawJSON(body), nil
	}
	return v, nil
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
	found, err := tr.Store.Search(c.Request.Context(), q)
	if err != nil {
		return nil, fmt.Errorf("%w: span store (postgres): %w", ErrUnavailable, err)
	}
	if found == nil {
		found = []trace.Found{}
	}
	return gin.H{"traces": found}, nil
}
