package repair_test

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
	"github.com/triad-dev/triad/repair/sweep"
)

// TestOrderEntity proves the engine is not profile-specific: the `order`
// entity comes from configuration (its own table, a JSON string in Redis,
// its own index, digests computed from the data by Postgres in SQL and
// by triad from the other stores' documents). Written consistently, every
// order checks ok; then each kind of drift is planted, check by ID names
// it, a digest sweep finds exactly that set, a repair fixes it, and a
// second sweep and repair find and write nothing.
func TestOrderEntity(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	orders := s.OrderTable(t)
	docs := make([][]byte, 0, 1200)
	for n := range int64(1200) {
		docs = append(docs, repair.OrderDoc(nil, 1, n))
	}
	// Order 1201 reaches Postgres and Redis only (its index write lost).
	last := repair.OrderDoc(nil, 1, 1200)
	res, err := orders.Write(ctx, docs)
	require.NoError(t, err)
	require.Equal(t, 1200, res.Applied)
	res, err = orders.Write(ctx, docs[:10])
	require.NoError(t, err)
	require.Equal(t, 10, res.Stale, "the same versions again change nothing")
	require.NoError(t, orders.Prepare(ctx))
	// The index the first write made has the configured shape (one
	// shard, no replica), not Elasticsearch's default replica (yellow on
	// one node).
	settings, err := s.NS.ES().Indices.GetSettings(s.NS.ES().Indices.GetSettings.WithIndex(s.OrderIndex()),
		s.NS.ES().Indices.GetSettings.WithName("index.number_of_replicas"))
	require.NoError(t, err)
	body, _ := io.ReadAll(settings.Body)
	settings.Body.Close()
	require.Contains(t, string(body), `"number_of_replicas":"0"`)

	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES), orders)
	keys := make([]string, 0, 1000)
	for id := 1; id <= 1000; id++ {
		keys = append(keys, fmt.Sprint(id))
	}
	results, err := c.Check(ctx, "order", keys)
	require.NoError(t, err)
	for _, r := range results {
		require.True(t, r.Consistent, "%+v", r)
		require.Equal(t, r.Stores["postgres"].Digest, r.Stores["redis"].Digest, "Postgres's SQL digest equals triad's")
	}

	// Plant drift.
	rdb := s.Redis
	esPut := func(id int, body string, version int64, vt string) {
		res, err := s.NS.ES().Index(s.OrderIndex(), strings.NewReader(body), s.NS.ES().Index.WithDocumentID(fmt.Sprint(id)),
			s.NS.ES().Index.WithVersion(int(version)), s.NS.ES().Index.WithVersionType(vt), s.NS.ES().Index.WithRefresh("true"))
		require.NoError(t, err)
		res.Body.Close()
		require.False(t, res.IsError(), res.String())
	}
	version := func(id int) int64 {
		var v int64
		require.NoError(t, s.NS.Pool().QueryRow(ctx, `SELECT version FROM orders WHERE order_id = $1`, id).Scan(&v))
		return v
	}
	want := map[string]repair.Class{}
	// 10: Redis content changed at the same version.
	cur, err := rdb.Get(ctx, orders.RedisKey(10)).Result()
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, orders.RedisKey(10), strings.Replace(cur, `"currency":"`, `"currency":"X`, 1), 0).Err())
	want["10/redis"] = repair.ClassFieldMismatch
	// 11: Redis key lost (not a cache: missing). 12: index document lost.
	require.NoError(t, rdb.Del(ctx, orders.RedisKey(11)).Err())
	want["11/redis"] = repair.ClassMissing
	_, err = s.NS.Pool().Exec(ctx, `INSERT INTO orders (order_id, version, user_id, status, total_cents, currency, items, updated_at)
		SELECT order_id, version, user_id, status, total_cents, currency, items, updated_at FROM jsonb_populate_record(null::orders, $1::jsonb)`, string(last))
	require.NoError(t, err)
	require.NoError(t, rdb.Set(ctx, orders.RedisKey(1201), string(last), 0).Err())
	want["1201/elasticsearch"] = repair.ClassMissing
	// 13: index content changed at the same version (written by someone
	// else: no segment hash).
	esPut(13, fmt.Sprintf(`{"order_id":13,"version":%d,"user_id":1,"status":"lost","total_cents":1,"currency":"EUR","items":[],"updated_at":"2026-01-01T00:00:12Z"}`, version(13)), version(13), "external_gte")
	want["13/elasticsearch"] = repair.ClassFieldMismatch
	// 14: a newer version in Postgres only: both copies stale.
	_, err = s.NS.Pool().Exec(ctx, `UPDATE orders SET version = version + 1, status = 'refunded' WHERE order_id = 14`)
	require.NoError(t, err)
	want["14/redis"], want["14/elasticsearch"] = repair.ClassStale, repair.ClassStale
	// 15: deleted in Postgres (tombstone) but still in both.
	_, err = s.NS.Pool().Exec(ctx, `UPDATE orders SET deleted = true, version = version + 1 WHERE order_id = 15`)
	require.NoError(t, err)
	want["15/redis"], want["15/elasticsearch"] = repair.ClassOrphanDeleted, repair.ClassOrphanDeleted
	// 5000: in Redis and the index, never in Postgres.
	orphan := `{"order_id":5000,"version":7,"user_id":1,"status":"paid","total_cents":5,"currency":"EUR","items":[],"updated_at":"2026-01-01T00:00:00Z"}`
	require.NoError(t, rdb.Set(ctx, orders.RedisKey(5000), orphan, 0).Err())
	esPut(5000, orphan, 7, "external")
	want["5000/redis"], want["5000/elasticsearch"] = repair.ClassOrphan, repair.ClassOrphan

	results, err = c.Check(ctx, "order", []string{"10", "11", "1201", "13", "14", "15", "16", "5000"})
	require.NoError(t, err)
	for _, r := range results {
		for _, store := range []string{"redis", "elasticsearch"} {
			w, ok := want[r.Key+"/"+store]
			if !ok {
				w = repair.ClassOK
			}
			require.Equal(t, w, r.Stores[store].Class, "order %s in %s: %+v", r.Key, store, r)
		}
	}
	require.Equal(t, []string{"currency"}, results[0].Stores["redis"].Diff, "the field that differs is named")

	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())))
	// The quick mode: order has no labels to read, so it reads content,
	// finds every planted drift, and says its figures are content-true.
	quick, err := sw.Sweep(ctx, sweep.Options{Entity: "order", Mode: sweep.ModeLabels, SegmentSize: 100, Recheck: 50 * time.Millisecond})
	require.NoError(t, err)
	require.True(t, quick.ContentTrue, "an entity without labels is read by content in the quick mode")
	require.Len(t, quick.Findings, len(want))
	rep, err := sw.Sweep(ctx, sweep.Options{Entity: "order", Mode: sweep.ModeDigest, SegmentSize: 100, Recheck: 50 * time.Millisecond,
		Repair: true, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	var got, wantList []string
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	for k, v := range want {
		wantList = append(wantList, fmt.Sprintf("%s/%s", k, v))
	}
	sort.Strings(got)
	sort.Strings(wantList)
	require.Equal(t, wantList, got, "the sweep finds exactly the planted drift")
	require.Equal(t, 1200, rep.Records, "1201 orders, one a tombstone")
	require.LessOrEqual(t, rep.Dirty, 2, "the planted orders share the first segments; the rest are clean by their sums")
	require.Equal(t, len(want), rep.Repair.Repaired, "%+v", rep.Repair)
	t.Logf("measured: order sweep of %d records in %d segments (%d dirty) took %s", rep.Records, rep.Segments, rep.Dirty, rep.Took)

	require.NoError(t, orders.Prepare(ctx))
	rep, err = sw.Sweep(ctx, sweep.Options{Entity: "order", Mode: sweep.ModeDigest, SegmentSize: 100, Recheck: 50 * time.Millisecond, Repair: true})
	require.NoError(t, err)
	require.Empty(t, rep.Findings, "a second sweep finds nothing")
	require.Nil(t, rep.Repair, "and repairs nothing")
	run, _, err := repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())).Repair(ctx, repair.Request{Entity: "order", Keys: []string{"10", "11", "1201", "13", "14", "15", "5000"}, Actor: "test"})
	require.NoError(t, err)
	require.Zero(t, run.Repaired, "a second repair writes nothing: %+v", run)

	// Bad keys.
	_, err = c.Check(ctx, "order", []string{"0"})
	require.ErrorIs(t, err, repair.ErrBadKey)
}
