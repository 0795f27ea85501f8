package trace_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/triad-dev/triad/trace"
)

// BenchmarkViewJSON: assembling a 10k-span trace (spans already in
// memory) and encoding its view as the API does.
func BenchmarkViewJSON(b *testing.B) {
	id := trace.TraceID{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
	d := trace.FromOTLP(trace.SyntheticTrace(id, 10000, time.Now()), trace.DefaultLimits())
	for i := range d.Spans {
		d.Spans[i].Decode()
		raw, _ := json.Marshal(d.Spans[i].Attributes)
		d.Spans[i].Stored.Attributes, d.Spans[i].Attributes = raw, nil
	}
	b.Run("assemble", func(b *testing.B) {
		for range b.N {
			trace.Assemble(id, d.Spans, trace.AssembleOptions{})
		}
	})
	a := trace.Assemble(id, d.Spans, trace.AssembleOptions{})
	b.Run("view", func(b *testing.B) {
		for range b.N {
			a.View()
		}
	})
	v := a.View()
	b.Run("json", func(b *testing.B) {
		for range b.N {
			if _, err := json.Marshal(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
