package clients_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestSmoke writes one record to Postgres, Redis and Elasticsearch and reads
// it back, and takes an etcd lease and lock, all through the real clients
// against the real servers.
func TestSmoke(t *testing.T) {
	ns := stacktest.New(t)
	ctx := t.Context()
	for _, p := range ns.Clients.Probes() {
		v, err := p.Check(ctx)
		require.NoError(t, err, p.Name)
		t.Logf("smoke: %s %s is up (health %q)", p.Name, v.Version, v.Health)
		require.NotEmpty(t, v.Version, p.Name)
	}

	t.Run("postgres", func(t *testing.T) {
		pool := ns.Pool()
		_, err := pool.Exec(ctx, `CREATE TABLE smoke (id bigint PRIMARY KEY, name text NOT NULL)`)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `INSERT INTO smoke VALUES (42, 'ada')`)
		require.NoError(t, err)
		var name, schema string
		require.NoError(t, pool.QueryRow(ctx, `SELECT name, current_schema() FROM smoke WHERE id = 42`).Scan(&name, &schema))
		require.Equal(t, "ada", name)
		require.Equal(t, ns.Schema, schema, "the test's own schema")
		t.Logf("smoke: postgres row written and read back in schema %s", schema)
	})

	t.Run("redis", func(t *testing.T) {
		key := ns.RedisPrefix + "profile:42"
		require.NoError(t, ns.Redis().HSet(ctx, key, "name", "ada", "version", 7).Err())
		require.NoError(t, ns.Redis().Expire(ctx, key, time.Minute).Err())
		got, err := ns.Redis().HGetAll(ctx, key).Result()
		require.NoError(t, err)
		require.Equal(t, map[string]string{"name": "ada", "version": "7"}, got)
		ttl, err := ns.Redis().TTL(ctx, key).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 50*time.Second)
		t.Logf("smoke: redis hash %s written and read back", key)
	})

	t.Run("elasticsearch", func(t *testing.T) {
		es := ns.ES()
		index := ns.IndexPrefix + "profiles"
		res, err := es.Index(index, strings.NewReader(`{"name":"ada"}`), es.Index.WithDocumentID("42"),
			es.Index.WithVersion(7), es.Index.WithVersionType("external"), es.Index.WithRefresh("true"), es.Index.WithContext(ctx))
		require.NoError(t, err)
		require.False(t, res.IsError(), res.String())
		res.Body.Close()
		res, err = es.Get(index, "42", es.Get.WithContext(ctx))
		require.NoError(t, err)
		defer res.Body.Close()
		require.False(t, res.IsError(), res.String())
		var doc struct {
			Version int64             `json:"_version"`
			Source  map[string]string `json:"_source"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&doc))
		require.Equal(t, int64(7), doc.Version)
		require.Equal(t, "ada", doc.Source["name"])
		t.Logf("smoke: elasticsearch document %s/42 written and read back at external version 7", index)
	})

	t.Run("etcd", func(t *testing.T) {
		cli := ns.Etcd()
		lease, err := cli.Grant(ctx, 10)
		require.NoError(t, err)
		key := ns.EtcdPrefix + "active-version"
		_, err = cli.Put(ctx, key, "1", clientv3.WithLease(lease.ID))
		require.NoError(t, err)
		ttl, err := cli.TimeToLive(ctx, lease.ID)
		require.NoError(t, err)
		require.Greater(t, ttl.TTL, int64(0))

		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(5), concurrency.WithContext(ctx))
		require.NoError(t, err)
		defer sess.Close()
		mu := concurrency.NewMutex(sess, ns.EtcdPrefix+"lock")
		require.NoError(t, mu.Lock(ctx))
		// A second session cannot take the lock while the first holds it.
		other, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
		require.NoError(t, err)
		defer other.Close()
		require.ErrorIs(t, concurrency.NewMutex(other, ns.EtcdPrefix+"lock").TryLock(ctx), concurrency.ErrLocked)
		require.NoError(t, mu.Unlock(ctx))
		require.NoError(t, concurrency.NewMutex(other, ns.EtcdPrefix+"lock").TryLock(ctx))

		_, err = cli.Revoke(ctx, lease.ID)
		require.NoError(t, err)
		got, err := cli.Get(ctx, key)
		require.NoError(t, err)
		require.Zero(t, got.Count, "the key dies with its lease")
		t.Logf("smoke: etcd lease (key gone on revoke) and lock (exclusive, then handed over) round trip")
	})
}
