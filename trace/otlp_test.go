package trace

import (
	"encoding/json"
	"math"
	"strings"
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
	got.Decode() // the span comes encoded, as stored
	require.Equal(t, "NaN", got.Attributes["ratio"])
	require.Equal(t, 0.5, got.Attributes["ok"])
	require.Equal(t, []any{"-Inf"}, got.Attributes["list"])
	require.Equal(t, "+Inf", got.Resource["load"])
	_, err := json.Marshal(got.Attributes)
	require.NoError(t, err)
	require.NotEqual(t, ResourceHash(got.Resource), ResourceHash(map[string]any{"load": "-Inf"}))
}

// The encoder writes, straight from pdata, the JSON encoding/json writes
// from the attribute maps: every value type, nested maps and slices,
// bytes (base64), escapes, and values cut to the limit.
func TestEncodedAttributesMatchEncodingJSON(t *testing.T) {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID(tid))
	sp.SetSpanID(pcommon.SpanID(sid(1)))
	sp.SetStartTimestamp(1)
	sp.SetEndTimestamp(2)
	a := sp.Attributes()
	a.PutStr("s", "quote\" back\\ tab\t nl\n <&> ünï 💥 \u2028 \x01")
	a.PutStr("long", strings.Repeat("é", 10_000))
	a.PutInt("i", -1<<62)
	a.PutDouble("d", 1e21)
	a.PutDouble("small", 5e-324)
	a.PutBool("b", true)
	a.PutEmptyBytes("bytes").FromRaw([]byte{0, 1, 2, 255})
	a.PutEmpty("empty")
	sl := a.PutEmptySlice("slice")
	sl.AppendEmpty().SetStr("x")
	sl.AppendEmpty().SetInt(2)
	sl.AppendEmpty().SetEmptyMap().PutStr("k", "v")
	m := a.PutEmptyMap("map")
	m.PutEmptySlice("inner").AppendEmpty().SetBool(false)
	m.PutStr("z", "last")
	ev := sp.Events().AppendEmpty()
	ev.SetTimestamp(3)
	ev.SetName("ev \"1\"")
	ev.Attributes().PutInt("n", 7)
	sp.Events().AppendEmpty().SetName("bare")
	l := sp.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID(tid))
	l.SetSpanID(pcommon.SpanID(sid(2)))
	l.TraceState().FromRaw("k=v")
	l.Attributes().PutStr("why", "retry")

	lim := DefaultLimits()
	d := FromOTLP(td, lim)
	require.Len(t, d.Spans, 1)
	got := d.Spans[0]
	for _, raw := range [][]byte{got.Stored.Attributes, got.Stored.Events, got.Stored.Links} {
		require.True(t, json.Valid(raw), "%s", raw)
	}
	got.Decode()
	require.Empty(t, got.Garbled)

	want := a.AsRaw()
	want["long"] = cut(want["long"].(string), lim.AttributeValueBytes)
	require.Equal(t, roundTrip(t, want), roundTrip(t, got.Attributes))
	require.Equal(t, roundTrip(t, []Event{{Time: 3, Name: "ev \"1\"", Attributes: map[string]any{"n": 7}}, {Name: "bare"}}), roundTrip(t, got.Events))
	require.Equal(t, roundTrip(t, []Link{{TraceID: TraceID(tid).String(), SpanID: SpanID(sid(2)).String(), TraceState: "k=v",
		Attributes: map[string]any{"why": "retry"}}}), roundTrip(t, got.Links))
}

// roundTrip is v through encoding/json and back into plain values.
func roundTrip(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}
