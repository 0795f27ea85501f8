package trace

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

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

// FromOTLP converts decoded OTLP traces into spans. A span with an
// all-zero trace or span ID is rejected (the specification calls both
// invalid); every other span of the request is kept.
func FromOTLP(td ptrace.Traces) Decoded {
	var d Decoded
	d.Spans = make([]Span, 0, td.SpanCount())
	rss := td.ResourceSpans()
	for r := range rss.Len() {
		rs := rss.At(r)
		res := rawOrNil(rs.Resource().Attributes())
		key := ResourceHash(res)
		service, _ := res["service.name"].(string)
		if service == "" {
			service = "unknown_service"
		}
		sss := rs.ScopeSpans()
		for x := range sss.Len() {
			ss := sss.At(x)
			scope := Scope{Name: ss.Scope().Name(), Version: ss.Scope().Version()}
			spans := ss.Spans()
			for i := range spans.Len() {
				sp := spans.At(i)
				tid, sid := TraceID(sp.TraceID()), SpanID(sp.SpanID())
				switch {
				case tid.IsZero():
					d.reject(fmt.Sprintf("resource %d scope %d span %d: trace_id is all zero", r, x, i))
					continue
				case sid.IsZero():
					d.reject(fmt.Sprintf("resource %d scope %d span %d: span_id is all zero", r, x, i))
					continue
				}
				s := Span{
					TraceID: tid, SpanID: sid, ParentID: SpanID(sp.ParentSpanID()),
					TraceState: sp.TraceState().AsRaw(), Flags: sp.Flags(),
					Name: sp.Name(), Kind: int(sp.Kind()),
					Start: int64(sp.StartTimestamp()), End: int64(sp.EndTimestamp()),
					StatusCode: int(sp.Status().Code()), StatusMessage: sp.Status().Message(),
					Service: service, Scope: scope, Resource: res, ResourceKey: key,
					DroppedAttributes: sp.DroppedAttributesCount(), DroppedEvents: sp.DroppedEventsCount(), DroppedLinks: sp.DroppedLinksCount(),
				}
				s.Attributes = rawOrNil(sp.Attributes())
				if ev := sp.Events(); ev.Len() > 0 {
					s.Events = make([]Event, ev.Len())
					for j := range ev.Len() {
						e := ev.At(j)
						s.Events[j] = Event{Time: int64(e.Timestamp()), Name: e.Name(), Attributes: rawOrNil(e.Attributes())}
					}
				}
				if ls := sp.Links(); ls.Len() > 0 {
					s.Links = make([]Link, ls.Len())
					for j := range ls.Len() {
						l := ls.At(j)
						s.Links[j] = Link{TraceID: TraceID(l.TraceID()).String(), SpanID: SpanID(l.SpanID()).String(),
							TraceState: l.TraceState().AsRaw(), Attributes: rawOrNil(l.Attributes())}
					}
				}
				d.Spans = append(d.Spans, s)
			}
		}
	}
	return d
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
// JSON is decoded (see Span.Decode).
func ToOTLP(spans []Span) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	type scopeKey struct {
		res   uint64
		scope Scope
	}
	resources := map[uint64]ptrace.ResourceSpans{}
	scopes := map[scopeKey]ptrace.SpanSlice{}
	for i := range spans {
		s := &spans[i]
		if err := s.Decode(); err != nil {
			return td, err
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
		_ = sp.Attributes().FromRaw(s.Attributes)
		sp.SetDroppedAttributesCount(s.DroppedAttributes)
		sp.SetDroppedEventsCount(s.DroppedEvents)
		sp.SetDroppedLinksCount(s.DroppedLinks)
		for _, e := range s.Events {
			pe := sp.Events().AppendEmpty()
			pe.SetTimestamp(pcommon.Timestamp(e.Time))
			pe.SetName(e.Name)
			_ = pe.Attributes().FromRaw(e.Attributes)
		}
		for _, l := range s.Links {
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
	return td, nil
}
