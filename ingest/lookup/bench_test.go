package lookup

import (
	"testing"
)

// BenchmarkCacheHit is the in-process tier alone (no HTTP).
func BenchmarkCacheHit(b *testing.B) {
	ids := make([]int64, 10000)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	r, _, _ := newTestReader(&testing.T{}, ids...)
	r.Subscribed()
	if err := r.Rebuild(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, id := range ids {
		_, _ = r.Get(b.Context(), id)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := r.Get(b.Context(), ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkUnknownID is an ID the filter stops.
func BenchmarkUnknownID(b *testing.B) {
	r, _, _ := newTestReader(&testing.T{}, 1, 2, 3)
	r.Subscribed()
	if err := r.Rebuild(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.Get(b.Context(), int64(1_000_000+i)); err != nil {
			b.Fatal(err)
		}
	}
}
