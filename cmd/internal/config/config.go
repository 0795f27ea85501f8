// Package config composes triad's configuration from each domain's Config:
// defaults, then one YAML file, then TRIAD_* environment variables, then
// --set key=value flags. Secrets come only from the environment or from
// *_file keys, never from the YAML file or flags.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/secret"
	"github.com/triad-dev/triad/cmd/internal/settings"
	"github.com/triad-dev/triad/cmd/stack"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/archive"
	"github.com/triad-dev/triad/ingest/dataset"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	"github.com/triad-dev/triad/ingest/lookup"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/trace"
)

// Config is the whole of triad's configuration.
type Config struct {
	Log           Log                   `yaml:"log"`
	Server        server.Config         `yaml:"server"`
	Auth          Auth                  `yaml:"auth"`
	Postgres      clients.Postgres      `yaml:"postgres"`
	Redis         clients.Redis         `yaml:"redis"`
	Elasticsearch clients.Elasticsearch `yaml:"elasticsearch"`
	Etcd          clients.Etcd          `yaml:"etcd"`
	Stack         stack.Config          `yaml:"stack"`
	Ingest        ingest.Config         `yaml:"ingest"`
	Archive       archive.Config        `yaml:"archive"`
	// ProfileCache is where profiles live in Redis; ProfileIndex in Elasticsearch.
	ProfileCache redisstore.Config `yaml:"profile_cache"`
	ProfileIndex esstore.Config    `yaml:"profile_index"`
	// Lookup is the profile read path (filter, cache); Dataset the dataset
	// versions coordinated through etcd.
	Lookup  lookup.Config  `yaml:"lookup"`
	Dataset dataset.Config `yaml:"dataset"`
	Repair  Repair         `yaml:"repair"`
	Trace   trace.Config   `yaml:"trace"`
	Alert   alert.Config   `yaml:"alert"`
	Runtime Runtime        `yaml:"runtime"`
}

// Repair is the key `repair`: the consistency engine's keys, the sweeps'
// (`repair.sweep`) and their schedules (`repair.schedules`).
type Repair struct {
	repair.Config `yaml:",inline"`
	Sweep         sweep.Config `yaml:"sweep"`
	// Schedules start sweeps on the leader.
	Schedules []sweep.Schedule `yaml:"schedules"`
}

// Validate reports an invalid key.
func (r Repair) Validate() error {
	return errors.Join(r.Config.Validate(), r.Sweep.Validate(), sweep.ValidateSchedules(r.Schedules, r.EntityNames()))
}

// Runtime tunes the Go runtime. The GOMEMLIMIT and GOGC environment
// variables, when set, win over these keys (the runtime reads them first).
type Runtime struct {
	// MemoryLimitBytes is a soft limit on the Go heap and runtime memory
	// (debug.SetMemoryLimit): the collector runs harder as the process
	// nears it instead of growing past it. 0 leaves the default (none).
	// Set it to ~80-90% of the container's memory; the read path's cache
	// (lookup.cache_max_bytes) and Bloom filter count against it.
	MemoryLimitBytes int64 `yaml:"memory_limit_bytes"`
	// GCPercent is GOGC (debug.SetGCPercent): the heap growth that
	// triggers a collection; -1 turns it off (then only the memory limit
	// triggers collections). 0 leaves the default (100).
	GCPercent int `yaml:"gc_percent"`
}

// Log configures the slog handler.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Auth configures the bootstrap admin token.
type Auth struct {
	// AdminToken is accepted as an admin API token in addition to the tokens
	// stored in Postgres (TRIAD_AUTH_ADMIN_TOKEN; TRIAD_ADMIN_TOKEN also works).
	AdminToken     secret.Value `yaml:"admin_token" secret:"true"`
	AdminTokenFile string       `yaml:"admin_token_file"`
	// OTLPToken, when set, is the bearer token the OTLP receivers require
	// (HTTP Authorization header, gRPC authorization metadata): span
	// senders get a credential of their own rather than an API token.
	OTLPToken     secret.Value `yaml:"otlp_token" secret:"true"`
	OTLPTokenFile string       `yaml:"otlp_token_file"`
}

// Default returns the configuration that talks to the local stack.
func Default() Config {
	return Config{
		Log:           Log{Level: "info", Format: "text"},
		Server:        server.DefaultConfig(),
		Postgres:      clients.DefaultPostgres(),
		Redis:         clients.DefaultRedis(),
		Elasticsearch: clients.DefaultElasticsearch(),
		Etcd:          clients.DefaultEtcd(),
		Stack:         stack.DefaultConfig(),
		Ingest:        ingest.DefaultConfig(),
		Archive:       archive.DefaultConfig(),
		ProfileCache:  redisstore.Config{TTL: 24 * time.Hour},
		ProfileIndex:  esstore.Config{Shape: esstore.DefaultShape()},
		Lookup:        lookup.DefaultConfig(),
		Dataset:       dataset.DefaultConfig(),
		Repair:        Repair{Config: repair.DefaultConfig(), Sweep: sweep.DefaultConfig()},
		Trace:         trace.DefaultConfig(),
		Alert:         alert.DefaultConfig(),
	}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: must be debug, info, warn or error, got %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: must be json or text, got %q", c.Log.Format))
	}
	if c.Auth.OTLPToken.IsSet() && len(c.Auth.OTLPToken.Reveal()) < 16 {
		errs = append(errs, errors.New("auth.otlp_token: must be at least 16 characters"))
	}
	if c.Auth.AdminToken.IsSet() && len(c.Auth.AdminToken.Reveal()) < 16 {
		errs = append(errs, errors.New("auth.admin_token: must be at least 16 characters"))
	}
	errs = append(errs, c.Server.Validate(), c.Postgres.Validate(), c.Redis.Validate(),
		c.Elasticsearch.Validate(), c.Etcd.Validate(), c.Stack.Validate(), c.Ingest.Validate(),
		c.Lookup.Validate(), c.Dataset.Validate(), c.Repair.Validate(), c.Trace.Validate(), c.Alert.Validate())
	if c.Runtime.MemoryLimitBytes < 0 {
		errs = append(errs, fmt.Errorf("runtime.memory_limit_bytes: must not be negative, got %d", c.Runtime.MemoryLimitBytes))
	}
	if c.Runtime.GCPercent < -1 {
		errs = append(errs, fmt.Errorf("runtime.gc_percent: must be -1 (off), 0 (default) or positive, got %d", c.Runtime.GCPercent))
	}
	if c.Archive.Dir != "" {
		errs = append(errs, c.Archive.Validate())
	}
	errs = append(errs, c.ProfileIndex.Shape.Validate("profile_index."))
	if c.ProfileCache.TTL < 0 {
		errs = append(errs, fmt.Errorf("profile_cache.ttl: must not be negative, got %s", c.ProfileCache.TTL))
	}
	return errors.Join(errs...)
}

// Load builds the configuration: defaults, the YAML file at path (if any),
// the environment env (KEY=VALUE pairs, usually os.Environ()), then sets
// (key=value, dotted keys as in the YAML file). It resolves *_file secrets and
// validates the result.
func Load(path string, env []string, sets []string) (Config, error) {
	c := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return c, fmt.Errorf("config file: %w", err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err == nil {
			err = settings.DecodeYAML(b, &c, true) // a misspelt key is an error, not a silent default
		}
		if err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
		if keys := settings.Secrets(&c); len(keys) > 0 {
			return c, fmt.Errorf("config file %s: %s: secrets are not read from the config file; use the environment variable %s or the matching *_file key",
				path, keys[0], settings.EnvName(keys[0]))
		}
	}
	envMap := settings.EnvMap(env)
	// A shorter alias for the one secret every deployment needs.
	if v, ok := envMap["TRIAD_ADMIN_TOKEN"]; ok {
		if _, set := envMap["TRIAD_AUTH_ADMIN_TOKEN"]; !set {
			envMap["TRIAD_AUTH_ADMIN_TOKEN"] = v
		}
	}
	if v, ok := envMap["TRIAD_ADMIN_TOKEN_FILE"]; ok {
		if _, set := envMap["TRIAD_AUTH_ADMIN_TOKEN_FILE"]; !set {
			envMap["TRIAD_AUTH_ADMIN_TOKEN_FILE"] = v
		}
	}
	if err := settings.ApplyEnv(&c, envMap); err != nil {
		return c, err
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return c, fmt.Errorf("--set %q: want key=value", s)
		}
		if err := settings.Set(&c, k, v); err != nil {
			return c, fmt.Errorf("--set %s: %w", k, err)
		}
	}
	if err := c.resolveSecrets(); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func (c *Config) resolveSecrets() error {
	errs := []error{
		c.Postgres.Credentials.Resolve("postgres"),
		c.Redis.Credentials.Resolve("redis"),
		c.Elasticsearch.Resolve(),
		c.Etcd.Credentials.Resolve("etcd"),
	}
	if !c.Auth.AdminToken.IsSet() && c.Auth.AdminTokenFile != "" {
		v, err := secret.FromFile(c.Auth.AdminTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.admin_token_file: %w", err))
		}
		c.Auth.AdminToken = v
	}
	if !c.Auth.OTLPToken.IsSet() && c.Auth.OTLPTokenFile != "" {
		v, err := secret.FromFile(c.Auth.OTLPTokenFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.otlp_token_file: %w", err))
		}
		c.Auth.OTLPToken = v
	}
	return errors.Join(errs...)
}

// Keys lists every configuration key with its environment variable and
// default, for docs/configuration.md's reference and `triad config keys`.
func Keys() [][3]string {
	var out [][3]string
	d := Default()
	_ = settings.Walk(&d, func(key string, f reflect.Value, _ reflect.StructField) error {
		def, env := fmt.Sprint(f.Interface()), settings.EnvName(key)
		if f.Kind() == reflect.Slice {
			parts := make([]string, f.Len())
			for i := range parts {
				parts[i] = fmt.Sprint(f.Index(i).Interface())
				if e := f.Index(i); e.Kind() == reflect.Struct && e.FieldByName("Name").IsValid() {
					parts[i] = e.FieldByName("Name").String() // lists of objects: their names
				}
			}
			def = strings.Join(parts, ",")
			if f.Type().Elem().Kind() == reflect.Struct {
				env = "— (YAML only)"
			}
		}
		if f.Kind() == reflect.Map {
			var pairs []string
			for _, k := range f.MapKeys() {
				pairs = append(pairs, fmt.Sprintf("%s=%v", k, f.MapIndex(k)))
			}
			slices.Sort(pairs)
			def = strings.Join(pairs, ",")
			env += " (key=value,...)"
		}
		out = append(out, [3]string{key, env, def})
		return nil
	})
	return out
}
