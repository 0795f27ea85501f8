package trace

import (
	"context"
	"errors"
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
