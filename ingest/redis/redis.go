// Package redis is the Redis store of the profile pipeline: each profile is
// a hash at <prefix>profile:<id> (dataset version 1) or
// <prefix>v<N>:profile:<id> (dataset version N) holding its fields, version,
// digest and update time, written in pipelines through Lua scripts that
// refuse to replace a newer version. It also carries the change feed the
// read path's replicas follow (changes.go).
package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	goredis "github.com/redis/go-redis/v9"

	"github.com/triad-dev/triad/ingest"
)

// Hash fields besides the attribute fields (ingest.FieldNames).
const (
	FieldVersion       = "v"
	FieldDigest        = "d"
	FieldDigestVersion = "dv"
	FieldUpdatedAt     = "u" // microseconds since the epoch; "" when unknown
)

// newer is true when the stored version cur is greater than ARGV[1].
// Versions are compared as decimal strings (length, then bytes), because
// Lua numbers are doubles and lose int64 precision above 2^53.
const newer = `
local cur = redis.call('HGET', KEYS[1], 'v')
local function newer(a, b) return #a > #b or (#a == #b and a > b) end
`

// putScript replaces the hash when the stored version is not newer.
// KEYS[1] = key; ARGV[1] = version, ARGV[2] = TTL in ms (0: none),
// ARGV[3..] = field, value pairs. Returns 1 written, 0 stale.
var putScript = goredis.NewScript(newer + `
if cur and newer(cur, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)

// delScript deletes the hash unless it holds a newer version than the
// tombstone's. KEYS[1] = key; ARGV[1] = tombstone version.
var delScript = goredis.NewScript(newer + `
if cur and newer(cur, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1`)

// Config is the Redis store's configuration (key `redis_store`).
type Config struct {
	// KeyPrefix is prepended to every key (e.g. a dataset version's prefix).
	KeyPrefix string `yaml:"key_prefix"`
	// TTL is each profile key's time to live; 0 keeps keys forever.
	TTL time.Duration `yaml:"ttl"`
}

// Store writes profiles to Redis. Safe for concurrent use.
type Store struct {
	rdb     *goredis.Client
	cfg     Config
	latency prometheus.Histogram
	// versions are the dataset versions read (serving) and written.
	versions atomic.Pointer[ingest.Versions]
}

// New returns a store; reg receives redis_pipeline_latency_ms. It serves
// and writes dataset version 1 until SetVersions says otherwise.
func New(rdb *goredis.Client, cfg Config, reg prometheus.Registerer) *Store {
	s := &Store{rdb: rdb, cfg: cfg, latency: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
		// The seed's name, kept exactly.
		Name:    "redis_pipeline_latency_ms",
		Help:    "Time for one pipelined batch of profile writes to Redis, in milliseconds.",
		Buckets: []float64{0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500},
	})}
	s.versions.Store(ingest.DefaultVersions())
	return s
}

// Name implements ingest.Derived.
func (s *Store) Name() string { return "redis" }

// SetVersions sets the dataset versions Get reads and Write writes.
func (s *Store) SetVersions(v ingest.Versions) { s.versions.Store(&v) }

// Prefix is the key prefix of a dataset version: the configured prefix for
// version 1 (so data written before dataset versions existed stays in
// place), <prefix>v<N>: after that.
func (s *Store) Prefix(version int) string {
	if version <= 1 {
		return s.cfg.KeyPrefix
	}
	return s.cfg.KeyPrefix + "v" + strconv.Itoa(version) + ":"
}

// Key returns the key of a user's profile in the serving dataset version.
func (s *Store) Key(userID int64) string { return s.KeyAt(s.versions.Load().Serving, userID) }

// KeyAt returns the key of a user's profile in a dataset version.
func (s *Store) KeyAt(version int, userID int64) string {
	return s.Prefix(version) + "profile:" + strconv.FormatInt(userID, 10)
}

// Write implements ingest.Derived: one pipeline per dataset version being
// written (during a build, the active version and the new one). An item
// fails when it fails in any version.
func (s *Store) Write(ctx context.Context, batch []*ingest.Profile, out []ingest.WriteResult) error {
	writing := s.versions.Load().Writing
	if len(writing) == 1 {
		return s.WriteAt(ctx, writing[0], batch, out)
	}
	tmp := make([]ingest.WriteResult, len(batch))
	for k, v := range writing {
		clear(tmp)
		if err := s.WriteAt(ctx, v, batch, tmp); err != nil {
			return fmt.Errorf("dataset version %d: %w", v, err)
		}
		for i, r := range tmp {
			switch {
			case k == 0 || r.Err != nil:
				if out[i].Err == nil {
					out[i] = r
				}
			case !r.Stale:
				out[i].Stale = false
			}
		}
	}
	return nil
}

// WriteAt writes batch to one dataset version's keys in one pipeline.
func (s *Store) WriteAt(ctx context.Context, version int, batch []*ingest.Profile, out []ingest.WriteResult) error {
	cmds, err := s.exec(ctx, version, batch)
	if err != nil {
		return err
	}
	var retry []int
	for i, c := range cmds {
		out[i] = result(c)
		if out[i].Err != nil && goredis.HasErrorPrefix(out[i].Err, "NOSCRIPT") {
			retry = append(retry, i)
		}
	}
	if len(retry) == 0 {
		return nil
	}
	// The server lost its script cache (restart, SCRIPT FLUSH): load the
	// scripts and send those items again.
	if err := s.load(ctx); err != nil {
		return err
	}
	again := make([]*ingest.Profile, len(retry))
	for k, i := range retry {
		again[k] = batch[i]
	}
	cmds, err = s.exec(ctx, version, again)
	if err != nil {
		return err
	}
	for k, c := range cmds {
		out[retry[k]] = result(c)
	}
	return nil
}

func result(c *goredis.Cmd) ingest.WriteResult {
	n, err := c.Int()
	if err != nil {
		return ingest.WriteResult{Err: err}
	}
	return ingest.WriteResult{Stale: n == 0}
}

func (s *Store) load(ctx context.Context) error {
	for _, sc := range []*goredis.Script{putScript, delScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}

// exec sends one pipeline. A transport error fails the whole batch; a
// server error reply belongs to its own command.
func (s *Store) exec(ctx context.Context, version int, batch []*ingest.Profile) ([]*goredis.Cmd, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.Cmd, len(batch))
	ttl := strconv.FormatInt(s.cfg.TTL.Milliseconds(), 10)
	for i, p := range batch {
		key := s.KeyAt(version, p.UserID)
		pv := strconv.FormatInt(p.Version, 10)
		if p.Deleted {
			cmds[i] = delScript.EvalSha(ctx, pipe, []string{key}, pv)
			continue
		}
		args := make([]any, 0, 9+2*ingest.NumFields)
		updated := ""
		if !p.UpdatedAt.IsZero() {
			updated = strconv.FormatInt(p.UpdatedAt.UnixMicro(), 10)
		}
		args = append(args, pv, ttl,
			FieldDigest, strconv.FormatInt(p.Digest, 10),
			FieldDigestVersion, strconv.Itoa(ingest.DigestVersion),
			FieldUpdatedAt, updated)
		for f, name := range ingest.FieldNames {
			args = append(args, name, p.Field(f))
		}
		cmds[i] = putScript.EvalSha(ctx, pipe, []string{key}, args...)
	}
	start := time.Now()
	_, err := pipe.Exec(ctx)
	s.latency.Observe(float64(time.Since(start).Microseconds()) / 1000)
	var rerr goredis.Error
	if err != nil && !errors.As(err, &rerr) {
		return nil, fmt.Errorf("redis pipeline of %d: %w", len(batch), err)
	}
	return cmds, nil
}

// Get reads one profile hash; ok is false when the key does not exist.
func (s *Store) Get(ctx context.Context, userID int64) (p *ingest.Profile, ok bool, err error) {
	h, err := s.rdb.HGetAll(ctx, s.Key(userID)).Result()
	if err != nil || len(h) == 0 {
		return nil, false, err
	}
	p, err = Decode(userID, h)
	return p, err == nil, err
}

// Decode turns a profile hash back into a profile (the digest as stored).
func Decode(userID int64, h map[string]string) (*ingest.Profile, error) {
	p := &ingest.Profile{UserID: userID}
	var err error
	if p.Version, err = strconv.ParseInt(h[FieldVersion], 10, 64); err != nil {
		return nil, fmt.Errorf("profile %d: bad version %q", userID, h[FieldVersion])
	}
	if p.Digest, err = strconv.ParseInt(h[FieldDigest], 10, 64); err != nil {
		return nil, fmt.Errorf("profile %d: bad digest %q", userID, h[FieldDigest])
	}
	if u := h[FieldUpdatedAt]; u != "" {
		us, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("profile %d: bad updated_at %q", userID, u)
		}
		p.UpdatedAt = time.UnixMicro(us).UTC()
	}
	for f, name := range ingest.FieldNames {
		if v, ok := h[name]; ok {
			p.Fields[f] = []byte(v)
		}
	}
	return p, nil
}

// GetMany reads the hashes of ids in the serving dataset version in one
// pipeline; absent ids are not in the result.
func (s *Store) GetMany(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
	return s.GetManyAt(ctx, s.versions.Load().Serving, ids)
}

// GetManyAt is GetMany in one dataset version.
func (s *Store) GetManyAt(ctx context.Context, version int, ids []int64) (map[int64]*ingest.Profile, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, s.KeyAt(version, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make(map[int64]*ingest.Profile, len(ids))
	for i, c := range cmds {
		if len(c.Val()) == 0 {
			continue
		}
		p, err := Decode(ids[i], c.Val())
		if err != nil {
			return nil, err
		}
		out[ids[i]] = p
	}
	return out, nil
}

// DeleteVersion removes every profile key of a dataset version (SCAN and
// UNLINK in batches of 1000) and returns how many it removed.
func (s *Store) DeleteVersion(ctx context.Context, version int) (int64, error) {
	var cursor uint64
	var n int64
	match := s.Prefix(version) + "profile:*"
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return n, fmt.Errorf("scan %s: %w", match, err)
		}
		if len(keys) > 0 {
			removed, err := s.rdb.Unlink(ctx, keys...).Result()
			if err != nil {
				return n, fmt.Errorf("unlink: %w", err)
			}
			n += removed
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// Head is a stored profile's version and digest.
type Head struct{ Version, Digest int64 }

// HeadsAt reads only the version and digest of ids in a dataset version
// (HMGET in one pipeline); absent ids are not in the result.
func (s *Store) HeadsAt(ctx context.Context, version int, ids []int64) (map[int64]Head, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.KeyAt(version, id), FieldVersion, FieldDigest)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make(map[int64]Head, len(ids))
	for i, c := range cmds {
		vals := c.Val()
		v, ok1 := vals[0].(string)
		d, ok2 := vals[1].(string)
		if !ok1 || !ok2 {
			continue // absent
		}
		var h Head
		var err error
		if h.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return nil, fmt.Errorf("profile %d: bad version %q", ids[i], v)
		}
		if h.Digest, err = strconv.ParseInt(d, 10, 64); err != nil {
			return nil, fmt.Errorf("profile %d: bad digest %q", ids[i], d)
		}
		out[ids[i]] = h
	}
	return out, nil
}

// casScript replaces or deletes a profile hash only if it still holds what
// a check observed, and then announces it on the change feed in the same
// atomic step: KEYS[1] = key; ARGV[1] = observed version ("" when the key
// was absent), ARGV[2] = observed digest, ARGV[3] = "put" or "del",
// ARGV[4] = the change feed's channel, ARGV[5] = its message, for put
// ARGV[6] = TTL ms and ARGV[7..] = field, value pairs (version included).
// Returns 1 done, 0 changed since observed (nothing written).
var casScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'v', 'd')
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[3] == 'put' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 7))
  if tonumber(ARGV[6]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[6]) end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1`)

// CompareAndSet makes the serving version's hash of userID hold want (nil:
// no hash) if it still holds observed (nil: it was absent), atomically. ok
// is false when the hash changed since it was observed; nothing was
// written then (a repair never overwrites a newer write). A write is
// announced on the change feed as a repair, so every replica drops its
// in-process copy even when the version did not change (a same-version
// content repair).
func (s *Store) CompareAndSet(ctx context.Context, userID int64, observed *Head, want *ingest.Profile) (ok bool, err error) {
	key := s.Key(userID)
	change := ingest.Change{UserID: userID, Repaired: true}
	args := []any{"", "", "del", s.Channel(), ""}
	if observed != nil {
		args[0], args[1] = strconv.FormatInt(observed.Version, 10), strconv.FormatInt(observed.Digest, 10)
		change.Version = observed.Version
	}
	if want != nil {
		args[2] = "put"
		change.Version = want.Version
		updated := ""
		if !want.UpdatedAt.IsZero() {
			updated = strconv.FormatInt(want.UpdatedAt.UnixMicro(), 10)
		}
		args = append(args, strconv.FormatInt(s.cfg.TTL.Milliseconds(), 10),
			FieldVersion, strconv.FormatInt(want.Version, 10),
			FieldDigest, strconv.FormatInt(want.Digest, 10),
			FieldDigestVersion, strconv.Itoa(ingest.DigestVersion),
			FieldUpdatedAt, updated)
		for f, name := range ingest.FieldNames {
			args = append(args, name, want.Field(f))
		}
	}
	change.Version = max(change.Version, 1)
	args[4] = string(AppendChanges(nil, []ingest.Change{change}))
	n, err := casScript.Run(ctx, s.rdb, []string{key}, args...).Int()
	return n == 1, err
}

// Heads is HeadsAt in the serving dataset version.
func (s *Store) Heads(ctx context.Context, ids []int64) (map[int64]Head, error) {
	return s.HeadsAt(ctx, s.versions.Load().Serving, ids)
}

// ScanIDs walks every profile key of the serving dataset version with SCAN
// (COUNT 1000, so memory stays bounded) and hands the user IDs to fn in
// batches.
func (s *Store) ScanIDs(ctx context.Context, fn func(ids []int64) error) error {
	prefix := s.Prefix(s.versions.Load().Serving) + "profile:"
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s*: %w", prefix, err)
		}
		ids := make([]int64, 0, len(keys))
		for _, k := range keys {
			if id, err := strconv.ParseInt(strings.TrimPrefix(k, prefix), 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			if err := fn(ids); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
