package archive

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/triad-dev/triad/ingest"
)

// benchRecords is 64 MiB of loadgen records, the archive's real input.
func benchRecords(b *testing.B) []byte {
	g := ingest.NewGenerator(1)
	var d ingest.Decoder
	var buf []byte
	for i := int64(0); len(buf) < 64<<20; i++ {
		p, err := d.DecodeJSON(g.AppendJSONL(nil, i))
		if err != nil {
			b.Fatal(err)
		}
		buf = append(p.AppendRecord(buf), '\n')
	}
	return buf
}

// BenchmarkWriteFile: ChunkedWriter to a file in TRIAD_BENCH_DIR (default
// the OS temporary directory) with each codec, fsync at the end; MB/s is of
// uncompressed input, and the compression ratio is reported.
func BenchmarkWriteFile(b *testing.B) {
	data := benchRecords(b)
	dir := os.Getenv("TRIAD_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	for _, codec := range []Codec{CodecZstd, CodecS2, CodecNone} {
		b.Run(codec.String(), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var written int64
			for i := 0; i < b.N; i++ {
				f, err := os.Create(filepath.Join(dir, "bench.tca"))
				if err != nil {
					b.Fatal(err)
				}
				cw, err := NewChunkedWriter(f, codec, DefaultChunkBytes, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := cw.Write(data); err != nil {
					b.Fatal(err)
				}
				if err := cw.Close(); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				written = cw.Written()
				f.Close()
			}
			os.Remove(filepath.Join(dir, "bench.tca"))
			b.ReportMetric(float64(len(data))/float64(written), "ratio")
		})
	}
}

// BenchmarkVerify: reading and checking a zstd archive (MB/s of
// uncompressed payload).
func BenchmarkVerify(b *testing.B) {
	data := benchRecords(b)
	var buf bytes.Buffer
	cw, _ := NewChunkedWriter(&buf, CodecZstd, DefaultChunkBytes, nil)
	_, _ = cw.Write(data)
	_ = cw.Close()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Verify(bytes.NewReader(buf.Bytes()), nil)
		if err != nil || len(rep.Bad) > 0 {
			b.Fatal(err, rep.Bad)
		}
	}
}
