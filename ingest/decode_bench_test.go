package ingest

import "testing"

// BenchmarkDecodeJSONL: allocations and time per input line (-benchmem).
func BenchmarkDecodeJSONL(b *testing.B) {
	g := NewGenerator(1)
	lines := make([][]byte, 1000)
	size := 0
	for i := range lines {
		lines[i] = g.AppendJSONL(nil, int64(i))
		size += len(lines[i])
	}
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(size / len(lines)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(FormatJSONL, lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTSV: the same profiles as TSV lines.
func BenchmarkDecodeTSV(b *testing.B) {
	g := NewGenerator(1)
	lines := make([][]byte, 1000)
	size := 0
	for i := range lines {
		var err error
		if lines[i], err = g.AppendTSV(nil, int64(i), &Decoder{}); err != nil {
			b.Fatal(err)
		}
		size += len(lines[i])
	}
	var d Decoder
	b.ReportAllocs()
	b.SetBytes(int64(size / len(lines)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Decode(FormatTSV, lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
	}
}
