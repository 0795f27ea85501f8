package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// View is an assembled trace as the API answers it and the CLI and the
// dashboard render it: spans in depth-first order, each naming its
// parent by index, resources once each.
type View struct {
	Summary   Summary                   `json:"summary"`
	Spans     []ViewSpan                `json:"spans"`
	Resources map[string]map[string]any `json:"resources"`
}

// ViewSpan is one node of a View.
type ViewSpan struct {
	SpanID       string `json:"span_id"`
	ParentSpanID string `json:"parent_span_id,omitempty"`
	Parent       int    `json:"parent"` // index in spans; -1 at the top
	Depth        int    `json:"depth"`
	Service      string `json:"service"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Start        int64  `json:"start_unix_nano"`
	End          int64  `json:"end_unix_nano"`
	// Offset (from the trace's start) and Duration are exact where a
	// JavaScript number cannot hold Start: renderers use these.
	Offset        int64  `json:"offset_ns"`
	Duration      int64  `json:"duration_ns"`
	StatusCode    int    `json:"status_code"`
	StatusMessage string `json:"status_message,omitempty"`
	Language      string `json:"language,omitempty"`
	LanguageFrom  string `json:"language_from,omitempty"`
	Placeholder   bool   `json:"placeholder,omitempty"`
	Orphan        bool   `json:"orphan,omitempty"`
	Critical      bool   `json:"critical,omitempty"`
	SkewNs        int64  `json:"skew_ns,omitempty"`
	// Lean: this span's attributes, events and links were not read with
	// the trace (past trace.max_detail_spans); read them with
	// GET /api/v1/traces/{trace_id}/spans/{span_id}.
	Lean bool `json:"lean,omitempty"`
	// Dropped counts what the sender or triad's limits dropped from the
	// span (nil when nothing was).
	Dropped *Dropped `json:"dropped,omitempty"`
	// Garbled names, by part ("attributes", "events", "links"), stored
	// content that could not be read, with an excerpt of its stored form.
	Garbled  map[string]string `json:"garbled,omitempty"`
	Resource string            `json:"resource,omitempty"` // key into resources
	Scope    *Scope            `json:"scope,omitempty"`
	// Attributes is an object, Events and Links arrays of Event and Link.
	Attributes json.RawMessage `json:"attributes,omitempty"`
	Events     json.RawMessage `json:"events,omitempty"`
	Links      json.RawMessage `json:"links,omitempty"`
}

// Dropped counts the attributes, events and links a span lost: to the
// sender's SDK limits, or to triad's (trace.limits).
type Dropped struct {
	Attributes uint32 `json:"attributes"`
	Events     uint32 `json:"events"`
	Links      uint32 `json:"links"`
}

// View returns the trace as a View. Attributes, events and links are
// passed through as stored, or encoded once.
func (a *Assembled) View() *View {
	v := &View{Summary: a.Summary, Spans: make([]ViewSpan, len(a.Nodes)), Resources: map[string]map[string]any{}}
	for i := range a.Nodes {
		v.Spans[i] = a.viewSpan(i, v.Resources)
	}
	return v
}

// viewSpan is node i as a ViewSpan; its resource is added to resources.
func (a *Assembled) viewSpan(i int, resources map[string]map[string]any) ViewSpan {
	n := &a.Nodes[i]
	s := ViewSpan{
		SpanID: n.SpanID.String(), Parent: n.Parent, Depth: n.Depth, Service: n.Service, Name: n.Name, Kind: n.Kind,
		Start: n.Start, End: n.End, Offset: n.Start - a.Summary.Start, Duration: n.Duration(), StatusCode: n.StatusCode, StatusMessage: n.StatusMessage,
		Language: n.Language, LanguageFrom: n.LanguageFrom, Placeholder: n.Placeholder, Orphan: n.Orphan,
		Critical: n.Critical, SkewNs: n.SkewNs, Lean: n.Lean,
	}
	if d := n.Detail; d != nil {
		s.Attributes = rawOr(d.Stored.Attributes, d.Attributes, len(d.Attributes))
		s.Events = rawOr(d.Stored.Events, d.Events, len(d.Events))
		s.Links = rawOr(d.Stored.Links, d.Links, len(d.Links))
		s.Garbled = d.Garbled
	}
	// Stored JSON of the wrong shape (written by someone else) is not
	// passed on as if it were attributes, events or links: it is named in
	// Garbled with an excerpt.
	for _, p := range []struct {
		part string
		raw  *json.RawMessage
	}{{"attributes", &s.Attributes}, {"events", &s.Events}, {"links", &s.Links}} {
		if note := shapeNote(p.part, *p.raw); note != "" {
			if s.Garbled == nil {
				s.Garbled = map[string]string{}
			}
			s.Garbled[p.part] = note
			*p.raw = nil
		}
	}
	if n.DroppedAttributes+n.DroppedEvents+n.DroppedLinks > 0 {
		s.Dropped = &Dropped{Attributes: n.DroppedAttributes, Events: n.DroppedEvents, Links: n.DroppedLinks}
	}
	if n.SpanID.IsZero() {
		s.SpanID = ""
	}
	if !n.ParentID.IsZero() {
		s.ParentSpanID = n.ParentID.String()
	}
	if n.Scope != (Scope{}) {
		sc := n.Scope
		s.Scope = &sc
	}
	if n.Resource != nil {
		k := strconv.FormatUint(n.ResourceKey, 16)
		s.Resource = k
		resources[k] = n.Resource
	}
	return s
}

// WriteView writes the View's JSON to w span by span, never holding the
// whole View or its encoding: a read's memory follows the trace's
// skeleton, not its JSON. lean leaves out attributes, events, links and
// resources (as View.Lean). filter, when not nil, rewrites each span's
// JSON and the resources' (a viewer's redaction) one at a time, so a
// filtered answer is as bounded as the others.
func (a *Assembled) WriteView(w io.Writer, lean bool, filter func([]byte) ([]byte, error)) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	var one bytes.Buffer
	out := io.Writer(bw)
	if filter != nil {
		out = &one
	}
	enc := json.NewEncoder(out)
	write := func(s string) { _, _ = bw.WriteString(s) }
	// put encodes v, through filter when there is one.
	put := func(v any) error {
		one.Reset()
		if err := enc.Encode(v); err != nil {
			return err
		}
		if filter == nil {
			return nil
		}
		b, err := filter(one.Bytes())
		if err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	}
	write(`{"summary":`)
	if err := put(a.Summary); err != nil {
		return err
	}
	write(`,"spans":[`)
	resources := map[string]map[string]any{}
	for i := range a.Nodes {
		if i > 0 {
			write(",")
		}
		s := a.viewSpan(i, resources)
		if lean {
			s.Attributes, s.Events, s.Links, s.Resource = nil, nil, nil, ""
		}
		if err := put(s); err != nil {
			return err
		}
	}
	write(`],"resources":`)
	if lean {
		resources = map[string]map[string]any{}
	}
	if err := put(resources); err != nil {
		return err
	}
	write("}")
	return bw.Flush()
}

// Lean drops attributes, events, links and resources: what a timeline
// needs, for a fraction of the bytes.
func (v *View) Lean() {
	for i := range v.Spans {
		v.Spans[i].Attributes, v.Spans[i].Events, v.Spans[i].Links, v.Spans[i].Resource = nil, nil, nil, ""
	}
	v.Resources = map[string]map[string]any{}
}

// rawOr returns stored JSON, or v encoded when there is none (nil when
// empty).
func rawOr(stored json.RawMessage, v any, n int) json.RawMessage {
	if len(stored) > 0 {
		return stored
	}
	if n == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// RenderText's name column: indentation for at most maxIndent levels, and
// labels (service and operation) cut at maxLabel runes.
const (
	maxIndent = 12
	maxLabel  = 48
)

// TextOptions shape RenderText.
type TextOptions struct {
	Width int // the timeline's columns (default 40)
	// Color adds ANSI colours: red for errors, bold for the critical path.
	Color bool
}

// RenderText prints the trace as an indented tree with an ASCII timeline:
// one row per span, a bar where it ran on the trace's time axis.
func RenderText(w io.Writer, v *View, o TextOptions) error {
	if o.Width <= 0 {
		o.Width = 40
	}
	s := v.Summary
	langs := Printable(strings.Join(s.Languages, ", "))
	if langs == "" {
		langs = "unknown"
	}
	if _, err := fmt.Fprintf(w, "trace %s  %d spans  %d services  languages: %s  %s", s.TraceID, s.Spans, len(s.Services), langs, fmtDuration(s.Duration)); err != nil {
		return err
	}
	extra := []string{}
	if s.Orphans > 0 {
		extra = append(extra, fmt.Sprintf("%d orphans under %d missing parents", s.Orphans, s.MissingParents))
	}
	if s.Roots > 1 {
		extra = append(extra, fmt.Sprintf("%d roots", s.Roots))
	}
	if s.Errors > 0 {
		extra = append(extra, fmt.Sprintf("%d errors", s.Errors))
	}
	if s.SkewAdjusted > 0 {
		extra = append(extra, fmt.Sprintf("%d spans skew-adjusted (~)", s.SkewAdjusted))
	}
	if s.Partial {
		extra = append(extra, "PARTIAL: "+Printable(s.Status))
	}
	if len(extra) > 0 {
		fmt.Fprintf(w, "  [%s]", strings.Join(extra, "; "))
	}
	fmt.Fprintln(w)
	// Column widths: the name column fits the deepest, longest label up
	// to a bound. Indentation stops at maxIndent levels; deeper rows say
	// their depth instead ("↳37"), so a name is always visible.
	labels := make([]string, len(v.Spans))
	nameW := len("SERVICE OPERATION")
	for i, sp := range v.Spans {
		l := Printable(spanLabel(sp))
		if r := []rune(l); len(r) > maxLabel {
			l = string(r[:maxLabel-1]) + "…"
		}
		indent := strings.Repeat("  ", min(sp.Depth, maxIndent))
		if sp.Depth > maxIndent {
			indent += fmt.Sprintf("↳%d ", sp.Depth)
		}
		labels[i] = indent + l
		nameW = max(nameW, len([]rune(labels[i])))
	}
	fmt.Fprintf(w, "%-*s  %-8s  %10s  %s\n", nameW, "SERVICE OPERATION", "LANGUAGE", "DURATION", "TIMELINE")
	total := max(s.Duration, 1)
	var b strings.Builder
	for i, sp := range v.Spans {
		b.Reset()
		from := int((sp.Start - s.Start) * int64(o.Width) / total)
		to := int((sp.End - s.Start) * int64(o.Width) / total)
		from = min(max(from, 0), o.Width-1)
		to = min(max(to, from+1), o.Width)
		bar := '█'
		switch {
		case sp.Placeholder:
			bar = '░'
		case sp.StatusCode == StatusError:
			bar = '▓'
		}
		b.WriteByte('|')
		for c := range o.Width {
			if c >= from && c < to {
				b.WriteRune(bar)
			} else {
				b.WriteByte(' ')
			}
		}
		b.WriteByte('|')
		lang := Printable(sp.Language)
		if lang == "" {
			lang = "-"
		}
		mark := " "
		switch {
		case sp.SkewNs != 0:
			mark = "~"
		case sp.Critical && !sp.Placeholder:
			mark = "*"
		}
		label := labels[i]
		pad := nameW - len([]rune(label))
		line := fmt.Sprintf("%s%s  %-8s  %10s %s%s", label, strings.Repeat(" ", pad), lang, fmtDuration(sp.End-sp.Start), mark, b.String())
		if o.Color {
			switch {
			case sp.StatusCode == StatusError:
				line = "\x1b[31m" + line + "\x1b[0m"
			case sp.Critical && !sp.Placeholder:
				line = "\x1b[1m" + line + "\x1b[0m"
			}
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, "* critical path  ~ skew-adjusted  ▓ error  ░ placeholder (span never received)")
	return err
}

func spanLabel(sp ViewSpan) string {
	if sp.Placeholder {
		return sp.Name
	}
	return sp.Service + " " + sp.Name
}

// fmtDuration prints nanoseconds with 3 significant digits.
func fmtDuration(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", ns)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(ns)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(ns)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
