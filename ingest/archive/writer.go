package archive

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the archive's counters, shared by every writer of a process.
type Metrics struct {
	// ChunkWriteErrors keeps the seed's name: chunk_write_errors_total.
	ChunkWriteErrors prometheus.Counter
	Bytes            *prometheus.CounterVec // kind: uncompressed, written
	Chunks           prometheus.Counter
	Segments         prometheus.Counter
}

// NewMetrics registers the archive metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		ChunkWriteErrors: f.NewCounter(prometheus.CounterOpts{Name: "chunk_write_errors_total", Help: "Archive chunks that could not be written."}),
		Bytes: f.NewCounterVec(prometheus.CounterOpts{Name: "triad_archive_bytes_total",
			Help: "Archive bytes: uncompressed payload, and written to disk (headers and compressed payload)."}, []string{"kind"}),
		Chunks:   f.NewCounter(prometheus.CounterOpts{Name: "triad_archive_chunks_total", Help: "Archive chunks written."}),
		Segments: f.NewCounter(prometheus.CounterOpts{Name: "triad_archive_segments_total", Help: "Archive segment files started."}),
	}
}

// ChunkedWriter is the io.Writer: bytes written to it are buffered and cut
// into chunks of about ChunkBytes at a newline, each compressed and framed
// (see the package documentation). Not safe for concurrent use.
type ChunkedWriter struct {
	w          io.Writer
	codec      Codec
	chunkBytes int
	m          *Metrics
	zenc       *zstd.Encoder
	buf        []byte
	out        []byte
	head       [chunkHeadLen]byte
	seq        uint64
	written    int64
	err        error
}

// DefaultChunkBytes is the default uncompressed size of a chunk.
const DefaultChunkBytes = 1 << 20

// NewChunkedWriter writes the file header to w and returns the writer. m
// may be nil.
func NewChunkedWriter(w io.Writer, codec Codec, chunkBytes int, m *Metrics) (*ChunkedWriter, error) {
	if chunkBytes <= 0 {
		chunkBytes = DefaultChunkBytes
	}
	if chunkBytes > MaxChunkBytes/2 {
		return nil, fmt.Errorf("chunk size %d over %d", chunkBytes, MaxChunkBytes/2)
	}
	cw := &ChunkedWriter{w: w, codec: codec, chunkBytes: chunkBytes, m: m}
	if codec == CodecZstd {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		cw.zenc = enc
	}
	n, err := w.Write(fileHeader())
	cw.written = int64(n)
	if err != nil {
		cw.fail()
		return nil, fmt.Errorf("write archive header: %w", err)
	}
	return cw, nil
}

func (cw *ChunkedWriter) fail() {
	if cw.m != nil {
		cw.m.ChunkWriteErrors.Inc()
	}
}

// Write buffers p and writes every full chunk. A write error is sticky.
func (cw *ChunkedWriter) Write(p []byte) (int, error) {
	if cw.err != nil {
		return 0, cw.err
	}
	cw.buf = append(cw.buf, p...)
	// Cut chunks from start on, and move the rest to the front once at the
	// end (moving it after every chunk is quadratic in a large Write).
	start := 0
	defer func() { cw.buf = append(cw.buf[:0], cw.buf[start:]...) }()
	for len(cw.buf)-start >= cw.chunkBytes {
		rest := cw.buf[start:]
		// Cut after the last newline within the chunk size; a record longer
		// than a chunk goes out whole at the next newline, and a run of bytes
		// without any newline is cut at twice the chunk size.
		cut := bytes.LastIndexByte(rest[:cw.chunkBytes], '\n') + 1
		if cut == 0 {
			next := bytes.IndexByte(rest[cw.chunkBytes:], '\n')
			switch {
			case next >= 0:
				cut = cw.chunkBytes + next + 1
			case len(rest) >= 2*cw.chunkBytes:
				cut = 2 * cw.chunkBytes
			default:
				return len(p), nil
			}
		}
		if err := cw.writeChunk(rest[:cut]); err != nil {
			return len(p), err
		}
		start += cut
	}
	return len(p), nil
}

// Flush writes what is buffered as a (short) chunk.
func (cw *ChunkedWriter) Flush() error {
	if cw.err != nil {
		return cw.err
	}
	if len(cw.buf) == 0 {
		return nil
	}
	err := cw.writeChunk(cw.buf)
	cw.buf = cw.buf[:0]
	return err
}

// Written is the number of bytes written to the underlying writer.
func (cw *ChunkedWriter) Written() int64 { return cw.written }

// Buffered is the number of bytes not yet in a chunk.
func (cw *ChunkedWriter) Buffered() int { return len(cw.buf) }

func (cw *ChunkedWriter) writeChunk(raw []byte) error {
	switch cw.codec {
	case CodecZstd:
		cw.out = cw.zenc.EncodeAll(raw, cw.out[:0])
	case CodecS2:
		cw.out = s2.Encode(cw.out[:cap(cw.out)], raw)
	default:
		cw.out = append(cw.out[:0], raw...)
	}
	h := chunkHeader{codec: cw.codec, records: uint32(bytes.Count(raw, []byte{'\n'})), rawLen: uint32(len(raw)),
		compLen: uint32(len(cw.out)), seq: cw.seq, payloadCRC32: checksum(raw)}
	h.put(cw.head[:])
	n1, err := cw.w.Write(cw.head[:])
	if err == nil {
		var n2 int
		n2, err = cw.w.Write(cw.out)
		n1 += n2
	}
	cw.written += int64(n1)
	if err != nil {
		cw.err = fmt.Errorf("write chunk %d: %w", cw.seq, err)
		cw.fail()
		return cw.err
	}
	cw.seq++
	if cw.m != nil {
		cw.m.Chunks.Inc()
		cw.m.Bytes.WithLabelValues("uncompressed").Add(float64(len(raw)))
		cw.m.Bytes.WithLabelValues("written").Add(float64(n1))
	}
	return nil
}

// Close flushes; it does not close the underlying writer.
func (cw *ChunkedWriter) Close() error {
	err := cw.Flush()
	if cw.zenc != nil {
		_ = cw.zenc.Close()
	}
	return err
}
