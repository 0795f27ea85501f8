package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Speedscope writes the trace in speedscope's file format
// (https://www.speedscope.app/file-format-schema.json): evented profiles
// whose open and close events must nest like a call stack. Spans that
// overlap without nesting (parallel calls) cannot share one stack, so
// spans are spread over as few profiles ("tracks") as nesting allows, a
// span going to the track where its parent is open when it can. Frames
// are "service operation"; times are nanoseconds from the trace's start.
func Speedscope(w io.Writer, v *View) error {
	type event struct {
		Type  string `json:"type"`
		Frame int    `json:"frame"`
		At    int64  `json:"at"`
	}
	type profile struct {
		Type       string  `json:"type"`
		Name       string  `json:"name"`
		Unit       string  `json:"unit"`
		StartValue int64   `json:"startValue"`
		EndValue   int64   `json:"endValue"`
		Events     []event `json:"events"`
	}
	type frame struct {
		Name string `json:"name"`
		File string `json:"file,omitempty"`
	}
	frames := []frame{}
	frameOf := map[string]int{}
	// A track is a stack of open spans (indexes) and its events so far.
	type track struct {
		open   []int
		events []event
		last   int64 // the last close
	}
	var tracks []*track
	end := func(i int) int64 { return v.Spans[i].Offset + v.Spans[i].Duration }
	closeUntil := func(t *track, at int64) {
		for len(t.open) > 0 && end(t.open[len(t.open)-1]) <= at {
			top := t.open[len(t.open)-1]
			t.open = t.open[:len(t.open)-1]
			t.events = append(t.events, event{"C", frameOf[label(v.Spans[top])], end(top)})
			t.last = end(top)
		}
	}
	fits := func(t *track, i int) bool {
		sp := v.Spans[i]
		if len(t.open) == 0 {
			return sp.Offset >= t.last
		}
		top := t.open[len(t.open)-1]
		return sp.Offset >= v.Spans[top].Offset && end(i) <= end(top)
	}
	// Spans by start (parents before children at equal starts: depth).
	order := make([]int, 0, len(v.Spans))
	for i, sp := range v.Spans {
		if !sp.Placeholder {
			order = append(order, i)
		}
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := v.Spans[order[a]], v.Spans[order[b]]
		if x.Offset != y.Offset {
			return x.Offset < y.Offset
		}
		return x.Depth < y.Depth
	})
	for _, i := range order {
		sp := v.Spans[i]
		name := label(sp)
		if _, ok := frameOf[name]; !ok {
			frameOf[name] = len(frames)
			frames = append(frames, frame{Name: name, File: sp.Language})
		}
		var chosen *track
		for _, t := range tracks {
			closeUntil(t, sp.Offset)
			if !fits(t, i) {
				continue
			}
			if chosen == nil {
				chosen = t
			}
			if len(t.open) > 0 && t.open[len(t.open)-1] == sp.Parent {
				chosen = t
				break
			}
		}
		if chosen == nil {
			chosen = &track{}
			tracks = append(tracks, chosen)
		}
		chosen.open = append(chosen.open, i)
		chosen.events = append(chosen.events, event{"O", frameOf[name], sp.Offset})
	}
	profiles := make([]profile, len(tracks))
	for n, t := range tracks {
		closeUntil(t, 1<<62)
		profiles[n] = profile{Type: "evented", Name: fmt.Sprintf("track %d", n+1), Unit: "nanoseconds",
			StartValue: 0, EndValue: v.Summary.Duration, Events: t.events}
	}
	return json.NewEncoder(w).Encode(map[string]any{
		"$schema":            "https://www.speedscope.app/file-format-schema.json",
		"name":               "trace " + v.Summary.TraceID,
		"exporter":           "triad",
		"activeProfileIndex": 0,
		"shared":             map[string]any{"frames": frames},
		"profiles":           profiles,
	})
}

func label(sp ViewSpan) string { return sp.Service + " " + sp.Name }

// HTML writes a self-contained page showing the trace's flame timeline:
// the dashboard's stylesheets and script (passed in, from package web)
// with the trace embedded, so it opens from a file without triad.
func HTML(w io.Writer, v *View, css []string, script string) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// Inside a <script> element only "</" can end it early; JSON escapes
	// "<" as \u003c, so nothing in span data can.
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>trace ")
	b.WriteString(v.Summary.TraceID)
	b.WriteString("</title>\n")
	for _, c := range css {
		b.WriteString("<style>\n")
		b.WriteString(c)
		b.WriteString("</style>\n")
	}
	b.WriteString(`</head>
<body>
<main class="wide">
<section id="trace">
<h2 id="summary"></h2>
<p id="legend" class="legend"></p>
<p class="hint">Hover a span for details; click to zoom into it; Shift+click (or c) collapses its subtree; Esc or double-click zooms out. Thick underline: critical path.</p>
<div id="flame-wrap"><canvas id="flame" tabindex="0" aria-label="flame timeline"></canvas><div id="tooltip" role="tooltip" hidden></div></div>
<section id="detail"></section>
</section>
<p id="status" class="hint"></p>
<select id="color-by" hidden><option value="language">language</option></select>
</main>
<script type="application/json" id="trace-data">`)
	b.Write(data)
	b.WriteString("</script>\n<script>\n")
	b.WriteString(script)
	b.WriteString("</script>\n</body>\n</html>\n")
	_, err = io.WriteString(w, b.String())
	return err
}
