package trace

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TestNonFiniteDoubles: NaN and ±Inf attribute values (valid in OTLP
// protobuf, not in JSON) come out as strings, so the span can be stored
// and shown.
func TestNonFiniteDoubles(t *testing.T) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutDouble("load", math.Inf(1))
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID(tid))
	sp.SetSpanID(pcommon.SpanID(sid(1)))
	sp.SetStartTimestamp(1)
	sp.SetEndTimestamp(2)
	sp.Attributes().PutDouble("ratio", math.NaN())
	sp.Attributes().PutDouble("ok", 0.5)
	s := sp.Attributes().PutEmptySlice("list")
	s.AppendEmpty().SetDouble(math.Inf(-1))
	d := FromOTLP(td, DefaultLimits())
	require.Len(t, d.Spans, 1)
	got := d.Spans[0]
	require.Equal(t, "NaN", got.Attributes["ratio"])
	require.Equal(t, 0.5, got.Attributes["ok"])
	require.Equal(t, []any{"-Inf"}, got.Attributes["list"])
	require.Equal(t, "+Inf", got.Resource["load"])
	_, err := json.Marshal(got.Attributes)
	require.NoError(t, err)
	require.NotEqual(t, ResourceHash(got.Resource), ResourceHash(map[string]any{"load": "-Inf"}))
}
