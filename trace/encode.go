package trace

import (
	"bytes"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/go-json-experiment/json/jsontext"
)

// encoder writes a span's attributes, events and links as the JSON the
// store keeps, straight from pdata: no maps of values in between, no
// reflection, one scratch buffer for a whole request. It applies the
// limits (see limitAttributes for the rule) and notes the first text a
// span cannot hold (see badText), so a request is walked once.
type encoder struct {
	lim  Limits
	buf  []byte
	keys []string
	bad  string // the first bad text of the current span; "" when none
}

// span encodes sp's attributes, events and links into s.Detail.Stored
// (no Detail when there are none) and adds what the limits dropped to s's
// counts. It reports the first bad text.
func (e *encoder) span(sp ptrace.Span, s *Span) string {
	e.bad = ""
	var dropped uint32
	var st StoredJSON
	st.Attributes, dropped = e.attrs(sp.Attributes())
	s.DroppedAttributes += dropped
	if ev := sp.Events(); ev.Len() > 0 {
		n := min(ev.Len(), e.lim.Events)
		s.DroppedEvents += uint32(ev.Len() - n)
		b := append(e.buf[:0], '[')
		for j := range n {
			x := ev.At(j)
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"time_unix_nano":`...)
			b = strconv.AppendUint(b, uint64(x.Timestamp()), 10)
			b = append(b, `,"name":`...)
			b = e.text(b, cut(x.Name(), e.lim.AttributeValueBytes))
			b = e.attrsField(b, x.Attributes())
			b = append(b, '}')
		}
		e.buf = append(b, ']')
		st.Events = bytes.Clone(e.buf)
	}
	if ls := sp.Links(); ls.Len() > 0 {
		n := min(ls.Len(), e.lim.Links)
		s.DroppedLinks += uint32(ls.Len() - n)
		b := append(e.buf[:0], '[')
		for j := range n {
			l := ls.At(j)
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"trace_id":"`...)
			b = append(b, TraceID(l.TraceID()).String()...)
			b = append(b, `","span_id":"`...)
			b = append(b, SpanID(l.SpanID()).String()...)
			b = append(b, '"')
			if ts := l.TraceState().AsRaw(); ts != "" {
				b = append(b, `,"trace_state":`...)
				b = e.text(b, ts)
			}
			b = e.attrsField(b, l.Attributes())
			b = append(b, '}')
		}
		e.buf = append(b, ']')
		st.Links = bytes.Clone(e.buf)
	}
	if st.Attributes != nil || st.Events != nil || st.Links != nil {
		s.Detail = &Detail{Stored: st}
	}
	return e.bad
}

// attrsField appends `,"attributes":{…}` when m is not empty (events'
// and links' attributes; their drops are not counted, as in OTLP).
func (e *encoder) attrsField(b []byte, m pcommon.Map) []byte {
	if m.Len() == 0 {
		return b
	}
	b = append(b, `,"attributes":`...)
	b, _ = e.appendAttrs(b, m)
	return b
}

// attrs encodes m as a JSON object under the limits (a copy: the scratch
// buffer is reused); nil when m is empty.
func (e *encoder) attrs(m pcommon.Map) ([]byte, uint32) {
	if m.Len() == 0 {
		return nil, 0
	}
	var dropped uint32
	e.buf, dropped = e.appendAttrs(e.buf[:0], m)
	return bytes.Clone(e.buf), dropped
}

// appendAttrs appends m as a JSON object under the limits and returns how
// many attributes the limit dropped.
func (e *encoder) appendAttrs(b []byte, m pcommon.Map) ([]byte, uint32) {
	var last string // keys after it are dropped; "" keeps all
	var dropped uint32
	if m.Len() > e.lim.Attributes {
		// The first lim.Attributes keys in sorted order, so the same span
		// is cut the same way every time.
		e.keys = e.keys[:0]
		for k := range m.All() {
			e.keys = append(e.keys, k)
		}
		slices.Sort(e.keys)
		e.keys = slices.Compact(e.keys)
		if len(e.keys) > e.lim.Attributes {
			dropped = uint32(len(e.keys) - e.lim.Attributes)
			last = e.keys[e.lim.Attributes-1]
		}
	}
	b = append(b, '{')
	first := true
	for k, v := range m.All() {
		if dropped > 0 && k > last {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = e.text(b, k)
		b = append(b, ':')
		b = e.value(b, v)
	}
	return append(b, '}'), dropped
}

// value appends v as JSON: strings and bytes cut to the value limit,
// doubles JSON cannot hold (NaN, ±Inf) as the strings "NaN", "+Inf" and
// "-Inf", bytes as base64 (as encoding/json writes them).
func (e *encoder) value(b []byte, v pcommon.Value) []byte {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return e.text(b, cut(v.Str(), e.lim.AttributeValueBytes))
	case pcommon.ValueTypeInt:
		return strconv.AppendInt(b, v.Int(), 10)
	case pcommon.ValueTypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b, _ = jsontext.AppendQuote(b, strconv.FormatFloat(f, 'g', -1, 64))
			return b
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case pcommon.ValueTypeBool:
		return strconv.AppendBool(b, v.Bool())
	case pcommon.ValueTypeBytes:
		raw := v.Bytes().AsRaw()
		raw = raw[:min(len(raw), e.lim.AttributeValueBytes)]
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, raw)
		return append(b, '"')
	case pcommon.ValueTypeSlice:
		sl := v.Slice()
		b = append(b, '[')
		for i := range sl.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.value(b, sl.At(i))
		}
		return append(b, ']')
	case pcommon.ValueTypeMap:
		b = append(b, '{')
		first := true
		for k, x := range v.Map().All() {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = e.text(b, k)
			b = append(b, ':')
			b = e.value(b, x)
		}
		return append(b, '}')
	default:
		return append(b, "null"...)
	}
}

// text appends s as a JSON string and notes it when the store cannot hold
// it (invalid UTF-8, or NUL).
func (e *encoder) text(b []byte, s string) []byte {
	if e.bad == "" {
		e.bad = textProblem(s)
	}
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

// textProblem says what in s a span cannot hold; "" when nothing.
func textProblem(s string) string {
	if !utf8.ValidString(s) {
		return "text that is not UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "a NUL character"
	}
	return ""
}
