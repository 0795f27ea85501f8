package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/trace"
	"github.com/triad-dev/triad/web"
)

const traceHelp = `Usage: triad trace [flags] TRACE_ID
       triad trace search [--service S] [--operation O] [--min-duration D] [--max-duration D]
                          [--error] [--since 1h] [--attr key=value]... [--limit N]

Asks a running triad for one trace (every span it received from every
language) and prints it as a tree with an ASCII timeline: one row per span,
its service and operation indented by depth, its language, its duration and
a bar where it ran on the trace's time axis. '*' marks the critical path,
'~' a span moved by --adjust-skew, '▓' an error, '░' a placeholder for a
span that never arrived (its children are counted as orphans).

--format json prints the API's assembled tree; --format otlp the raw spans
as an OTLP/JSON export request (which any OTLP/HTTP receiver accepts);
--format speedscope a file for https://www.speedscope.app (parallel spans
on separate tracks); --format html a self-contained page with the
dashboard's flame timeline.

'search' lists traces with a span matching every filter, newest first.

Exit status: 0 shown; 4 the server has no such trace; 2 a malformed ID or
flag; 1 another failure (the server unreachable, a store down).
`

func (e env) traceCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "search" {
		return e.traceSearch(ctx, args[1:])
	}
	var c common
	fs := e.flags("trace", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, traceHelp); fs.PrintDefaults() }
	format := fs.String("format", "text", "text, json, otlp, speedscope or html")
	skew := fs.Bool("adjust-skew", false, "shift spans of other hosts into their parents' time (marked ~)")
	width := fs.Int("width", 60, "timeline columns")
	color := fs.Bool("color", false, "ANSI colours (errors red, critical path bold)")
	af := newAPIFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("give one trace ID")
	}
	id, err := trace.ParseTraceID(fs.Arg(0))
	if err != nil {
		return usagef("%v", err)
	}
	if *width < 10 || *width > 1000 {
		return usagef("--width is from 10 to 1000, got %d", *width)
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *skew {
		q.Set("adjust_skew", "true")
	}
	path := "/api/v1/traces/" + id.String()
	switch *format {
	case "otlp":
		q.Set("format", "otlp")
		return api.raw(ctx, path+"?"+q.Encode(), e.stdout)
	case "text", "speedscope":
		q.Set("detail", "false") // a timeline needs no attributes
	case "json", "html":
	default:
		return usagef("--format is text, json, otlp, speedscope or html, got %q", *format)
	}
	var v trace.View
	if err := api.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &v); err != nil {
		return err
	}
	switch *format {
	case "json":
		return json.NewEncoder(e.stdout).Encode(v)
	case "speedscope":
		return trace.Speedscope(e.stdout, &v)
	case "html":
		var css []string
		for _, f := range []string{"app.css", "trace.css"} {
			b, err := web.Asset(f)
			if err != nil {
				return err
			}
			css = append(css, string(b))
		}
		js, err := web.Asset("trace.js")
		if err != nil {
			return err
		}
		return trace.HTML(e.stdout, &v, css, string(js))
	}
	return trace.RenderText(e.stdout, &v, trace.TextOptions{Width: *width, Color: *color})
}

func (e env) traceSearch(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("trace search", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, traceHelp); fs.PrintDefaults() }
	service := fs.String("service", "", "service name")
	operation := fs.String("operation", "", "span name")
	minDur := fs.Duration("min-duration", 0, "spans at least this long")
	maxDur := fs.Duration("max-duration", 0, "spans at most this long")
	errorsOnly := fs.Bool("error", false, "spans with status ERROR only")
	since := fs.Duration("since", time.Hour, "spans that started within this long")
	limit := fs.Int("limit", 20, "traces (1..1000)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	var attrs []string
	fs.Func("attr", "key=value on the span or its resource (repeatable)", func(s string) error { attrs = append(attrs, s); return nil })
	af := newAPIFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("service", *service)
	set("operation", *operation)
	if *minDur > 0 {
		set("min_duration", minDur.String())
	}
	if *maxDur > 0 {
		set("max_duration", maxDur.String())
	}
	if *errorsOnly {
		set("error", "true")
	}
	set("from", time.Now().Add(-*since).UTC().Format(time.RFC3339Nano))
	set("limit", strconv.Itoa(*limit))
	for _, a := range attrs {
		q.Add("attr", a)
	}
	var out struct {
		Traces []trace.Found `json:"traces"`
	}
	if err := api.do(ctx, http.MethodGet, "/api/v1/traces?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACE ID\tSTART\tDURATION\tSPANS\tERRORS\tROOT\tSERVICES")
	for _, f := range out.Traces {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s %s\t%s\n", f.TraceID, time.Unix(0, f.Start).UTC().Format(time.RFC3339Nano),
			time.Duration(f.Duration), f.Spans, f.Errors, trace.Printable(f.RootService), trace.Printable(f.RootName), trace.Printable(fmt.Sprint(f.Services)))
	}
	return tw.Flush()
}
