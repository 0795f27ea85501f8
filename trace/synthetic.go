package trace

import (
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SyntheticTrace builds one trace of n spans from three services (Go,
// Python and Java-SDK Scala) for benchmarks and browser tests: span i's
// parent is span (i-1)/8, so each span has up to 8 children and the tree is
// about log8(n) deep; children run one after another inside their parent.
func SyntheticTrace(id TraceID, n int, start time.Time) ptrace.Traces {
	td := ptrace.NewTraces()
	services := []struct{ name, lang, cmd string }{
		{"checkout-go", "go", ""}, {"quote-py", "python", ""}, {"price-scala", "java", "java -cp /app/scala-library-2.13.16.jar triad.Price"},
	}
	scopes := make([]ptrace.SpanSlice, len(services))
	for i, s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s.name)
		rs.Resource().Attributes().PutStr("telemetry.sdk.language", s.lang)
		if s.cmd != "" {
			rs.Resource().Attributes().PutStr("process.command_line", s.cmd)
		}
		scopes[i] = rs.ScopeSpans().AppendEmpty().Spans()
	}
	// The root runs for a second; each span's children split its time
	// into 8 slots, each child running for 90% of its slot (sequential
	// calls, as a handler makes them).
	starts, durs := make([]time.Duration, n), make([]time.Duration, n)
	durs[0] = time.Second
	for i := range n {
		if i > 0 {
			p, k := (i-1)/8, (i-1)%8
			slot := durs[p] / 8
			starts[i] = starts[p] + time.Duration(k)*slot + slot/20
			durs[i] = slot * 9 / 10
		}
		sp := scopes[i%3].AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(id))
		sp.SetSpanID(pcommon.SpanID(syntheticSpanID(i + 1)))
		if i > 0 {
			sp.SetParentSpanID(pcommon.SpanID(syntheticSpanID((i-1)/8 + 1)))
		}
		sp.SetName(fmt.Sprintf("op-%d", i%50))
		sp.SetKind(ptrace.SpanKindInternal)
		begin := start.Add(starts[i])
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(begin))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(begin.Add(durs[i])))
		sp.Attributes().PutStr("item", fmt.Sprint(i))
		if i%97 == 0 {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

func syntheticSpanID(i int) SpanID {
	var s SpanID
	for b := range 8 {
		s[7-b] = byte(i >> (8 * b))
	}
	s[0] = 0x5e // never all zero
	return s
}
