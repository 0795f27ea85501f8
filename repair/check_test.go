package repair_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/repairtest"
)

// TestCheckClassifiesEveryCase plants each kind of drift and checks that
// check-by-ID names it exactly, per store.
func TestCheckClassifiesEveryCase(t *testing.T) {
	t.Parallel()
	checkClassifies(t, repairtest.New(t))
}

func checkClassifies(t *testing.T, s *repairtest.Stores) {
	cases := repairtest.PlantAll(t, s)
	ctx := t.Context()

	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	keys := make([]string, 0, len(cases))
	for id := range cases {
		keys = append(keys, fmt.Sprint(id))
	}
	res, err := c.Check(ctx, "profile", keys)
	require.NoError(t, err)
	require.Len(t, res, len(cases))
	for _, r := range res {
		var id int64
		fmt.Sscan(r.Key, &id)
		w := cases[id]
		require.Equal(t, w.Redis, r.Stores["redis"].Class, "profile %d in redis: %+v", id, r)
		require.Equal(t, w.ES, r.Stores["elasticsearch"].Class, "profile %d in elasticsearch: %+v", id, r)
		require.Equal(t, !w.Redis.Drift() && !w.ES.Drift(), r.Consistent, "profile %d", id)
	}
	five := res[indexOf(res, "5")]
	require.Equal(t, []string{"tags"}, five.Stores["redis"].Diff, "the field that differs is named")
	require.Equal(t, []string{"tags"}, five.Stores["elasticsearch"].Diff)
	require.NotEqual(t, five.Stores["redis"].Digest, five.Stores["redis"].Computed, "the stored digest no longer matches the data")
	seven := res[indexOf(res, "7")]
	require.True(t, seven.Stores["postgres"].Deleted)

	// Bad input: unknown entity, malformed keys, too many.
	_, err = c.Check(ctx, "order", []string{"1"})
	require.ErrorIs(t, err, repair.ErrUnknownEntity)
	require.ErrorContains(t, err, `known: [profile]`)
	_, err = c.Check(ctx, "profile", []string{"1", "x"})
	require.ErrorIs(t, err, repair.ErrBadKey)
	require.ErrorContains(t, err, "keys[1]")
	_, err = c.Check(ctx, "profile", make([]string, 1001))
	require.ErrorIs(t, err, repair.ErrTooMany)

	// A store that cannot be read fails the check, naming it.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Check(cctx, "profile", []string{"1"})
	require.Error(t, err)
}

func indexOf(res []repair.Result, key string) int {
	for i, r := range res {
		if r.Key == key {
			return i
		}
	}
	return -1
}
