package archive

import (
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/triad-dev/triad/ingest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSegmentsRotateAndReadBack(t *testing.T) {
	for _, fsync := range []string{"chunk", "interval", "never"} {
		t.Run(fsync, func(t *testing.T) {
			dir := t.TempDir()
			m := NewMetrics(prometheus.NewRegistry())
			cfg := DefaultConfig()
			cfg.Dir, cfg.ChunkBytes, cfg.SegmentBytes, cfg.Fsync, cfg.FlushInterval = dir, 8192, 64<<10, fsync, 20*time.Millisecond
			s, err := Open(cfg, m)
			require.NoError(t, err)
			g := ingest.NewGenerator(3)
			var d ingest.Decoder
			var batch []*ingest.Profile
			for i := range int64(3000) {
				p, err := d.DecodeJSON(g.AppendJSONL(nil, i))
				require.NoError(t, err)
				batch = append(batch, p)
				if len(batch) == 100 {
					require.NoError(t, s.Append(batch))
					batch = nil
				}
			}
			// The flusher cuts a partial chunk within the flush interval.
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, s.Close())
			files, err := Files(dir)
			require.NoError(t, err)
			require.Greater(t, len(files), 3, "segments rotate by size")
			require.EqualValues(t, len(files), testutil.ToFloat64(m.Segments))
			records := int64(0)
			for _, f := range files {
				st, err := os.Stat(f)
				require.NoError(t, err)
				require.Less(t, st.Size(), int64(64<<10)+64<<10, "a segment stops growing after segment_bytes")
				fh, err := os.Open(f)
				require.NoError(t, err)
				rep, err := Verify(fh, nil)
				fh.Close()
				require.NoError(t, err)
				require.Empty(t, rep.Bad)
				records += rep.Records
			}
			require.EqualValues(t, 3000, records, "every appended profile is in the archive once")
		})
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Dir = "x"
	require.NoError(t, c.Validate())
	c.Codec, c.Fsync, c.ChunkBytes = "lz5", "sometimes", 10
	err := c.Validate()
	require.ErrorContains(t, err, "archive.codec")
	require.ErrorContains(t, err, "archive.fsync")
	require.ErrorContains(t, err, "archive.chunk_bytes")
}
