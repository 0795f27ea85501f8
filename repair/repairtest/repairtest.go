// Package repairtest holds the fixtures the engine's and the sweeps'
// integration tests share: a namespace of the real stack with the
// profile's three stores, profiles to plant, and the drift injectors that
// write through each store's own API (never through triad's writers).
package repairtest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
	repaires "github.com/triad-dev/triad/repair/elasticsearch"
	repairpg "github.com/triad-dev/triad/repair/postgres"
)

// Stores are the profile's three stores in a test's own namespace
// (migrated, the index set up). Redis is the client drift is written
// through: the stack's Redis, or in the cluster lane its Redis Cluster.
type Stores struct {
	NS    *stacktest.Namespace
	PG    *pgstore.Store
	RS    *redisstore.Store
	ES    *esstore.Store
	Redis redis.UniversalClient
}

// New returns a migrated namespace's stores.
func New(t testing.TB) *Stores {
	t.Helper()
	ns := stacktest.New(t)
	rdb := ns.Redis()
	ns.Migrate(t)
	s := &Stores{NS: ns, PG: pgstore.New(ns.Pool()), Redis: rdb,
		RS: redisstore.New(rdb, redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: time.Hour}, prometheus.NewRegistry()),
		ES: esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix})}
	require.NoError(t, s.ES.Setup(t.Context()))
	return s
}

// Profile is a small valid profile.
func Profile(t testing.TB, id, version int64, tag string) *ingest.Profile {
	t.Helper()
	p, err := new(ingest.Decoder).DecodeJSON(fmt.Appendf(nil, `{"user_id": %d, "version": %d, "updated_at": "2026-01-01T00:00:00Z", "tags": [%q], "props": {"k": "v"}}`, id, version, tag))
	require.NoError(t, err)
	return p
}

// Write puts p into the named stores only, as a drift injector.
func (s *Stores) Write(t testing.TB, p *ingest.Profile, where ...string) {
	t.Helper()
	for _, w := range where {
		switch w {
		case "postgres":
			_, err := s.PG.Apply(t.Context(), []*ingest.Profile{p}, make([]bool, 1), nil)
			require.NoError(t, err)
		case "redis":
			out := make([]ingest.WriteResult, 1)
			require.NoError(t, s.RS.WriteAt(t.Context(), 1, []*ingest.Profile{p}, out))
			require.NoError(t, out[0].Err)
		case "elasticsearch":
			out := make([]ingest.WriteResult, 1)
			require.NoError(t, s.ES.WriteAt(t.Context(), 1, []*ingest.Profile{p}, out))
			require.NoError(t, out[0].Err)
		}
	}
}

// Consistent writes profiles first..last at version 1 into all three
// stores in one batch each.
func (s *Stores) Consistent(t testing.TB, first, last int64, tag string) {
	t.Helper()
	var bulk []*ingest.Profile
	for id := first; id <= last; id++ {
		bulk = append(bulk, Profile(t, id, 1, tag))
	}
	ctx := t.Context()
	_, err := s.PG.Apply(ctx, bulk, make([]bool, len(bulk)), nil)
	require.NoError(t, err)
	out := make([]ingest.WriteResult, len(bulk))
	require.NoError(t, s.RS.WriteAt(ctx, 1, bulk, out))
	require.NoError(t, s.ES.WriteAt(ctx, 1, bulk, out))
}

// ESForce plants other content at the document's own version
// (external_gte): what a buggy writer leaves behind.
func (s *Stores) ESForce(t testing.TB, p *ingest.Profile) {
	t.Helper()
	v := int(p.Version)
	res, err := s.NS.ES().Index(s.ES.Alias(), strings.NewReader(string(p.AppendJSON(nil))), s.NS.ES().Index.WithDocumentID(fmt.Sprint(p.UserID)),
		s.NS.ES().Index.WithVersion(v), s.NS.ES().Index.WithVersionType("external_gte"))
	require.NoError(t, err)
	res.Body.Close()
	require.False(t, res.IsError(), res.String())
}

// ESUpdate changes fields with ES _update (internal versioning: it raises
// _version past the profile version and keeps triad's labels).
func (s *Stores) ESUpdate(t testing.TB, index, id, doc string) {
	t.Helper()
	res, err := s.NS.ES().Update(index, id, strings.NewReader(`{"doc":`+doc+`}`), s.NS.ES().Update.WithRefresh("true"))
	require.NoError(t, err)
	defer res.Body.Close()
	require.False(t, res.IsError(), res.String())
}

// ESPlainIndex re-indexes a whole body without a version (internal
// versioning), as a re-index job of another service would.
func (s *Stores) ESPlainIndex(t testing.TB, index, id, body string) {
	t.Helper()
	res, err := s.NS.ES().Index(index, strings.NewReader(body), s.NS.ES().Index.WithDocumentID(id), s.NS.ES().Index.WithRefresh("true"))
	require.NoError(t, err)
	defer res.Body.Close()
	require.False(t, res.IsError(), res.String())
}

// ESSource is a document's _source as stored.
func (s *Stores) ESSource(t testing.TB, index, id string) map[string]json.RawMessage {
	t.Helper()
	res, err := s.NS.ES().Get(index, id)
	require.NoError(t, err)
	defer res.Body.Close()
	var doc struct {
		Source map[string]json.RawMessage `json:"_source"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&doc))
	return doc.Source
}

// Want is what each derived store's class must be.
type Want struct{ Redis, ES repair.Class }

// PlantAll plants one profile per kind of drift and returns what each
// store's class must be.
func PlantAll(t testing.TB, s *Stores) map[int64]Want {
	t.Helper()
	all := []string{"postgres", "redis", "elasticsearch"}
	cases := map[int64]Want{}
	plant := func(id int64, w Want, setup func()) {
		setup()
		cases[id] = w
	}
	ctx := t.Context()

	plant(1, Want{repair.ClassOK, repair.ClassOK}, func() { s.Write(t, Profile(t, 1, 5, "a"), all...) })
	plant(2, Want{repair.ClassAbsentAllowed, repair.ClassOK}, func() {
		s.Write(t, Profile(t, 2, 5, "a"), all...)
		require.NoError(t, s.Redis.Del(ctx, s.RS.Key(2)).Err()) // an expired cache key
	})
	plant(3, Want{repair.ClassOK, repair.ClassMissing}, func() {
		s.Write(t, Profile(t, 3, 5, "a"), "postgres", "redis")
	})
	plant(4, Want{repair.ClassStale, repair.ClassStale}, func() {
		s.Write(t, Profile(t, 4, 4, "old"), "redis", "elasticsearch")
		s.Write(t, Profile(t, 4, 5, "new"), "postgres")
	})
	plant(5, Want{repair.ClassFieldMismatch, repair.ClassFieldMismatch}, func() {
		s.Write(t, Profile(t, 5, 5, "a"), all...)
		require.NoError(t, s.Redis.HSet(ctx, s.RS.Key(5), "tags", `["changed"]`).Err())
		s.ESForce(t, Profile(t, 5, 5, "changed"))
	})
	plant(6, Want{repair.ClassOrphan, repair.ClassOrphan}, func() {
		s.Write(t, Profile(t, 6, 5, "a"), "redis", "elasticsearch")
	})
	plant(7, Want{repair.ClassOrphanDeleted, repair.ClassOrphanDeleted}, func() {
		s.Write(t, Profile(t, 7, 5, "a"), all...)
		s.Write(t, &ingest.Profile{UserID: 7, Version: 6, Deleted: true}, "postgres")
	})
	plant(8, Want{repair.ClassAhead, repair.ClassOK}, func() {
		s.Write(t, Profile(t, 8, 5, "a"), all...)
		s.Write(t, Profile(t, 8, 9, "written behind postgres"), "redis")
	})
	plant(9, Want{repair.ClassAbsent, repair.ClassAbsent}, func() {})
	plant(10, Want{repair.ClassAbsent, repair.ClassAbsent}, func() {
		s.Write(t, &ingest.Profile{UserID: 10, Version: 2, Deleted: true}, "postgres")
	})
	require.NoError(t, s.ES.Refresh(ctx))

	return cases
}

// OrderTable is the order entity on the test's namespace: its table, its
// Redis keys under the namespace's prefix and its own index.
func (s *Stores) OrderTable(t testing.TB) *repair.Table {
	t.Helper()
	rows, err := repairpg.NewTableRows(s.NS.Pool(), repair.OrderEntity())
	require.NoError(t, err)
	idx := repaires.New(s.NS.ES(), s.OrderIndex(), "order_id", esstore.DefaultShape())
	orders, err := repair.NewTable(repair.OrderEntity(), rows, s.Redis, s.NS.RedisPrefix, idx)
	require.NoError(t, err)
	return orders
}

// Orders is OrderTable with n generated orders written consistently to
// its three stores and the index refreshed.
func (s *Stores) Orders(t testing.TB, n int64) *repair.Table {
	t.Helper()
	orders := s.OrderTable(t)
	docs := make([][]byte, 0, n)
	for i := range n {
		docs = append(docs, repair.OrderDoc(nil, 1, i))
	}
	_, err := orders.Write(t.Context(), docs)
	require.NoError(t, err)
	require.NoError(t, orders.Prepare(t.Context()))
	return orders
}

// OrderIndex is the name of OrderTable's index.
func (s *Stores) OrderIndex() string { return s.NS.IndexPrefix + "orders" }
