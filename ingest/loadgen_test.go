package ingest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGeneratorIsDeterministicAndRealistic(t *testing.T) {
	t.Parallel()
	g := NewGenerator(42)
	require.Equal(t, string(g.AppendJSONL(nil, 7)), string(NewGenerator(42).AppendJSONL(nil, 7)), "same seed, same profile")
	require.NotEqual(t, string(g.AppendJSONL(nil, 7)), string(NewGenerator(43).AppendJSONL(nil, 7)))

	var d Decoder
	const n = 20000
	total, biggest := 0, 0
	for i := range int64(n) {
		p, err := d.DecodeJSON(g.AppendJSONL(nil, i))
		require.NoError(t, err)
		require.Equal(t, g.ID(i), p.UserID)
		size := len(p.AppendDocument(nil))
		total += size
		biggest = max(biggest, size)
		tsv, err := g.AppendTSV(nil, i, &Decoder{})
		require.NoError(t, err)
		q, err := d.DecodeTSV(tsv)
		require.NoError(t, err)
		require.True(t, p.Equal(q), "TSV and JSONL forms decode to the same profile")
		require.Equal(t, p.Digest, q.Digest)
	}
	mean := total / n
	t.Logf("canonical size: mean %d B, max %d B", mean, biggest)
	require.InDelta(t, 400, mean, 100, "mean canonical size near 400 B")
	require.Greater(t, biggest, 3000, "a tail of several KB")
}
