package trace

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Decoded is what an OTLP export request holds: the spans kept, and the
// spans rejected with the first reasons (the partial success the sender
// is told about).
type Decoded struct {
	Spans    []Span
	Rejected int
	Reasons  []string
}

// maxReasons bounds how many rejections are described in one answer.
const maxReasons = 5

func (d *Decoded) reject(reason string) {
	d.Rejected++
	if len(d.Reasons) < maxReasons {
		d.Reasons = append(d.Reasons, reason)
	}
}

// Message is the partial-success message: "" when nothing was rejected.
func (d *Decoded) Message() string {
	if d.Rejected == 0 {
		return ""
	}
	msg := fmt.Sprintf("%d spans rejected", d.Rejected)
	for i, r := range d.Reasons {
		if i == 0 {
			msg += ": "
		} else {
			msg += "; "
		}
		msg += r
	}
	if d.Rejected > len(d.Reasons) {
		msg += "; ..."
	}
	return msg
}

// FromOTLP converts decoded OTLP traces into spans under the limits. A
// span is rejected alone, with its reason, when the specification or the
// store cannot take it: an all-zero trace or span ID, a start or end time
// of zero or an end before its start, or text that is not UTF-8 or holds
// NUL (its name, status, scope, resource, attributes, events or links).
// Every other span of the request is kept; one over a limit is kept cut
// (see Limits). A span's attributes, events and links come encoded, in
// Span.Stored (as a store would read them; Span.Decode makes maps).
func FromOTLP(td ptrace.Traces, lim Limits) Decoded {
	var d Decoded
	d.Spans = make([]Span, 0, td.SpanCount())
	enc := encoder{lim: lim}
	rss := td.ResourceSpans()
	for r := range rss.Len() {
		rs := rss.At(r)
		res := rawOrNil(rs.Resource().Attributes())
		for k, v := range res {
			res[k] = cutValue(v, lim.AttributeValueBytes)
		}
		resBad := badText(res)
		key := ResourceHash(res)
		service, _ := res["service.name"].(string)
		if service == "" {
			service = "unknown_service"
		}
		sss := rs.ScopeSpans()
		for x := range sss.Len() {
			ss := sss.At(x)
			scope := Scope{Name: ss.Scope().Name(), Version: ss.Scope().Version()}
			scopeBad := resBad
			if scopeBad == "" {
				scopeBad = badText(scope.Name, scope.Version)
			}
			spans := ss.Spans()
			for i := range spans.Len() {
				sp := spans.At(i)
				// Where the span is, for a rejection's reason (formatted only
				// then: this loop runs for every span received).
				at := func() string { return fmt.Sprintf("resource %d scope %d span %d", r, x, i) }
				tid, sid := TraceID(sp.TraceID()), SpanID(sp.SpanID())
				start, end := int64(sp.StartTimestamp()), int64(sp.EndTimestamp())
				switch {
				case tid.IsZero():
					d.reject(at() + ": trace_id is all zero")
					continue
				case sid.IsZero():
					d.reject(at() + ": span_id is all zero")
					continue
				case start <= 0 || end <= 0:
					d.reject(fmt.Sprintf("%s (%s): start and end times must be set, got %d and %d", at(), sid, start, end))
					continue
				case end < start:
					d.reject(fmt.Sprintf("%s (%s): ends %d ns before it starts", at(), sid, start-end))
					continue
				case scopeBad != "":
					d.reject(fmt.Sprintf("%s (%s): its resource or scope holds %s", at(), sid, scopeBad))
					continue
				}
				s := Span{
					TraceID: tid, SpanID: sid, ParentID: SpanID(sp.ParentSpanID()),
					TraceState: sp.TraceState().AsRaw(), Flags: sp.Flags(),
					Name: cut(sp.Name(), lim.AttributeValueBytes), Kind: int(sp.Kind()),
					Start: start, End: end,
					StatusCode: int(sp.Status().Code()), StatusMessage: cut(sp.Status().Message(), lim.AttributeValueBytes),
					Service: service, Scope: scope, Resource: res, ResourceKey: key,
					DroppedAttributes: sp.DroppedAttributesCount(), DroppedEvents: sp.DroppedEventsCount(), DroppedLinks: sp.DroppedLinksCount(),
				}
				bad := enc.span(sp, &s)
				if bad == "" {
					bad = badText(s.Name, s.StatusMessage, s.TraceState)
				}
				if bad != "" {
					d.reject(fmt.Sprintf("%s (%s): holds %s", at(), sid, bad))
					continue
				}
				d.Spans = append(d.Spans, s)
			}
		}
	}
	return d
}

func cutValue(v any, max int) any {
	switch x := v.(type) {
	case string:
		return cut(x, max)
	case []byte:
		if len(x) > max {
			return x[:max]
		}
	case []any:
		for i := range x {
			x[i] = cutValue(x[i], max)
		}
	case map[string]any:
		for k := range x {
			x[k] = cutValue(x[k], max)
		}
	}
	return v
}

// cut shortens s to at most max bytes at a character boundary, saying how
// much was cut.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + fmt.Sprintf("…[+%d bytes]", len(s)-i)
}

// badText names the first text in vals (strings, or maps and arrays of
// them, keys included) that a span cannot hold: invalid UTF-8, or NUL,
// which Postgres's text and jsonb refuse. "" when all are fine.
func badText(vals ...any) string {
	for _, v := range vals {
		switch x := v.(type) {
		case string:
			if p := textProblem(x); p != "" {
				return p
			}
		case []any:
			if b := badText(x...); b != "" {
				return b
			}
		case map[string]any:
			for k, e := range x {
				if b := badText(k, e); b != "" {
					return b
				}
			}
		}
	}
	return ""
}

// rawOrNil is m as plain values (nil when empty). Doubles that JSON
// cannot hold (NaN, ±Inf: a sender may send them) become the strings
// "NaN", "+Inf" and "-Inf", so every attribute can be stored and shown.
func rawOrNil(m pcommon.Map) map[string]any {
	if m.Len() == 0 {
		return nil
	}
	out := m.AsRaw()
	for k, v := range out {
		out[k] = finite(v)
	}
	return out
}

func finite(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case []any:
		for i := range x {
			x[i] = finite(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = finite(x[k])
		}
	}
	return v
}

// ResourceHash is a stable 64-bit hash of resource attributes (their JSON
// with sorted keys): equal attributes, equal hash. Attributes from
// FromOTLP always encode.
func ResourceHash(attrs map[string]any) uint64 {
	b, _ := json.Marshal(attrs)
	return xxhash.Sum64(b)
}

// ToOTLP converts spans back into OTLP traces (the raw export): one
// resource per distinct resource, one scope per distinct scope. Stored
// JSON is decoded (see Span.Decode); what could not be read is exported
// as the span's attribute GarbledKey + "." + its part, with the note.
func ToOTLP(spans []Span) ptrace.Traces {
	td := ptrace.NewTraces()
	type scopeKey struct {
		res   uint64
		scope Scope
	}
	resources := map[uint64]ptrace.ResourceSpans{}
	scopes := map[scopeKey]ptrace.SpanSlice{}
	for i := range spans {
		s := &spans[i]
		s.Decode()
		d := s.Detail
		if d == nil {
			d = &Detail{}
		}
		rs, ok := resources[s.ResourceKey]
		if !ok {
			rs = td.ResourceSpans().AppendEmpty()
			_ = rs.Resource().Attributes().FromRaw(s.Resource)
			resources[s.ResourceKey] = rs
		}
		k := scopeKey{s.ResourceKey, s.Scope}
		out, ok := scopes[k]
		if !ok {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(s.Scope.Name)
			ss.Scope().SetVersion(s.Scope.Version)
			out = ss.Spans()
			scopes[k] = out
		}
		sp := out.AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(s.TraceID))
		sp.SetSpanID(pcommon.SpanID(s.SpanID))
		sp.SetParentSpanID(pcommon.SpanID(s.ParentID))
		sp.TraceState().FromRaw(s.TraceState)
		sp.SetFlags(s.Flags)
		sp.SetName(s.Name)
		sp.SetKind(ptrace.SpanKind(s.Kind))
		sp.SetStartTimestamp(pcommon.Timestamp(s.Start))
		sp.SetEndTimestamp(pcommon.Timestamp(s.End))
		sp.Status().SetCode(ptrace.StatusCode(s.StatusCode))
		sp.Status().SetMessage(s.StatusMessage)
		_ = sp.Attributes().FromRaw(d.Attributes)
		for part, note := range d.Garbled {
			sp.Attributes().PutStr(GarbledKey+"."+part, note)
		}
		sp.SetDroppedAttributesCount(s.DroppedAttributes)
		sp.SetDroppedEventsCount(s.DroppedEvents)
		sp.SetDroppedLinksCount(s.DroppedLinks)
		for _, e := range d.Events {
			pe := sp.Events().AppendEmpty()
			pe.SetTimestamp(pcommon.Timestamp(e.Time))
			pe.SetName(e.Name)
			_ = pe.Attributes().FromRaw(e.Attributes)
		}
		for _, l := range d.Links {
			pl := sp.Links().AppendEmpty()
			if t, err := ParseTraceID(l.TraceID); err == nil {
				pl.SetTraceID(pcommon.TraceID(t))
			}
			if sid, err := ParseSpanID(l.SpanID); err == nil {
				pl.SetSpanID(pcommon.SpanID(sid))
			}
			pl.TraceState().FromRaw(l.TraceState)
			_ = pl.Attributes().FromRaw(l.Attributes)
		}
	}
	return td
}
