package archive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func records(n int) []byte {
	var b []byte
	for i := range n {
		b = fmt.Appendf(b, `{"user_id": %d, "version": 1, "props": {"k": "value %d"}}`+"\n", i+1, i*7919)
	}
	return b
}

func write(t *testing.T, codec Codec, data []byte, chunk int) ([]byte, []int64) {
	t.Helper()
	var buf bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	cw, err := NewChunkedWriter(&buf, codec, chunk, m)
	require.NoError(t, err)
	// Write in odd pieces: chunking must not depend on write sizes.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 777)
		_, err := cw.Write(rest[:n])
		require.NoError(t, err)
		rest = rest[n:]
	}
	require.NoError(t, cw.Close())
	require.Zero(t, testutil.ToFloat64(m.ChunkWriteErrors))
	var offsets []int64
	_, err = Verify(bytes.NewReader(buf.Bytes()), func(c Chunk) error {
		offsets = append(offsets, c.Offset)
		return nil
	})
	require.NoError(t, err)
	return buf.Bytes(), offsets
}

func readAll(t *testing.T, archive []byte) ([]byte, VerifyReport) {
	t.Helper()
	var out []byte
	rep, err := Verify(bytes.NewReader(archive), func(c Chunk) error {
		out = append(out, c.Payload...)
		return nil
	})
	require.NoError(t, err)
	return out, rep
}

func TestRoundTripEveryCodec(t *testing.T) {
	data := records(5000)
	for _, codec := range []Codec{CodecNone, CodecZstd, CodecS2} {
		t.Run(codec.String(), func(t *testing.T) {
			archive, offsets := write(t, codec, data, 16<<10)
			require.Greater(t, len(offsets), 10)
			got, rep := readAll(t, archive)
			require.Empty(t, rep.Bad)
			require.Equal(t, data, got)
			require.EqualValues(t, 5000, rep.Records)
			t.Logf("%s: %d bytes → %d bytes in %d chunks", codec, len(data), len(archive), rep.Chunks)
		})
	}
}

func TestFlippedByteCostsOnlyItsChunk(t *testing.T) {
	data := records(5000)
	archive, offsets := write(t, CodecZstd, data, 16<<10)
	for _, where := range []struct {
		name string
		pos  int64
	}{
		{"payload", offsets[3] + chunkHeadLen + 10},
		{"header", offsets[5] + 9},
	} {
		t.Run(where.name, func(t *testing.T) {
			bad := bytes.Clone(archive)
			bad[where.pos] ^= 0x40
			got, rep := readAll(t, bad)
			require.Len(t, rep.Bad, 1, "exactly one bad region: %v", rep.Bad)
			chunk := offsets[3]
			if where.name == "header" {
				chunk = offsets[5]
			}
			require.Equal(t, chunk, rep.Bad[0].Offset, "the report names the damaged chunk's offset")
			require.Equal(t, len(offsets)-1, rep.Chunks, "every other chunk still reads")
			require.Less(t, len(got), len(data))
			// What was read is whole records, in order.
			require.True(t, bytes.HasSuffix(got, []byte("\n")))
		})
	}
}

func TestTruncatedArchive(t *testing.T) {
	archive, offsets := write(t, CodecZstd, records(3000), 16<<10)
	cut := archive[:offsets[len(offsets)-1]+chunkHeadLen+5]
	_, rep := readAll(t, cut)
	require.Len(t, rep.Bad, 1)
	require.Contains(t, rep.Bad[0].Reason, "truncated")
	require.Equal(t, len(offsets)-1, rep.Chunks)

	_, err := Verify(bytes.NewReader([]byte("TRIADAR")), nil)
	require.ErrorContains(t, err, "header")
	_, err = Verify(bytes.NewReader([]byte("not an archive at all")), nil)
	require.ErrorContains(t, err, "magic")
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteErrorsAreCounted(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	cw, err := NewChunkedWriter(&failingWriter{after: 100}, CodecZstd, 4096, m)
	require.NoError(t, err)
	_, err = cw.Write(records(1000))
	require.ErrorContains(t, err, "disk full")
	_, err = cw.Write([]byte("x\n"))
	require.Error(t, err, "errors are sticky")
	require.Equal(t, 1.0, testutil.ToFloat64(m.ChunkWriteErrors))
}

// FuzzReader: corrupt or truncated input never panics or hangs, and a
// damaged valid archive is always reported.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	cw, _ := NewChunkedWriter(&buf, CodecZstd, 4096, nil)
	_, _ = cw.Write(records(200))
	_ = cw.Close()
	valid := buf.Bytes()
	f.Add(valid, 100, byte(1))
	f.Add(valid[:50], 0, byte(0))
	f.Add([]byte(FileMagic), 3, byte(0xff))
	f.Fuzz(func(t *testing.T, data []byte, pos int, flip byte) {
		if len(data) > 0 && pos >= 0 {
			data = bytes.Clone(data)
			data[pos%len(data)] ^= flip
		}
		rep, err := Verify(bytes.NewReader(data), func(c Chunk) error {
			if !bytes.HasSuffix(c.Payload, []byte("\n")) && len(c.Payload) > 0 {
				return fmt.Errorf("chunk at %d is not whole lines", c.Offset)
			}
			return nil
		})
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && rep.Chunks > 0 {
			t.Fatalf("reader error after good chunks: %v", err)
		}
	})
}
