package sweep

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// tracer makes the sweeps' own spans (ranges and finishes) on the global
// provider: no-ops unless trace.self is set.
var tracer = otel.Tracer("github.com/triad-dev/triad/repair/sweep")

// endSpan ends span, marking it failed with err.
func endSpan(span oteltrace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
