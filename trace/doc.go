// Package trace is the cross-language trace aggregator: OTLP/HTTP and
// OTLP/gRPC receivers with bounded bodies, decoding to spans with each
// span's language, batched writes, assembly of a trace (tree, orphans,
// critical path, skew adjustment) and its renderings (JSON view, text,
// HTML, speedscope, OTLP export), and triad's own telemetry. The span
// store is trace/postgres; sample services are in trace/testdata.
package trace
