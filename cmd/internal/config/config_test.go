package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// want maps each bad file to the key its error must name.
var badWant = map[string]string{
	"unknown-key.bad.yaml":         "field hots not found",
	"inline-secret.bad.yaml":       "redis.password: secrets are not read from the config file; use the environment variable TRIAD_REDIS_PASSWORD",
	"bad-port.bad.yaml":            "postgres.port: must be 1-65535, got 70000",
	"bad-duration.bad.yaml":        "shutdown_timeout",
	"bad-es-url.bad.yaml":          "elasticsearch.addresses[0]: must not carry credentials",
	"missing-secret-file.bad.yaml": "etcd.password_file",
	"bad-stack-ports.bad.yaml":     "stack.redis_port: port 15432 already used by stack.postgres_port",
	"bad-read-path.bad.yaml":       "lookup.bloom_false_positive: must be in (0, 0.5), got 2",
	"bad-schedule.bad.yaml":        `repair.schedules[0]: unknown entity "orders"`,
	"bad-cron.bad.yaml":            `repair.schedules[0]: cron "61 * * * *"`,
	"bad-rate-limit.bad.yaml":      "server.rate_limit: must not be negative, and needs server.rate_burst ≥ 1",
	"bad-entity.bad.yaml":          `repair.entities[0]: postgres.table: want a lower-case identifier`,
}

func TestLoadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f, nil, nil)
			if strings.HasSuffix(f, ".good.yaml") {
				require.NoError(t, err)
				return
			}
			want, ok := badWant[filepath.Base(f)]
			require.True(t, ok, "add %s to badWant", f)
			require.ErrorContains(t, err, want)
			require.NotContains(t, err.Error(), "hunter2")
			_ = c
		})
	}
}

func TestFullFile(t *testing.T) {
	c, err := Load("testdata/full.good.yaml", nil, nil)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:9000", c.Server.Listen)
	require.Equal(t, 2*time.Second, c.Server.DrainDelay)
	require.Equal(t, 8*time.Hour, c.Server.SessionTTL)
	require.True(t, c.Server.CookieSecure)
	require.Equal(t, 20.0, c.Server.RateLimit)
	require.Equal(t, "pg-s3cret", c.Postgres.Password.Reveal())
	require.Equal(t, "correct-horse-battery-staple", c.Auth.AdminToken.Reveal())
	require.Equal(t, []string{"etcd1:2379", "etcd2:2379"}, c.Etcd.Endpoints)
	require.Equal(t, 0.001, c.Lookup.BloomFalsePositive)
	require.Equal(t, int64(1<<30), c.Lookup.CacheMaxBytes)
	require.Equal(t, time.Minute, c.Lookup.CacheTTL)
	require.Equal(t, 1000, c.Lookup.MaxBatch, "unset keys keep their defaults")
	require.Equal(t, "/prod/triad/", c.Dataset.EtcdPrefix)
	require.Equal(t, 72*time.Hour, c.Dataset.RetireAfter)
	require.Equal(t, int64(8<<30), c.Runtime.MemoryLimitBytes)
	require.Equal(t, 200, c.Runtime.GCPercent)
}

func TestPrecedenceDefaultsFileEnvFlags(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("redis:\n  addr: file:1\n  db: 1\npostgres:\n  host: filehost\n"), 0o600))
	c, err := Load(p, []string{"TRIAD_REDIS_ADDR=env:2", "TRIAD_POSTGRES_PORT=6543", "TRIAD_REDIS_PASSWORD=envpw",
		"TRIAD_ADMIN_TOKEN=0123456789abcdef0", "TRIAD_ETCD_ENDPOINTS=a:1, b:2", "TRIAD_ELASTICSEARCH_PASSWORD=espw"},
		[]string{"redis.db=3", "server.listen=127.0.0.1:0"})
	require.NoError(t, err)
	require.Equal(t, "env:2", c.Redis.Addr, "env overrides file")
	require.Equal(t, 3, c.Redis.DB, "flag overrides file")
	require.Equal(t, "filehost", c.Postgres.Host, "file overrides default")
	require.Equal(t, 6543, c.Postgres.Port)
	require.Equal(t, "envpw", c.Redis.Password.Reveal())
	require.Equal(t, "espw", c.Elasticsearch.Password.Reveal())
	require.Equal(t, "0123456789abcdef0", c.Auth.AdminToken.Reveal())
	require.Equal(t, []string{"a:1", "b:2"}, c.Etcd.Endpoints)
	require.Equal(t, DefaultForTest().Stack.RedisPort, c.Stack.RedisPort)
}

func TestBadEnvAndFlags(t *testing.T) {
	_, err := Load("", []string{"TRIAD_REDIS_DB=notanumber"}, nil)
	require.ErrorContains(t, err, "TRIAD_REDIS_DB (redis.db): invalid integer")
	_, err = Load("", []string{"TRIAD_POSTGRES_PASSWORD=x"}, []string{"postgres.nope=1"})
	require.ErrorContains(t, err, "--set postgres.nope: unknown key")
	_, err = Load("", nil, []string{"postgres.password=hunter2"})
	require.ErrorContains(t, err, "secrets are not accepted as flags")
	require.NotContains(t, err.Error(), "hunter2")
	_, err = Load("", []string{"TRIAD_ADMIN_TOKEN=short"}, nil)
	require.ErrorContains(t, err, "auth.admin_token: must be at least 16 characters")
	require.NotContains(t, err.Error(), "short\"")
	_, err = Load("", []string{"TRIAD_LOG_LEVEL=loud"}, nil)
	require.ErrorContains(t, err, `log.level: must be debug, info, warn or error, got "loud"`)
}

func TestKeysCoverEveryLeaf(t *testing.T) {
	keys := Keys()
	names := map[string]string{}
	for _, k := range keys {
		names[k[0]] = k[1]
	}
	require.Equal(t, "TRIAD_POSTGRES_PASSWORD_FILE", names["postgres.password_file"])
	require.Equal(t, "TRIAD_STACK_ELASTICSEARCH_PORT", names["stack.elasticsearch_port"])
	require.Contains(t, names, "elasticsearch.api_key")
}

// DefaultForTest exists so the precedence test reads as a comparison.
func DefaultForTest() Config { return Default() }
