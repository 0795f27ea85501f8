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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
// Lua numbers are doubles and lose int64 precision above 2^53. A value of
// another type at the key (another writer's garbage: a string, a list)
// has no version: it is replaced (it would fail HGET with WRONGTYPE, and
// fail every later write to the key with it).
const newer = `
local cur = nil
if redis.call('TYPE', KEYS[1]).ok == 'hash' then cur = redis.call('HGET', KEYS[1], 'v') end
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
	rdb     goredis.UniversalClient
	cfg     Config
	latency prometheus.Histogram
	// versions are the dataset versions read (serving) and written.
	versions atomic.Pointer[ingest.Versions]
}

// New returns a store; reg receives redis_pipeline_latency_ms. It serves
// and writes dataset version 1 until SetVersions says otherwise.
func New(rdb goredis.UniversalClient, cfg Config, reg prometheus.Registerer) *Store {
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

// Get reads one profile hash of the serving version; ok is false when the
// key does not exist. A value that is not a valid profile hash is an error
// here (callers that classify such values use ReadAt).
func (s *Store) Get(ctx context.Context, userID int64) (p *ingest.Profile, ok bool, err error) {
	got, err := s.ReadAt(ctx, s.versions.Load().Serving, []int64{userID}, true)
	if err != nil {
		return nil, false, err
	}
	c, ok := got[userID]
	if !ok {
		return nil, false, nil
	}
	if c.Err != nil {
		return nil, false, c.Err
	}
	return c.Profile, true, nil
}

// Copy is one profile key as read, whoever wrote it: the exact value, and
// the profile it decodes to or why it does not (Err: the value is not a
// profile hash triad could have written: a wrong type, a missing, extra or
// undecodable field).
type Copy struct {
	Value   Value
	Profile *ingest.Profile // nil when Err is set
	Err     error
}

// CorruptError says why a stored value is not a valid record.
type CorruptError struct {
	Key    string
	Reason string
	Bytes  int // the value's size
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: %s (value of %d bytes)", e.Key, e.Reason, e.Bytes)
}

var knownFields = func() map[string]bool {
	m := map[string]bool{FieldVersion: true, FieldDigest: true, FieldDigestVersion: true, FieldUpdatedAt: true}
	for _, n := range ingest.FieldNames {
		m[n] = true
	}
	return m
}()

// Decode turns a profile hash into a profile (the digest as stored).
// Every field triad writes must be there and no other; with canonical,
// each attribute field must also be canonical JSON (what triad writes),
// which costs a parse per field: sweeps skip it and compare the digest of
// the bytes as stored instead, which differs from Postgres's for any
// other text.
func Decode(userID int64, h map[string]string, canonical bool) (*ingest.Profile, error) {
	p := &ingest.Profile{UserID: userID}
	var err error
	if p.Version, err = strconv.ParseInt(h[FieldVersion], 10, 64); err != nil || p.Version <= 0 {
		return nil, fmt.Errorf("field %s: not a positive version: %q", FieldVersion, clip(h[FieldVersion]))
	}
	if p.Digest, err = strconv.ParseInt(h[FieldDigest], 10, 64); err != nil {
		return nil, fmt.Errorf("field %s: not a digest: %q", FieldDigest, clip(h[FieldDigest]))
	}
	if dv := h[FieldDigestVersion]; dv != strconv.Itoa(ingest.DigestVersion) {
		return nil, fmt.Errorf("field %s: digest version %q, want %d", FieldDigestVersion, clip(dv), ingest.DigestVersion)
	}
	u, ok := h[FieldUpdatedAt]
	if !ok {
		return nil, fmt.Errorf("field %s: missing", FieldUpdatedAt)
	}
	if u != "" {
		us, err := strconv.ParseInt(u, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("field %s: not microseconds: %q", FieldUpdatedAt, clip(u))
		}
		p.UpdatedAt = time.UnixMicro(us).UTC()
	}
	for f, name := range ingest.FieldNames {
		v, ok := h[name]
		if !ok {
			return nil, fmt.Errorf("field %s: missing", name)
		}
		if canonical {
			c, err := ingest.CanonicalJSON(nil, []byte(v))
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			if string(c) != v {
				return nil, fmt.Errorf("field %s: not canonical JSON (%d bytes; canonical form %d bytes)", name, len(v), len(c))
			}
		}
		p.Fields[f] = []byte(v)
	}
	if len(h) != len(knownFields) {
		var extra []string
		for k := range h {
			if !knownFields[k] {
				extra = append(extra, clip(k))
			}
		}
		slices.Sort(extra)
		return nil, fmt.Errorf("unknown fields %v", extra)
	}
	return p, nil
}

// clip shortens a stored value quoted in an error (garbage may be large,
// and profiles are personal data).
func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// ReadAt reads the keys of ids in a dataset version as they are, in
// pipelines, and decodes each (canonical: see Decode). Absent ids are not
// in the result; a value that is not a profile hash is a Copy with Err,
// never an error of the read.
func (s *Store) ReadAt(ctx context.Context, version int, ids []int64, canonical bool) (map[int64]Copy, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.KeyAt(version, id)
	}
	vals, err := ReadValues(ctx, s.rdb, keys)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Copy, len(ids))
	for i, v := range vals {
		if !v.Present() {
			continue
		}
		c := Copy{Value: v}
		if v.Oversize {
			c.Err = &CorruptError{Key: keys[i], Reason: fmt.Sprintf("a %s of about %d bytes, over the %d-byte read bound: not read", v.Type, v.Bytes, MaxValueBytes), Bytes: v.Bytes}
		} else if v.Type != "hash" {
			c.Err = &CorruptError{Key: keys[i], Reason: "a " + v.Type + " where a profile hash belongs", Bytes: v.Bytes}
		} else if c.Profile, err = Decode(ids[i], v.Hash, canonical); err != nil {
			c.Err = &CorruptError{Key: keys[i], Reason: err.Error(), Bytes: v.Bytes}
		}
		out[ids[i]] = c
	}
	return out, nil
}

// GetMany reads the profiles of ids in the serving dataset version (see
// GetManyAt).
func (s *Store) GetMany(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, []int64, error) {
	return s.GetManyAt(ctx, s.versions.Load().Serving, ids)
}

// GetManyAt reads the profiles of ids in a dataset version in one
// pipeline (readFields: the serving path reads only the known fields, so
// a huge foreign value at a key costs it nothing). Absent ids are in
// neither result; ids whose value is not a valid profile hash (decoded
// strictly, canonical JSON included) are listed in corrupt (a reader
// treats them as misses, and a check reads them whole).
func (s *Store) GetManyAt(ctx context.Context, version int, ids []int64) (good map[int64]*ingest.Profile, corrupt []int64, err error) {
	good = make(map[int64]*ingest.Profile, len(ids))
	err = s.readFields(ctx, version, ids, func(i int, vals []any, ok bool) {
		if !ok {
			corrupt = append(corrupt, ids[i])
			return
		}
		h := make(map[string]string, len(headFields))
		for j, v := range vals {
			if str, isStr := v.(string); isStr {
				h[headFields[j]] = str
			}
		}
		p, err := Decode(ids[i], h, true)
		if err != nil {
			corrupt = append(corrupt, ids[i])
			return
		}
		good[ids[i]] = p
	})
	if err != nil {
		return nil, nil, err
	}
	return good, corrupt, nil
}

// DeleteVersion removes every profile key of a dataset version (SCAN and
// UNLINK in batches of 1000, on every master of a cluster) and returns how
// many it removed.
func (s *Store) DeleteVersion(ctx context.Context, version int) (int64, error) {
	var n atomic.Int64
	match := s.Prefix(version) + "profile:*"
	err := scanAll(ctx, s.rdb, match, func(node goredis.Cmdable, keys []string) error {
		// One UNLINK per key: a cluster refuses keys of several slots in
		// one command, even on one node.
		cmds, err := node.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("unlink: %w", err)
		}
		for _, c := range cmds {
			n.Add(c.(*goredis.IntCmd).Val())
		}
		return nil
	})
	return n.Load(), err
}

// scanAll SCANs (COUNT 1000) every node that holds keys for match: the
// server, or each master of a cluster (a SCAN walks one node). fn gets
// each batch with the node it came from, one batch at a time.
func scanAll(ctx context.Context, rdb goredis.UniversalClient, match string, fn func(node goredis.Cmdable, keys []string) error) error {
	var mu sync.Mutex // masters are walked concurrently; fn is not
	scan := func(ctx context.Context, node goredis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, 1000).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", match, err)
			}
			if len(keys) > 0 {
				mu.Lock()
				err := fn(node, keys)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := rdb.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return scan(ctx, m) })
	}
	return scan(ctx, rdb)
}

// Head is a stored profile's version and digest, as read for a sweep.
type Head struct {
	Version int64
	// Digest is recomputed from the stored content (not the stored d
	// field, which another writer leaves as it was).
	Digest int64
	// Suspect: the value is not a profile hash, or its stored digest
	// does not match its content; a sweep reads it again in full.
	Suspect bool
}

// HeadsAt reads the content of ids in a dataset version and recomputes
// each digest from it, so a field changed behind triad's back shows
// however the stored version and digest fields read. It is the sweep's
// hot path (every key of the dataset), so it reads only what a profile
// hash may hold: one pipelined HMGET of the known fields and an HLEN
// (extra fields) per key, and hashes the values where they lie, without
// decoding a profile. Anything that is not a well-formed profile hash (a
// wrong type, a missing, extra or empty field, unparsable labels) is a
// Suspect head, read again in full (ReadAt) before it is judged; the
// attribute fields' canonical form is not checked here: bytes other than
// the canonical ones give another digest than Postgres's. Absent ids are
// not in the result.
func (s *Store) HeadsAt(ctx context.Context, version int, ids []int64) (map[int64]Head, error) {
	out := make(map[int64]Head, len(ids))
	var p ingest.Profile
	var scratch []byte
	err := s.readFields(ctx, version, ids, func(i int, got []any, ok bool) {
		h := Head{Suspect: true}
		if ok {
			if c, good := contentHead(&p, ids[i], got, &scratch); good {
				h = c
			}
		}
		out[ids[i]] = h
	})
	return out, err
}

// readFields reads the keys of ids in a dataset version in one pipeline:
// HMGET of headFields and HLEN per key (the command's arguments but the
// key boxed once: HMGet would box every field name of every key). fn gets
// each present key's reply; ok is false when the value is not a profile
// hash of exactly those fields (another type, a missing or an extra
// field). Nothing beyond the known fields is moved, whatever the key
// holds.
func (s *Store) readFields(ctx context.Context, version int, ids []int64, fn func(i int, vals []any, ok bool)) error {
	if len(ids) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	vals := make([]*goredis.Cmd, len(ids))
	lens := make([]*goredis.IntCmd, len(ids))
	prefix := s.Prefix(version) + "profile:"
	for i, id := range ids {
		k := prefix + strconv.FormatInt(id, 10)
		args := make([]any, len(headArgs))
		copy(args, headArgs)
		args[1] = k
		vals[i] = pipe.Do(ctx, args...)
		lens[i] = pipe.HLen(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReplyError(err) {
		return fmt.Errorf("redis pipeline of %d reads: %w", len(ids), err)
	}
	for i, id := range ids {
		n, err := lens[i].Result()
		if err != nil {
			if !isReplyError(err) {
				return fmt.Errorf("redis read %d: %w", id, err)
			}
			fn(i, nil, false) // another type at the key
			continue
		}
		if n == 0 {
			continue // absent
		}
		got, err := vals[i].Slice()
		fn(i, got, err == nil && n == int64(len(headFields)) && len(got) == len(headFields))
	}
	return nil
}

// headFields are the fields of a profile hash, in the order HeadsAt reads
// them: the labels, then ingest.FieldNames.
var headFields = func() (f [4 + ingest.NumFields]string) {
	f[0], f[1], f[2], f[3] = FieldVersion, FieldDigest, FieldDigestVersion, FieldUpdatedAt
	copy(f[4:], ingest.FieldNames[:])
	return f
}()

// headArgs is HMGET key headFields..., the key left to fill in.
var headArgs = func() []any {
	a := []any{"hmget", ""}
	for _, f := range headFields {
		a = append(a, f)
	}
	return a
}()

var digestVersion = strconv.Itoa(ingest.DigestVersion)

// contentHead computes the head of one HMGET reply of headFields into p
// (reused): ok is false for a value that is not a well-formed profile
// hash. The attribute values are hashed in place, not copied.
func contentHead(p *ingest.Profile, id int64, vals []any, scratch *[]byte) (Head, bool) {
	var str [len(headFields)]string
	for i, v := range vals {
		s, ok := v.(string)
		if !ok || (s == "" && i != 3) {
			return Head{}, false // missing, or empty where JSON belongs
		}
		str[i] = s
	}
	*p = ingest.Profile{UserID: id}
	var err error
	if p.Version, err = strconv.ParseInt(str[0], 10, 64); err != nil || p.Version <= 0 {
		return Head{}, false
	}
	stored, err := strconv.ParseInt(str[1], 10, 64)
	if err != nil || str[2] != digestVersion {
		return Head{}, false
	}
	if str[3] != "" {
		us, err := strconv.ParseInt(str[3], 10, 64)
		if err != nil {
			return Head{}, false
		}
		p.UpdatedAt = time.UnixMicro(us).UTC()
	}
	for f := range ingest.NumFields {
		// Read-only views of the reply's strings: ComputeDigest only
		// reads them, and p does not outlive this call's caller loop.
		p.Fields[f] = unsafe.Slice(unsafe.StringData(str[4+f]), len(str[4+f]))
	}
	var d int64
	d, *scratch = p.ComputeDigest(*scratch)
	return Head{Version: p.Version, Digest: d, Suspect: d != stored}, true
}

// CompareAndSet makes the serving version's key of userID hold want (nil:
// no key) if it still holds exactly the value observed (whatever its
// form: a hash, a string, another type, or nothing), atomically. ok is
// false when the value changed since it was observed; nothing was written
// then (a repair never overwrites a newer write), and now says what the
// key holds instead. A write is announced on the change feed as a repair,
// so every replica drops its in-process copy even when the version did
// not change (a same-version content repair).
func (s *Store) CompareAndSet(ctx context.Context, userID int64, observed Value, want *ingest.Profile) (ok bool, now string, err error) {
	change := ingest.Change{UserID: userID, Repaired: true, Version: 1}
	sw := Swap{Observed: observed, Op: "del", Channel: s.Channel()}
	if observed.Type == "hash" {
		if v, err := strconv.ParseInt(observed.Hash[FieldVersion], 10, 64); err == nil && v > 0 {
			change.Version = v
		}
	}
	if want != nil {
		sw.Op, sw.TTLms = "hash", s.cfg.TTL.Milliseconds()
		change.Version = want.Version
		updated := ""
		if !want.UpdatedAt.IsZero() {
			updated = strconv.FormatInt(want.UpdatedAt.UnixMicro(), 10)
		}
		sw.Hash = append(sw.Hash,
			FieldVersion, strconv.FormatInt(want.Version, 10),
			FieldDigest, strconv.FormatInt(want.Digest, 10),
			FieldDigestVersion, strconv.Itoa(ingest.DigestVersion),
			FieldUpdatedAt, updated)
		for f, name := range ingest.FieldNames {
			sw.Hash = append(sw.Hash, name, string(want.Field(f)))
		}
	}
	sw.Message = string(AppendChanges(nil, []ingest.Change{change}))
	return CompareAndSwap(ctx, s.rdb, s.Key(userID), sw)
}

// Heads is HeadsAt in the serving dataset version.
func (s *Store) Heads(ctx context.Context, ids []int64) (map[int64]Head, error) {
	return s.HeadsAt(ctx, s.versions.Load().Serving, ids)
}

// ScanIDs walks every profile key of the serving dataset version with SCAN
// (COUNT 1000, so memory stays bounded) and hands the user IDs to fn in
// batches.
func (s *Store) ScanIDs(ctx context.Context, fn func(ids []int64) error) error {
	return ScanKeys(ctx, s.rdb, s.Prefix(s.versions.Load().Serving)+"profile:", "", fn)
}

// ScanKeys walks the keys prefix<id>suffix with SCAN (COUNT 1000, so
// memory stays bounded; every master of a cluster) and hands their IDs to
// fn in batches; keys whose middle is not an integer are skipped.
func ScanKeys(ctx context.Context, rdb goredis.UniversalClient, prefix, suffix string, fn func(ids []int64) error) error {
	return scanAll(ctx, rdb, prefix+"*"+suffix, func(_ goredis.Cmdable, keys []string) error {
		ids := make([]int64, 0, len(keys))
		for _, k := range keys {
			if id, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(k, prefix), suffix), 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			return nil
		}
		return fn(ids)
	})
}

// Serving is the dataset version reads address.
func (s *Store) Serving() int { return s.versions.Load().Serving }

// Labels reads only the version and digest fields triad wrote on the
// serving version's keys of ids (one pipelined HMGET each): the quick
// label-only sweep. Another writer's change to other fields leaves them
// as they were, so they never prove a copy consistent. A key that is not
// a hash, or whose labels do not parse, is a Suspect head. Absent ids are
// not in the result.
func (s *Store) Labels(ctx context.Context, ids []int64) (map[int64]Head, error) {
	version := s.versions.Load().Serving
	pipe := s.rdb.Pipeline()
	cmds := make([]*goredis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.KeyAt(version, id), FieldVersion, FieldDigest)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) && !isReplyError(err) {
		return nil, fmt.Errorf("labels of %d keys: %w", len(ids), err)
	}
	out := make(map[int64]Head, len(ids))
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			if isReplyError(err) {
				out[ids[i]] = Head{Suspect: true} // another type at the key
				continue
			}
			return nil, fmt.Errorf("labels of %d keys: %w", len(ids), err)
		}
		if len(vals) != 2 || (vals[0] == nil && vals[1] == nil) {
			continue // no key, or a hash without triad's labels: the quick mode cannot tell them apart
		}
		var h Head
		vs, ok1 := vals[0].(string)
		ds, ok2 := vals[1].(string)
		v, err1 := strconv.ParseInt(vs, 10, 64)
		d, err2 := strconv.ParseInt(ds, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil {
			h.Suspect = true
		}
		h.Version, h.Digest = v, d
		out[ids[i]] = h
	}
	return out, nil
}

// CountKeys counts every key of the Redis database (DBSIZE): a sweep that
// found at least as many profile keys for primary rows knows the
// database holds no orphan.
func (s *Store) CountKeys(ctx context.Context) (int64, error) {
	return s.rdb.DBSize(ctx).Result()
}
