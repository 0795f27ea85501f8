package ingest

import "testing"

// BenchmarkDecode: time and allocations per input line (-benchmem), for the
// same loadgen profiles as JSONL and as TSV.
func BenchmarkDecode(b *testing.B) {
	g := NewGenerator(1)
	for _, f := range []Format{FormatJSONL, FormatTSV} {
		b.Run(string(f), func(b *testing.B) {
			lines := make([][]byte, 1000)
			size := 0
			for i := range lines {
				if f == FormatTSV {
					var err error
					if lines[i], err = g.AppendTSV(nil, int64(i), &Decoder{}); err != nil {
						b.Fatal(err)
					}
				} else {
					lines[i] = g.AppendJSONL(nil, int64(i))
				}
				size += len(lines[i])
			}
			var d Decoder
			b.ReportAllocs()
			b.SetBytes(int64(size / len(lines)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := d.Decode(f, lines[i%len(lines)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
