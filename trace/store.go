package trace

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// Store keeps spans (trace/postgres is the implementation).
type Store interface {
	// Write stores spans in one batch: all or none. Safe for concurrent
	// use.
	Write(ctx context.Context, spans []Span) error
	// Trace returns up to limit spans of a trace by start time, and
	// whether it holds more; no spans and no error when it is unknown.
	// Only the first details spans carry their attributes, events and
	// links; the others are Lean, so a read's memory follows what it
	// returns, not the trace.
	Trace(ctx context.Context, id TraceID, limit, details int) (spans []Span, more bool, err error)
	// Span returns one span with its details (false when unknown).
	Span(ctx context.Context, id TraceID, span SpanID) (Span, bool, error)
	// Services lists, by name, up to limit services that sent spans
	// since since; Operations the span names of one of them.
	Services(ctx context.Context, since time.Time, limit int) ([]string, error)
	Operations(ctx context.Context, service string, since time.Time, limit int) ([]string, error)
	// Calls reads the calls between services among the (at most) limit
	// most recent spans since since: each span whose parent, in the same
	// trace, belongs to another service is a call from that service.
	Calls(ctx context.Context, since time.Time, limit int) (Calls, error)
	// Search lists traces with a span matching q, the most recent first.
	Search(ctx context.Context, q Query) ([]Found, error)
	// Retain drops spans that started before cutoff and reports how
	// many partitions and rows went.
	Retain(ctx context.Context, cutoff time.Time) (partitions int, rows int64, err error)
}

// Query selects traces that have at least one span matching every set
// field.
type Query struct {
	Service     string
	Operation   string
	MinDuration time.Duration
	MaxDuration time.Duration // 0: no bound
	ErrorsOnly  bool
	From, To    time.Time // span start times; zero To: now
	// Attributes must all match a span's attributes or its resource's
	// (compared as text: "200" matches the number 200).
	Attributes map[string]string
	Limit      int // traces (default 20, at most MaxSearchLimit)
}

// MaxSearchLimit bounds Query.Limit.
const MaxSearchLimit = 1000

// Calls are what Store.Calls read: the edges, and each service's
// resources (to name its language).
type Calls struct {
	Edges []CallEdge
	// Resources holds some resources of each service seen.
	Resources map[string][]map[string]any
	// Spans is how many spans were read (at most the limit asked for).
	Spans int
}

// CallEdge is the calls from one service to another.
type CallEdge struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Calls  int64  `json:"calls"`
	Errors int64  `json:"errors"` // calls whose span (the callee's) failed
}

// ServiceNode is one service of a graph.
type ServiceNode struct {
	Service  string `json:"service"`
	Language string `json:"language,omitempty"`
}

// ServiceGraph is the services of recent spans and the calls between
// them, each service with its language (which no tracer shows).
type ServiceGraph struct {
	Nodes []ServiceNode `json:"nodes"`
	Edges []CallEdge    `json:"edges"`
	// Spans is how many recent spans the graph was drawn from.
	Spans int `json:"spans"`
}

// Graph names each service's language (from the first of its resources
// that tells) and lists every service an edge touches or a resource
// names, by name.
func (c Calls) Graph(l Languages) ServiceGraph {
	g := ServiceGraph{Edges: c.Edges, Spans: c.Spans}
	if g.Edges == nil {
		g.Edges = []CallEdge{}
	}
	seen := map[string]bool{}
	for _, e := range c.Edges {
		seen[e.From], seen[e.To] = true, true
	}
	for s := range c.Resources {
		seen[s] = true
	}
	for s := range seen {
		n := ServiceNode{Service: s}
		for _, res := range c.Resources[s] {
			if lang, _ := l.Language(s, res); lang != "" {
				n.Language = lang
				break
			}
		}
		if n.Language == "" {
			n.Language, _ = l.Language(s, nil)
		}
		g.Nodes = append(g.Nodes, n)
	}
	slices.SortFunc(g.Nodes, func(a, b ServiceNode) int { return strings.Compare(a.Service, b.Service) })
	return g
}

// Found is one trace a search found, summarised.
type Found struct {
	TraceID     string   `json:"trace_id"`
	RootService string   `json:"root_service"`
	RootName    string   `json:"root_name"`
	Start       int64    `json:"start_unix_nano"`
	Duration    int64    `json:"duration_ns"`
	Spans       int      `json:"spans"`
	Errors      int      `json:"errors"`
	Services    []string `json:"services"`
}

// ErrOverloaded is returned while the write queue is full: senders are
// told to retry later (HTTP 429/503 with Retry-After, gRPC UNAVAILABLE).
var ErrOverloaded = errors.New("span writes are backed up; retry later")

// ErrRejected is a write the store refused for the spans' content, not for
// its own state (a value it cannot hold): retrying the same spans fails
// again, and other requests' spans written with them are written alone.
var ErrRejected = errors.New("the span store refused the spans' content")
