// Package config composes triad's configuration from each domain's Config:
// defaults, then one YAML file, then TRIAD_* environment variables, then
// --set key=value flags. Secrets come only from the environment or from
// *_file keys, never from the YAML file or flags.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/secret"
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
		err = decodeYAML(f, &c)
		f.Close()
		if err != nil {
			return c, fmt.Errorf("config file %s: %w", path, err)
		}
		if keys := setSecrets(reflect.ValueOf(&c).Elem(), ""); len(keys) > 0 {
			return c, fmt.Errorf("config file %s: %s: secrets are not read from the config file; use the environment variable %s or the matching *_file key",
				path, keys[0], envName(keys[0]))
		}
	}
	envMap := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
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
	if err := applyEnv(reflect.ValueOf(&c).Elem(), "", envMap); err != nil {
		return c, err
	}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return c, fmt.Errorf("--set %q: want key=value", s)
		}
		if err := setKey(&c, k, v); err != nil {
			return c, fmt.Errorf("--set %s: %w", k, err)
		}
	}
	if err := c.resolveSecrets(); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func decodeYAML(r io.Reader, c *Config) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true) // a misspelt key is an error, not a silent default
	err = dec.Decode(c)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	// yaml.v3 names lines, not keys: add the dotted key of each line.
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		var line int
		if _, serr := fmt.Sscanf(m, "line %d:", &line); serr == nil {
			if key := keyAtLine(&root, "", line); key != "" {
				m = key + ": " + m
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted key whose value starts on line.
func keyAtLine(n *yaml.Node, prefix string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, prefix, line); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			if n.Content[i].Line == line || n.Content[i+1].Line == line && n.Content[i+1].Kind == yaml.ScalarNode {
				return key
			}
			if k := keyAtLine(n.Content[i+1], key, line); k != "" {
				return k
			}
		}
	}
	return ""
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

// envName maps a dotted key to its environment variable.
func envName(key string) string {
	return "TRIAD_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// leaf visits every settable leaf field with its dotted key.
func walk(v reflect.Value, prefix string, fn func(key string, f reflect.Value, sf reflect.StructField) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		fv := v.Field(i)
		if opts == "inline" {
			if err := walk(fv, prefix, fn); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)) {
			if err := walk(fv, key, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(key, fv, sf); err != nil {
			return err
		}
	}
	return nil
}

func setSecrets(v reflect.Value, prefix string) []string {
	var keys []string
	_ = walk(v, prefix, func(key string, f reflect.Value, sf reflect.StructField) error {
		if sf.Tag.Get("secret") == "true" && !f.IsZero() {
			keys = append(keys, key)
		}
		return nil
	})
	return keys
}

func applyEnv(v reflect.Value, prefix string, env map[string]string) error {
	return walk(v, prefix, func(key string, f reflect.Value, _ reflect.StructField) error {
		name := envName(key)
		raw, ok := env[name]
		if !ok {
			return nil
		}
		if err := setValue(f, raw); err != nil {
			// Never echo the raw value: it may be a secret.
			return fmt.Errorf("%s (%s): %w", name, key, err)
		}
		return nil
	})
}

func setKey(c *Config, key, raw string) error {
	found := false
	err := walk(reflect.ValueOf(c).Elem(), "", func(k string, f reflect.Value, sf reflect.StructField) error {
		if k != key {
			return nil
		}
		found = true
		if sf.Tag.Get("secret") == "true" {
			return fmt.Errorf("secrets are not accepted as flags (they show in process lists); use %s or the *_file key", envName(key))
		}
		return setValue(f, raw)
	})
	if err != nil {
		return err
	}
	if !found {
		return errors.New("unknown key")
	}
	return nil
}

func setValue(f reflect.Value, raw string) error {
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration (want e.g. 5s, 1m)")
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(raw)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer")
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("invalid boolean (want true or false)")
		}
		f.SetBool(b)
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fmt.Errorf("invalid number")
		}
		f.SetFloat(x)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var items []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		f.Set(reflect.ValueOf(items))
	case reflect.Map:
		if f.Type().Key().Kind() != reflect.String || f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported map type %s", f.Type())
		}
		m := map[string]string{}
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("invalid pair %q (want key=value,key=value)", p)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		f.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// Keys lists every configuration key with its environment variable and
// default, for docs/configuration.md's reference and `triad config keys`.
func Keys() [][3]string {
	var out [][3]string
	d := Default()
	_ = walk(reflect.ValueOf(&d).Elem(), "", func(key string, f reflect.Value, _ reflect.StructField) error {
		def, env := fmt.Sprint(f.Interface()), envName(key)
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
