package archive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/triad-dev/triad/ingest"
)

// Chunk is one chunk read back.
type Chunk struct {
	// Offset is the chunk header's byte offset in the file.
	Offset  int64
	Seq     uint64
	Codec   Codec
	Records int
	// Payload is the uncompressed payload (whole JSONL lines); valid until
	// the next call to Next.
	Payload []byte
}

// CorruptError is a damaged region of an archive. The reader has skipped it
// and the next Next continues after it.
type CorruptError struct {
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("bad chunk at offset %d: %s", e.Offset, e.Reason)
}

// Reader reads chunks from a stream. It never panics on bad input: every
// damaged region is reported as a *CorruptError and reading carries on.
type Reader struct {
	r    *bufio.Reader
	off  int64
	comp []byte
	raw  []byte
	zdec *zstd.Decoder
	// resync is set after a bad header: search forward for the next chunk.
	resync bool
}

// NewReader checks the file header.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head := make([]byte, fileHeaderLen)
	if n, err := io.ReadFull(br, head); err != nil {
		return nil, fmt.Errorf("archive header: %w", checkFileHeader(head[:n]))
	}
	if err := checkFileHeader(head); err != nil {
		return nil, fmt.Errorf("archive header: %w", err)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxChunkBytes))
	if err != nil {
		return nil, err
	}
	return &Reader{r: br, off: fileHeaderLen, zdec: zdec}, nil
}

// Close releases the decoder.
func (r *Reader) Close() { r.zdec.Close() }

// Next returns the next chunk, a *CorruptError for a damaged region (call
// Next again to go on), or io.EOF.
func (r *Reader) Next() (Chunk, error) {
	if r.resync {
		skipped, found := r.seek()
		r.resync = false
		if !found {
			if skipped > 0 {
				return Chunk{}, &CorruptError{Offset: r.off - skipped, Reason: fmt.Sprintf("%d bytes with no valid chunk header up to the end", skipped)}
			}
			return Chunk{}, io.EOF
		}
	}
	start := r.off
	head, err := r.r.Peek(chunkHeadLen)
	if len(head) == 0 && err != nil {
		if err == io.EOF {
			return Chunk{}, io.EOF
		}
		return Chunk{}, err
	}
	if len(head) < chunkHeadLen {
		n, _ := r.r.Discard(len(head))
		r.off += int64(n)
		return Chunk{}, &CorruptError{Offset: start, Reason: fmt.Sprintf("truncated chunk header (%d of %d bytes)", len(head), chunkHeadLen)}
	}
	h, err := parseChunkHeader(head)
	if err != nil {
		// Skip one byte and search for the next good header.
		_, _ = r.r.Discard(1)
		r.off++
		r.resync = true
		return Chunk{}, &CorruptError{Offset: start, Reason: err.Error()}
	}
	_, _ = r.r.Discard(chunkHeadLen)
	r.off += chunkHeadLen
	if cap(r.comp) < int(h.compLen) {
		r.comp = make([]byte, h.compLen)
	}
	r.comp = r.comp[:h.compLen]
	n, err := io.ReadFull(r.r, r.comp)
	r.off += int64(n)
	if err != nil {
		return Chunk{}, &CorruptError{Offset: start, Reason: fmt.Sprintf("truncated payload (%d of %d bytes)", n, h.compLen)}
	}
	raw, err := r.decode(h)
	if err != nil {
		return Chunk{}, &CorruptError{Offset: start, Reason: err.Error()}
	}
	if checksum(raw) != h.payloadCRC32 {
		return Chunk{}, &CorruptError{Offset: start, Reason: "payload checksum mismatch"}
	}
	if c := bytes.Count(raw, []byte{'\n'}); c != int(h.records) {
		return Chunk{}, &CorruptError{Offset: start, Reason: fmt.Sprintf("%d records, header says %d", c, h.records)}
	}
	return Chunk{Offset: start, Seq: h.seq, Codec: h.codec, Records: int(h.records), Payload: raw}, nil
}

func (r *Reader) decode(h chunkHeader) ([]byte, error) {
	var raw []byte
	var err error
	switch h.codec {
	case CodecZstd:
		raw, err = r.zdec.DecodeAll(r.comp, r.raw[:0])
	case CodecS2:
		var n int
		if n, err = s2.DecodedLen(r.comp); err == nil {
			if n > MaxChunkBytes {
				return nil, fmt.Errorf("s2 payload decodes to %d bytes", n)
			}
			raw, err = s2.Decode(r.raw[:cap(r.raw)], r.comp)
		}
	default:
		raw = append(r.raw[:0], r.comp...)
	}
	if err != nil {
		return nil, fmt.Errorf("%s payload: %w", h.codec, err)
	}
	r.raw = raw
	if len(raw) != int(h.rawLen) {
		return nil, fmt.Errorf("payload decodes to %d bytes, header says %d", len(raw), h.rawLen)
	}
	return raw, nil
}

// seek advances to the next offset holding a valid chunk header, returning
// how many bytes it skipped and whether it found one.
func (r *Reader) seek() (int64, bool) {
	var skipped int64
	for {
		b, _ := r.r.Peek(chunkHeadLen)
		if len(b) < chunkHeadLen {
			n, _ := r.r.Discard(len(b))
			r.off += int64(n)
			return skipped + int64(n), false
		}
		if i := bytes.Index(b, []byte(ChunkMagic)); i != 0 {
			step := len(b) - len(ChunkMagic) + 1
			if i > 0 {
				step = i
			}
			_, _ = r.r.Discard(step)
			r.off += int64(step)
			skipped += int64(step)
			continue
		}
		if _, err := parseChunkHeader(b); err == nil {
			return skipped, true
		}
		_, _ = r.r.Discard(1)
		r.off++
		skipped++
	}
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Chunks  int             `json:"chunks"`
	Records int64           `json:"records"`
	Bytes   int64           `json:"uncompressed_bytes"`
	Bad     []*CorruptError `json:"bad,omitempty"`
}

// Verify reads the whole archive, calling fn (if not nil) for every good
// chunk, and reports every bad one. err is only for a bad file header or a
// read error of the underlying reader.
func Verify(rd io.Reader, fn func(Chunk) error) (VerifyReport, error) {
	var rep VerifyReport
	r, err := NewReader(rd)
	if err != nil {
		return rep, err
	}
	defer r.Close()
	for {
		c, err := r.Next()
		var ce *CorruptError
		switch {
		case err == io.EOF:
			return rep, nil
		case errors.As(err, &ce):
			rep.Bad = append(rep.Bad, ce)
			continue
		case err != nil:
			return rep, err
		}
		rep.Chunks++
		rep.Records += int64(c.Records)
		rep.Bytes += int64(len(c.Payload))
		if fn != nil {
			if err := fn(c); err != nil {
				return rep, err
			}
		}
	}
}

// Replay feeds every good chunk of the archive at path back into the
// pipeline (records are JSONL input lines) and waits until Postgres has
// taken them; bad chunks are reported and skipped.
func Replay(ctx context.Context, path string, pl *ingest.Pipeline) (VerifyReport, ingest.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return VerifyReport{}, ingest.Summary{}, err
	}
	defer f.Close()
	var total ingest.Summary
	rep, err := Verify(f, func(c Chunk) error {
		s, _, err := pl.Run(ctx, bytes.NewReader(c.Payload), ingest.RunOptions{Source: fmt.Sprintf("%s@%d", path, c.Offset), Format: ingest.FormatJSONL})
		total.Lines += s.Lines
		total.Applied += s.Applied
		total.Superseded += s.Superseded
		total.Quarantined += s.Quarantined
		total.Failed += s.Failed
		return err
	})
	total.Source = path
	return rep, total, err
}
