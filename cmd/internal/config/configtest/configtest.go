// Package configtest gives integration tests triad's whole configuration
// pointed at a stacktest namespace: what `triad serve` would read (the
// defaults, TRIAD_CONFIG, TRIAD_* variables) with the namespace's schema,
// key and index prefixes and etcd prefix, and OTLP receivers on free ports.
package configtest

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

var (
	once    sync.Once
	loaded  config.Config
	loadErr error
)

// Base is the configuration the tests start from (no namespace).
func Base(t testing.TB) config.Config {
	t.Helper()
	once.Do(func() {
		loaded, loadErr = config.Load(os.Getenv("TRIAD_CONFIG"), os.Environ(), nil)
		// Apps started by tests listen for OTLP on free ports.
		loaded.Trace.HTTPAddr, loaded.Trace.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	})
	if loadErr != nil {
		t.Fatalf("configtest: configuration: %v", loadErr)
	}
	return loaded
}

// For is the configuration pointing at ns: its servers, its Postgres
// schema, Redis key prefix, Elasticsearch index prefix and etcd prefix.
func For(t testing.TB, ns *stacktest.Namespace) config.Config {
	t.Helper()
	c := Base(t)
	c.Postgres = ns.Servers.Postgres
	c.Redis = ns.Servers.Redis
	c.Elasticsearch = ns.Servers.Elasticsearch
	c.Etcd = ns.Servers.Etcd
	c.Stack = ns.Servers.Stack
	c.ProfileCache.KeyPrefix = ns.RedisPrefix
	c.ProfileIndex.IndexPrefix = ns.IndexPrefix
	c.Dataset.EtcdPrefix = ns.EtcdPrefix
	return c
}

// Env is ns as TRIAD_* variables, for a triad run in another process or
// through the CLI: its servers (so a run reaches the same ones as the test,
// the cluster lane's included), its schema and its key, index and etcd
// prefixes.
func Env(ns *stacktest.Namespace) []string {
	s := ns.Servers
	env := []string{
		"TRIAD_POSTGRES_HOST=" + s.Postgres.Host,
		"TRIAD_POSTGRES_PORT=" + strconv.Itoa(s.Postgres.Port),
		"TRIAD_POSTGRES_SCHEMA=" + ns.Schema,
		"TRIAD_ELASTICSEARCH_ADDRESSES=" + strings.Join(s.Elasticsearch.Addresses, ","),
		"TRIAD_ETCD_ENDPOINTS=" + strings.Join(s.Etcd.Endpoints, ","),
		"TRIAD_PROFILE_CACHE_KEY_PREFIX=" + ns.RedisPrefix,
		"TRIAD_PROFILE_INDEX_INDEX_PREFIX=" + ns.IndexPrefix,
		"TRIAD_DATASET_ETCD_PREFIX=" + ns.EtcdPrefix,
	}
	if len(s.Redis.Addrs) > 0 {
		return append(env, "TRIAD_REDIS_ADDRS="+strings.Join(s.Redis.Addrs, ","))
	}
	return append(env, "TRIAD_REDIS_ADDR="+s.Redis.Addr)
}
