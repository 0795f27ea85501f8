package elasticsearch_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
)

// TestChangedReadsEveryShard: an index created with three primary shards
// (profile_index.shards) holds what triad wrote, spread over the shards;
// Changed, reading the shards in parallel, hands every document written
// after a checkpoint exactly once, and only those.
func TestChangedReadsEveryShard(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ctx := t.Context()
	es := esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix, Shape: esstore.Shape{Shards: 3}})
	require.NoError(t, es.Setup(ctx))
	g := ingest.NewGenerator(7)
	var dec ingest.Decoder
	write := func(from, to int64) []int64 {
		var batch []*ingest.Profile
		var ids []int64
		for n := from; n < to; n++ {
			p, err := dec.DecodeJSON(g.AppendJSONL(nil, n))
			require.NoError(t, err)
			batch = append(batch, p)
			ids = append(ids, p.UserID)
		}
		out := make([]ingest.WriteResult, len(batch))
		require.NoError(t, es.Write(ctx, batch, out))
		require.NoError(t, es.Refresh(ctx))
		return ids
	}
	write(0, 600)
	cp, err := es.Checkpoint(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, cp.Shards)

	all := func(since int64) []int64 {
		var got []int64
		n, err := es.Changed(ctx, cp.Index, cp.Shards, since, func(docs []esstore.Doc) error {
			for _, d := range docs {
				got = append(got, d.ID)
			}
			return nil
		})
		require.NoError(t, err)
		require.EqualValues(t, len(got), n)
		slices.Sort(got)
		return got
	}
	everything := all(-1)
	require.Len(t, everything, 600, "every document of the three shards, once")
	require.Len(t, slices.Compact(slices.Clone(everything)), 600)

	later := write(600, 650)
	slices.Sort(later)
	got := all(cp.SeqNo)
	// The checkpoint is the smallest of the shards' numbers, so a shard
	// ahead of it rereads some older documents; every new one is there.
	for _, id := range later {
		_, found := slices.BinarySearch(got, id)
		require.True(t, found, "document %d written after the checkpoint", id)
	}
	require.Len(t, slices.Compact(slices.Clone(got)), len(got), "each once")
}
