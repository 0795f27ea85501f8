package repair_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
)

type stores struct {
	ns *stacktest.Namespace
	pg *pgstore.Store
	rs *redisstore.Store
	es *esstore.Store
}

func newStores(t *testing.T) *stores {
	t.Helper()
	ns := stacktest.New(t)
	ns.Migrate(t)
	s := &stores{ns: ns, pg: pgstore.New(ns.Pool()),
		rs: redisstore.New(ns.Redis(), redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: time.Hour}, prometheus.NewRegistry()),
		es: esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix})}
	require.NoError(t, s.es.Setup(t.Context()))
	return s
}

func profile(t *testing.T, id, version int64, tag string) *ingest.Profile {
	t.Helper()
	p, err := new(ingest.Decoder).DecodeJSON([]byte(fmt.Sprintf(`{"user_id": %d, "version": %d, "updated_at": "2026-01-01T00:00:00Z", "tags": [%q], "props": {"k": "v"}}`, id, version, tag)))
	require.NoError(t, err)
	return p
}

// write puts p into the named stores only, as a drift injector.
func (s *stores) write(t *testing.T, p *ingest.Profile, where ...string) {
	t.Helper()
	for _, w := range where {
		switch w {
		case "postgres":
			require.NoError(t, s.pg.Apply(t.Context(), []*ingest.Profile{p}, make([]bool, 1)))
		case "redis":
			out := make([]ingest.WriteResult, 1)
			require.NoError(t, s.rs.WriteAt(t.Context(), 1, []*ingest.Profile{p}, out))
			require.NoError(t, out[0].Err)
		case "elasticsearch":
			out := make([]ingest.WriteResult, 1)
			require.NoError(t, s.es.WriteAt(t.Context(), 1, []*ingest.Profile{p}, out))
			require.NoError(t, out[0].Err)
		}
	}
}

// esForce plants other content at the document's own version
// (external_gte): what a buggy writer leaves behind.
func (s *stores) esForce(t *testing.T, p *ingest.Profile) {
	t.Helper()
	v := int(p.Version)
	res, err := s.ns.ES().Index(s.es.Alias(), strings.NewReader(string(p.AppendJSON(nil))), s.ns.ES().Index.WithDocumentID(fmt.Sprint(p.UserID)),
		s.ns.ES().Index.WithVersion(v), s.ns.ES().Index.WithVersionType("external_gte"))
	require.NoError(t, err)
	res.Body.Close()
	require.False(t, res.IsError(), res.String())
}

// TestCheckClassifiesEveryCase plants each kind of drift and checks that
// check-by-ID names it exactly, per store.
func TestCheckClassifiesEveryCase(t *testing.T) {
	s := newStores(t)
	cases := plantAll(t, s)
	ctx := t.Context()

	c := repair.NewChecker(repair.NewProfile(s.pg, s.rs, s.es))
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
		require.Equal(t, w.redis, r.Stores["redis"].Class, "profile %d in redis: %+v", id, r)
		require.Equal(t, w.es, r.Stores["elasticsearch"].Class, "profile %d in elasticsearch: %+v", id, r)
		require.Equal(t, !w.redis.Drift() && !w.es.Drift(), r.Consistent, "profile %d", id)
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

type want struct{ redis, es repair.Class }

// plantAll plants one profile per kind of drift and returns what each
// store's class must be.
func plantAll(t *testing.T, s *stores) map[int64]want {
	t.Helper()
	all := []string{"postgres", "redis", "elasticsearch"}
	cases := map[int64]want{}
	plant := func(id int64, w want, setup func()) {
		setup()
		cases[id] = w
	}
	ctx := t.Context()

	plant(1, want{repair.ClassOK, repair.ClassOK}, func() { s.write(t, profile(t, 1, 5, "a"), all...) })
	plant(2, want{repair.ClassAbsentAllowed, repair.ClassOK}, func() {
		s.write(t, profile(t, 2, 5, "a"), all...)
		require.NoError(t, s.ns.Redis().Del(ctx, s.rs.Key(2)).Err()) // an expired cache key
	})
	plant(3, want{repair.ClassOK, repair.ClassMissing}, func() {
		s.write(t, profile(t, 3, 5, "a"), "postgres", "redis")
	})
	plant(4, want{repair.ClassStale, repair.ClassStale}, func() {
		s.write(t, profile(t, 4, 4, "old"), "redis", "elasticsearch")
		s.write(t, profile(t, 4, 5, "new"), "postgres")
	})
	plant(5, want{repair.ClassFieldMismatch, repair.ClassFieldMismatch}, func() {
		s.write(t, profile(t, 5, 5, "a"), all...)
		require.NoError(t, s.ns.Redis().HSet(ctx, s.rs.Key(5), "tags", `["changed"]`).Err())
		s.esForce(t, profile(t, 5, 5, "changed"))
	})
	plant(6, want{repair.ClassOrphan, repair.ClassOrphan}, func() {
		s.write(t, profile(t, 6, 5, "a"), "redis", "elasticsearch")
	})
	plant(7, want{repair.ClassOrphanDeleted, repair.ClassOrphanDeleted}, func() {
		s.write(t, profile(t, 7, 5, "a"), all...)
		s.write(t, &ingest.Profile{UserID: 7, Version: 6, Deleted: true}, "postgres")
	})
	plant(8, want{repair.ClassAhead, repair.ClassOK}, func() {
		s.write(t, profile(t, 8, 5, "a"), all...)
		s.write(t, profile(t, 8, 9, "written behind postgres"), "redis")
	})
	plant(9, want{repair.ClassAbsent, repair.ClassAbsent}, func() {})
	plant(10, want{repair.ClassAbsent, repair.ClassAbsent}, func() {
		s.write(t, &ingest.Profile{UserID: 10, Version: 2, Deleted: true}, "postgres")
	})
	require.NoError(t, s.es.Refresh(ctx))

	return cases
}

func indexOf(res []repair.Result, key string) int {
	for i, r := range res {
		if r.Key == key {
			return i
		}
	}
	return -1
}
