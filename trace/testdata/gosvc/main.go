// Command gosvc is the Go sample service: GET /checkout calls the Python
// service, which calls the Scala service. Instrumented with the
// OpenTelemetry Go SDK, exporting OTLP/HTTP protobuf to
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (triad). It answers the trace ID, so
// a caller can look the trace up.
//
// Usage: gosvc -listen 127.0.0.1:0 -quote http://127.0.0.1:PORT
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	quote := flag.String("quote", "", "the Python service's base URL")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	exp, err := otlptracehttp.New(ctx) // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
	if err != nil {
		log.Fatal(err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "checkout-go")))
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)))
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tp.Shutdown(sctx) // flush
	}()
	otel.SetTracerProvider(tp)
	prop := propagation.TraceContext{}
	tracer := tp.Tracer("triad.testdata.gosvc")

	client := &http.Client{Timeout: 10 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout", func(w http.ResponseWriter, r *http.Request) {
		ctx, span := tracer.Start(prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)), "GET /checkout",
			oteltrace.WithSpanKind(oteltrace.SpanKindServer), oteltrace.WithAttributes(attribute.String("url.path", "/checkout")))
		defer span.End()
		_, auth := tracer.Start(ctx, "authorize")
		time.Sleep(2 * time.Millisecond)
		auth.End()

		cctx, call := tracer.Start(ctx, "GET quote", oteltrace.WithSpanKind(oteltrace.SpanKindClient))
		req, _ := http.NewRequestWithContext(cctx, http.MethodGet, *quote+"/quote", nil)
		prop.Inject(cctx, propagation.HeaderCarrier(req.Header))
		var quoteBody json.RawMessage
		resp, err := client.Do(req)
		if err == nil {
			quoteBody, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			call.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		}
		if err != nil {
			call.SetStatus(codes.Error, err.Error())
		}
		call.End()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"trace_id": span.SpanContext().TraceID().String(), "quote": quoteBody})
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("checkout-go listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Shutdown(context.Background()) }()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		log.Print(err)
	}
}
