package trace

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// SelfConfig configures triad's own spans (key `trace.self`): ingest
// batches, derived-store writes, sweeps and repairs, made with the OTel
// SDK.
type SelfConfig struct {
	// Endpoint is an OTLP/HTTP traces URL, "self" for this triad's own
	// receiver, or "" (the default) for none.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of root spans kept (parents decide for
	// their children).
	SampleRatio float64 `yaml:"sample_ratio"`
}

// Validate reports an invalid configuration.
func (c SelfConfig) Validate() error {
	if c.Endpoint != "" && c.Endpoint != "self" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("trace.self.endpoint: an http(s) URL such as http://127.0.0.1:4318/v1/traces, or self, got %q", c.Endpoint)
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("trace.self.sample_ratio: from 0 to 1, got %v", c.SampleRatio)
	}
	return nil
}

// StartSelf installs the global tracer provider that triad's packages
// use (otel.Tracer) and returns its shutdown, which flushes. endpoint is
// the resolved OTLP/HTTP traces URL.
func StartSelf(ctx context.Context, endpoint string, ratio float64, service, version string) (func(context.Context) error, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("own spans: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.version", version)))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// LogHandler adds trace_id and span_id to records logged with a context
// that carries a span (slog's ...Context methods), so logs and traces
// meet.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := oteltrace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(as)}
}

func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.Handler.WithGroup(name)} }
