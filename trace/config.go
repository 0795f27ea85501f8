package trace

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the trace aggregator's configuration (key `trace`).
type Config struct {
	// Enabled starts the OTLP receivers with serve.
	Enabled bool `yaml:"enabled"`
	// HTTPAddr and GRPCAddr are the OTLP receivers' listen addresses
	// (the OpenTelemetry defaults 4318 and 4317; "" turns one off).
	HTTPAddr string `yaml:"http_addr"`
	GRPCAddr string `yaml:"grpc_addr"`
	// MaxBodyBytes bounds one export request, after decompression
	// (larger: 413, or gRPC RESOURCE_EXHAUSTED).
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxConcurrent bounds the requests being decoded at once; more wait
	// up to QueueWait, then get 429 (gRPC UNAVAILABLE).
	MaxConcurrent int           `yaml:"max_concurrent"`
	QueueWait     time.Duration `yaml:"queue_wait"`
	// BodyTimeout is how long an OTLP/HTTP request's body may take to
	// arrive; MaxInflightBytes bounds the bodies being received at once,
	// charged as their bytes arrive (beyond it: 429). Bodies are received
	// before a decoding slot is taken, so slow senders cannot hold slots.
	BodyTimeout      time.Duration `yaml:"body_timeout"`
	MaxInflightBytes int           `yaml:"max_inflight_bytes"`
	// MaxPendingSpans bounds the spans decoded but not yet written; above
	// it requests get 503 with Retry-After.
	MaxPendingSpans int `yaml:"max_pending_spans"`
	// BatchSpans and BatchDelay cut store batches from the spans of
	// concurrent requests (whichever comes first); Writers write batches
	// in parallel.
	BatchSpans int           `yaml:"batch_spans"`
	BatchDelay time.Duration `yaml:"batch_delay"`
	Writers    int           `yaml:"writers"`
	// Retention is how long spans are kept; the leader drops older day
	// partitions hourly.
	Retention time.Duration `yaml:"retention"`
	// MaxTraceSpans bounds an assembled trace; a larger one is answered
	// as a partial view that says so.
	MaxTraceSpans int `yaml:"max_trace_spans"`
	// MaxDetailSpans bounds the spans of one trace read whose attributes,
	// events and links come with it (the first by start time); the others
	// are marked lean and read one at a time
	// (GET /api/v1/traces/{id}/spans/{span_id}).
	MaxDetailSpans int `yaml:"max_detail_spans"`
	// Languages names each span's language (see Languages).
	Languages Languages `yaml:"languages"`
	// Limits bound what one span may hold, as the SDKs' span limits do.
	Limits Limits `yaml:"limits"`
	// Self configures triad's own spans.
	Self SelfConfig `yaml:"self"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Enabled:          true,
		HTTPAddr:         "127.0.0.1:4318",
		GRPCAddr:         "127.0.0.1:4317",
		MaxBodyBytes:     16 << 20,
		MaxConcurrent:    8,
		QueueWait:        time.Second,
		BodyTimeout:      10 * time.Second,
		MaxInflightBytes: 128 << 20,
		MaxPendingSpans:  200000,
		BatchSpans:       5000,
		BatchDelay:       20 * time.Millisecond,
		Writers:          2,
		Retention:        7 * 24 * time.Hour,
		MaxTraceSpans:    50000,
		MaxDetailSpans:   2000,
		Languages:        Languages{Attribute: "service.language"},
		Limits:           DefaultLimits(),
		Self:             SelfConfig{SampleRatio: 1},
	}
}

// Limits bound one span, as the OpenTelemetry SDKs' span limits do (and
// with their defaults for counts). Over a limit the span is kept, cut: the
// attributes, events and links beyond the counts are dropped and counted
// on the span (its dropped counts, added to the sender's own), and a
// string value longer than AttributeValueBytes is cut at a character
// boundary and ends with "…[+N bytes]".
type Limits struct {
	// Attributes per span, and per event and per link.
	Attributes int `yaml:"attributes"`
	// AttributeValueBytes bounds each string value (and each string in an
	// array value), in bytes.
	AttributeValueBytes int `yaml:"attribute_value_bytes"`
	Events              int `yaml:"events"`
	Links               int `yaml:"links"`
}

// DefaultLimits are the SDKs' count limits (128) and a value bound of 8 KiB.
func DefaultLimits() Limits {
	return Limits{Attributes: 128, AttributeValueBytes: 8 << 10, Events: 128, Links: 128}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	for _, a := range []struct{ key, addr string }{{"http_addr", c.HTTPAddr}, {"grpc_addr", c.GRPCAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("trace.%s: %w", a.key, err))
		}
	}
	positive := func(key string, v, max int) {
		if v < 1 || v > max {
			errs = append(errs, fmt.Errorf("trace.%s: must be from 1 to %d, got %d", key, max, v))
		}
	}
	positive("max_body_bytes", c.MaxBodyBytes, 1<<30)
	positive("max_concurrent", c.MaxConcurrent, 1024)
	if c.MaxInflightBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("trace.max_inflight_bytes: must be at least max_body_bytes (%d), got %d", c.MaxBodyBytes, c.MaxInflightBytes))
	}
	positive("max_pending_spans", c.MaxPendingSpans, 1<<26)
	positive("batch_spans", c.BatchSpans, 1<<20)
	positive("writers", c.Writers, 64)
	positive("max_trace_spans", c.MaxTraceSpans, 1<<22)
	positive("max_detail_spans", c.MaxDetailSpans, 1<<22)
	positive("limits.attributes", c.Limits.Attributes, 1<<16)
	positive("limits.attribute_value_bytes", c.Limits.AttributeValueBytes, 1<<24)
	positive("limits.events", c.Limits.Events, 1<<16)
	positive("limits.links", c.Limits.Links, 1<<16)
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{{"queue_wait", c.QueueWait}, {"batch_delay", c.BatchDelay}, {"body_timeout", c.BodyTimeout}} {
		if kd.d <= 0 {
			errs = append(errs, fmt.Errorf("trace.%s: must be positive, got %s", kd.key, kd.d))
		}
	}
	if err := c.Self.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Self.Endpoint == "self" && (!c.Enabled || c.HTTPAddr == "") {
		errs = append(errs, errors.New("trace.self.endpoint: self needs the OTLP/HTTP receiver (trace.enabled, trace.http_addr)"))
	}
	if c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("trace.retention: must be at least 1h, got %s", c.Retention))
	}
	return errors.Join(errs...)
}
