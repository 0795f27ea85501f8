package repair_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/repairtest"
)

// TestInspect: one record side by side. Each valid copy comes with its
// counted fields (canonical JSON); a copy that is not a valid record comes
// with its raw value as stored, written through each store's own API: a
// Redis string where a hash belongs, an Elasticsearch document of another
// shape (a profile's and an order's), bounded to MaxRawText.
func TestInspect(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 3, "a")
	orders := s.Orders(t, 3)
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES), orders)

	res, err := c.Inspect(ctx, "profile", "1")
	require.NoError(t, err)
	require.True(t, res.Consistent)
	for _, store := range []string{"postgres", "redis", "elasticsearch"} {
		v := res.Stores[store]
		require.JSONEq(t, `["a"]`, string(v.Fields["tags"]), store)
		require.JSONEq(t, `{"k": "v"}`, string(v.Fields["props"]), store)
		require.Empty(t, v.Raw, store)
	}

	// Profile 2: a JSON string where the cache's hash belongs, and a
	// search document another writer re-indexed without its updated_at.
	require.NoError(t, s.Redis.Set(ctx, s.RS.KeyAt(1, 2), `{"user_id": 2, "note": "cached by another service"}`, time.Hour).Err())
	src := s.ESSource(t, s.ES.Alias(), "2")
	delete(src, "updated_at")
	body, _ := json.Marshal(src)
	s.ESPlainIndex(t, s.ES.Alias(), "2", string(body))
	res, err = c.Inspect(ctx, "profile", "2")
	require.NoError(t, err)
	require.False(t, res.Consistent)
	rd, es := res.Stores["redis"], res.Stores["elasticsearch"]
	require.Equal(t, repair.ClassCorrupt, rd.Class)
	require.Equal(t, `{"user_id": 2, "note": "cached by another service"}`, rd.Raw, "the string as stored")
	require.Nil(t, rd.Fields)
	require.Equal(t, repair.ClassCorrupt, es.Class)
	require.Contains(t, es.Raw, `"user_id":2`, "the _source as stored")
	require.NotContains(t, es.Raw, `updated_at`)
	require.NotEmpty(t, res.Stores["postgres"].Fields)

	// Profile 3: a hash too large to show whole is cut at MaxRawText.
	require.NoError(t, s.Redis.HSet(ctx, s.RS.KeyAt(1, 3), "props", strings.Repeat("x", 2*repair.MaxRawText)).Err())
	res, err = c.Inspect(ctx, "profile", "3")
	require.NoError(t, err)
	raw := res.Stores["redis"].Raw
	require.Equal(t, repair.ClassCorrupt, res.Stores["redis"].Class)
	require.LessOrEqual(t, len(raw), repair.MaxRawText+64)
	require.Contains(t, raw, "bytes in all)")

	// An order whose document another writer re-indexed with a field the
	// entity does not have.
	s.ESPlainIndex(t, s.OrderIndex(), "2", `{"order_id": 2, "surprise": true}`)
	res, err = c.Inspect(ctx, "order", "2")
	require.NoError(t, err)
	require.Equal(t, repair.ClassCorrupt, res.Stores["elasticsearch"].Class)
	require.Contains(t, res.Stores["elasticsearch"].Raw, `"surprise":true`)
}
