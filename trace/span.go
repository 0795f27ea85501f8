package trace

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// TraceID is a W3C / OTLP trace ID. The zero value is invalid.
type TraceID [16]byte

// SpanID is a W3C / OTLP span ID. The zero value means "none".
type SpanID [8]byte

// String returns the ID as 32 lowercase hex digits.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports whether the ID is all zero (invalid in OTLP).
func (t TraceID) IsZero() bool { return t == TraceID{} }

// String returns the ID as 16 lowercase hex digits.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether the ID is all zero (no parent).
func (s SpanID) IsZero() bool { return s == SpanID{} }

// ErrBadTraceID is a trace ID that is not 32 hex digits or is all zero.
var ErrBadTraceID = errors.New("a trace ID is 32 hex digits, not all zero")

// ParseTraceID parses 32 hex digits (either case).
func ParseTraceID(s string) (TraceID, error) {
	var t TraceID
	if len(s) != 32 {
		return t, fmt.Errorf("%w: got %q", ErrBadTraceID, s)
	}
	if _, err := hex.Decode(t[:], []byte(s)); err != nil || t.IsZero() {
		return TraceID{}, fmt.Errorf("%w: got %q", ErrBadTraceID, s)
	}
	return t, nil
}

// ParseSpanID parses 16 hex digits (either case; zero is allowed and
// means none).
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if len(s) != 16 {
		return id, fmt.Errorf("a span ID is 16 hex digits, got %q", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return SpanID{}, fmt.Errorf("a span ID is 16 hex digits, got %q", s)
	}
	return id, nil
}

// Span kinds, as OTLP numbers them.
const (
	KindUnspecified = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

// Status codes, as OTLP numbers them.
const (
	StatusUnset = iota
	StatusOK
	StatusError
)

// Span is one stored span. Attribute values keep their OTLP types as JSON
// values (string, number, bool, array, object).
type Span struct {
	TraceID       TraceID
	SpanID        SpanID
	ParentID      SpanID // zero: a root
	TraceState    string
	Flags         uint32
	Name          string
	Kind          int
	Start, End    int64 // Unix nanoseconds
	StatusCode    int
	StatusMessage string
	Service       string // the resource's service.name ("unknown_service" if absent)
	Scope         Scope
	// Resource is the resource's attributes; spans of one resource share
	// the map. ResourceKey is a hash of them (ResourceHash): equal keys,
	// equal resources.
	Resource    map[string]any
	ResourceKey uint64
	// Dropped counts what the sender dropped (attributes, events, links).
	DroppedAttributes, DroppedEvents, DroppedLinks uint32
	// Lean: the store left out the attributes, events and links (a large
	// trace's spans past its detail budget); Store.Span reads them.
	Lean bool
	// Detail is the span's attributes, events and links. It is nil where
	// there are none to hold: a Lean span, a placeholder. Apart, a lean
	// span costs less than half a whole one, which is most of what reading
	// a 50k-span trace holds.
	*Detail
}

// Detail is what a lean read of a span leaves out.
type Detail struct {
	Attributes map[string]any
	Events     []Event
	Links      []Link
	// Stored holds attributes, events and links as JSON where a store read
	// them (the maps above are nil until Decode): a trace that is only
	// shown is never decoded and encoded again.
	Stored StoredJSON
	// Garbled notes, by part ("attributes", "events", "links"), stored
	// content that could not be read (see Decode).
	Garbled map[string]string
}

// StoredJSON is a span's attributes, events and links as stored.
type StoredJSON struct{ Attributes, Events, Links json.RawMessage }

// Decode fills Attributes, Events and Links from Stored. A part that
// does not decode (stored by someone else, of the wrong shape) is noted in
// Garbled and left as far as it decoded; the span is still whole.
func (s *Span) Decode() {
	if s.Detail == nil {
		return
	}
	for _, p := range []struct {
		part string
		raw  json.RawMessage
		dst  any
	}{{"attributes", s.Stored.Attributes, &s.Attributes}, {"events", s.Stored.Events, &s.Events}, {"links", s.Stored.Links, &s.Links}} {
		if len(p.raw) == 0 {
			continue
		}
		if err := json.Unmarshal(p.raw, p.dst); err != nil {
			if s.Garbled == nil {
				s.Garbled = map[string]string{}
			}
			s.Garbled[p.part] = decodeNote(p.part, p.raw, err)
		}
	}
	s.Stored = StoredJSON{}
}

// Duration is End - Start in nanoseconds (0 when End is before Start).
func (s *Span) Duration() int64 { return max(0, s.End-s.Start) }

// Scope is the instrumentation scope that made a span.
type Scope struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// Event is a span event.
type Event struct {
	Time       int64          `json:"time_unix_nano"`
	Name       string         `json:"name"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Link is a span link to a span of this or another trace.
type Link struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	TraceState string         `json:"trace_state,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}
