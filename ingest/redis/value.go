package redis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"
)

// Value is a key's value exactly as Redis holds it, whoever wrote it: a
// hash, a string, another type (Other: its DUMP), or nothing. Values
// written by other services or operators may be of any type; readers
// classify them rather than fail.
type Value struct {
	Type  string            // "" (absent), "hash", "string", or another Redis type
	Hash  map[string]string // Type hash
	Str   string            // Type string; DUMP's payload for other types
	Bytes int               // the value's size: field names and values, or the string
	// Oversize: the value is larger than MaxValueBytes (Bytes is Redis's
	// MEMORY USAGE estimate) and was not read; Hash and Str are empty and
	// its fingerprint was computed inside Redis (serverFP).
	Oversize bool
	serverFP string
}

// MaxValueBytes bounds what a read of one key moves into triad: a value
// Redis estimates larger (MEMORY USAGE) is not read but fingerprinted
// inside Redis, so another writer's 500 MB list costs the reader nothing.
// Profiles and orders are a few KB.
const MaxValueBytes = 1 << 20

// Present reports whether the key exists.
func (v Value) Present() bool { return v.Type != "" }

// Fingerprint identifies the exact value: two reads of a key give the same
// fingerprint only when it holds the same type and bytes (a hash: the same
// fields and values). casScript computes the same inside Redis, so a
// repair can be guarded on the exact value it observed, whatever form that
// value has.
func (v Value) Fingerprint() string {
	if !v.Present() {
		return ""
	}
	if v.Oversize {
		return v.serverFP
	}
	h := sha1.New()
	switch v.Type {
	case "hash":
		for _, k := range v.FieldNames() {
			val := v.Hash[k]
			fmt.Fprintf(h, "%d:%s%d:%s", len(k), k, len(val), val)
		}
	default:
		fmt.Fprintf(h, "%d:%s", len(v.Str), v.Str)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FieldNames are a hash value's field names, sorted (the order the guard
// reads them in).
func (v Value) FieldNames() []string {
	names := make([]string, 0, len(v.Hash))
	for k := range v.Hash {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// ReadValues reads keys in pipelines, whatever type each holds: HGETALL
// first (what triad's own keys are), then, for keys of another type, TYPE
// and GET or DUMP. An error means the pipeline itself failed (connection,
// deadline); a key's own wrong type is its Value.
func ReadValues(ctx context.Context, c goredis.Cmdable, keys []string) ([]Value, error) {
	out := make([]Value, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	// First the sizes: a value over MaxValueBytes is fingerprinted inside
	// Redis instead of read.
	if err := sizeScript.Load(ctx, c).Err(); err != nil {
		return nil, fmt.Errorf("redis load size script: %w", err)
	}
	pipe := c.Pipeline()
	sizes := make([]*goredis.Cmd, len(keys))
	for i, k := range keys {
		sizes[i] = sizeScript.EvalSha(ctx, pipe, []string{k})
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReplyError(err) {
		return nil, fmt.Errorf("redis pipeline of %d sizes: %w", len(keys), err)
	}
	read := make([]bool, len(keys))
	for i, k := range keys {
		n, err := sizes[i].Int()
		switch {
		case err != nil:
			return nil, fmt.Errorf("redis size of %s: %w", k, err)
		case n < 0:
			// absent
		case n > MaxValueBytes:
			res, err := fpScript.Run(ctx, c, []string{k}).StringSlice()
			if err != nil {
				return nil, fmt.Errorf("redis fingerprint of %s: %w", k, err)
			}
			if len(res) == 2 && res[0] != "none" {
				out[i] = Value{Type: res[0], Bytes: int(n), Oversize: true, serverFP: res[1]}
			}
		default:
			read[i] = true
		}
	}
	pipe = c.Pipeline()
	cmds := make([]*goredis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		if read[i] {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReplyError(err) {
		return nil, fmt.Errorf("redis pipeline of %d reads: %w", len(keys), err)
	}
	var other []int
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		h, err := cmd.Result()
		switch {
		case err != nil && goredis.HasErrorPrefix(err, "WRONGTYPE"):
			other = append(other, i)
		case err != nil:
			return nil, fmt.Errorf("redis read %s: %w", keys[i], err)
		case len(h) > 0:
			n := 0
			for k, v := range h {
				n += len(k) + len(v)
			}
			out[i] = Value{Type: "hash", Hash: h, Bytes: n}
		}
	}
	if len(other) == 0 {
		return out, nil
	}
	pipe = c.Pipeline()
	types := make([]*goredis.StatusCmd, len(other))
	for j, i := range other {
		types[j] = pipe.Type(ctx, keys[i])
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReplyError(err) {
		return nil, fmt.Errorf("redis pipeline of %d types: %w", len(other), err)
	}
	pipe = c.Pipeline()
	bodies := make([]*goredis.StringCmd, len(other))
	for j, i := range other {
		t := types[j].Val()
		out[i].Type = t
		switch t {
		case "none", "":
			out[i].Type = "" // deleted between the two reads
		case "string":
			bodies[j] = pipe.Get(ctx, keys[i])
		default:
			bodies[j] = pipe.Dump(ctx, keys[i])
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !isReplyError(err) && !errors.Is(err, goredis.Nil) {
		return nil, fmt.Errorf("redis pipeline of %d values: %w", len(other), err)
	}
	for j, i := range other {
		if bodies[j] == nil {
			continue
		}
		s, err := bodies[j].Result()
		if errors.Is(err, goredis.Nil) {
			out[i] = Value{}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("redis read %s (%s): %w", keys[i], out[i].Type, err)
		}
		out[i].Str, out[i].Bytes = s, len(s)
	}
	return out, nil
}

func isReplyError(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr)
}

// serverFP defines fingerprint(key, type) inside Redis, for values too
// large to read (Value.Oversize): the same type and bytes give the same
// fingerprint on this server (hash fields are sorted with Lua's collation,
// which is this server's, so it is compared only with itself), prefixed
// "lua:" so a guard knows which kind it holds.
const serverFP = `
local function fingerprint(key, t)
  local v
  if t == 'hash' then
    local all = redis.call('HGETALL', key)
    local names, vals = {}, {}
    for i = 1, #all, 2 do names[#names + 1] = all[i]; vals[all[i]] = all[i + 1] end
    table.sort(names)
    local parts = {}
    for _, k in ipairs(names) do parts[#parts + 1] = #k .. ':' .. k .. #vals[k] .. ':' .. vals[k] end
    return redis.sha1hex(table.concat(parts))
  elseif t == 'string' then
    v = redis.call('GET', key)
  else
    v = redis.call('DUMP', key)
  end
  return redis.sha1hex(#v .. ':' .. v)
end
`

// sizeScript returns what KEYS[1] occupies in Redis (MEMORY USAGE), or -1
// when it is absent. MEMORY USAGE samples five elements of an aggregate by
// default, so a hash of ten small fields and one 2 MiB field is estimated
// small half the time; a value of at most 1024 elements is measured
// exactly (SAMPLES 0, cost bounded by that count), a larger one sampled
// (its count alone puts it far past any profile, and sampling keeps the
// probe from walking a hostile 10M-element value).
var sizeScript = goredis.NewScript(`
local k = KEYS[1]
local t = redis.call('TYPE', k).ok
if t == 'none' then return -1 end
local n = 0
if t == 'hash' then n = redis.call('HLEN', k)
elseif t == 'list' then n = redis.call('LLEN', k)
elseif t == 'set' then n = redis.call('SCARD', k)
elseif t == 'zset' then n = redis.call('ZCARD', k)
elseif t == 'stream' then n = redis.call('XLEN', k)
end
if n <= 1024 then return redis.call('MEMORY', 'USAGE', k, 'SAMPLES', 0) end
return redis.call('MEMORY', 'USAGE', k)`)

// fpScript returns {type, "lua:" fingerprint} of KEYS[1] ({"none", ""}
// when absent).
var fpScript = goredis.NewScript(serverFP + `
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {'none', ''} end
return {t, 'lua:' .. fingerprint(KEYS[1], t)}`)

// casScript replaces or deletes a key only if it still holds exactly the
// value a reader observed (the same type and fingerprint), then optionally
// announces the change, in one atomic step.
//
// KEYS[1] = key. ARGV[1] = observed type ("" absent), ARGV[2] = observed
// fingerprint, ARGV[3] = n, ARGV[4..3+n] = the observed hash's field names
// (sorted, as Value.Fingerprint orders them). Then ARGV[4+n] = op ("hash",
// "string" or "del"), ARGV[5+n] = TTL ms (0: none), ARGV[6+n] = a channel
// ("" none), ARGV[7+n] = its message, ARGV[8+n..] = the new value (hash:
// field, value pairs; string: the value). Returns {1} when written, or
// {0, type} with the type found when the value changed (nothing written).
//
// The fingerprint of a hash is read with HLEN and HMGET of the observed
// field names rather than by sorting HGETALL in Lua: Lua compares strings
// with the server's collation locale, which need not be bytewise.
var casScript = goredis.NewScript(serverFP + `
local key = KEYS[1]
local t = redis.call('TYPE', key).ok
if t == 'none' then t = '' end
local n = tonumber(ARGV[3])
local op = 4 + n
local function changed() return {0, t} end
if t ~= ARGV[1] then return changed() end
if string.sub(ARGV[2], 1, 4) == 'lua:' then
  if 'lua:' .. fingerprint(key, t) ~= ARGV[2] then return changed() end
elseif t == 'hash' then
  if redis.call('HLEN', key) ~= n then return changed() end
  local parts = {}
  -- HMGET in chunks: unpack is bounded by the Lua stack.
  for from = 1, n, 500 do
    local names = {}
    for i = from, math.min(n, from + 499) do names[#names + 1] = ARGV[3 + i] end
    local vals = redis.call('HMGET', key, unpack(names))
    for i = 1, #names do
      if not vals[i] then return changed() end
      parts[#parts + 1] = #names[i] .. ':' .. names[i] .. #vals[i] .. ':' .. vals[i]
    end
  end
  if redis.sha1hex(table.concat(parts)) ~= ARGV[2] then return changed() end
elseif t == 'string' then
  local v = redis.call('GET', key)
  if redis.sha1hex(#v .. ':' .. v) ~= ARGV[2] then return changed() end
elseif t ~= '' then
  local v = redis.call('DUMP', key)
  if redis.sha1hex(#v .. ':' .. v) ~= ARGV[2] then return changed() end
end
if t ~= '' then redis.call('DEL', key) end
local what = ARGV[op]
if what == 'hash' then
  redis.call('HSET', key, unpack(ARGV, op + 4))
elseif what == 'string' then
  redis.call('SET', key, ARGV[op + 4])
end
if what ~= 'del' and tonumber(ARGV[op + 1]) > 0 then redis.call('PEXPIRE', key, ARGV[op + 1]) end
if ARGV[op + 2] ~= '' then redis.call('PUBLISH', ARGV[op + 2], ARGV[op + 3]) end
return {1}`)

// Swap is one guarded write of a key: what a reader observed there, and
// what to put instead.
type Swap struct {
	Observed Value
	// Op is "hash" (Hash holds field, value pairs), "string" (String) or
	// "del".
	Op     string
	Hash   []any
	String string
	TTLms  int64
	// Channel and Message, when Channel is set, are PUBLISHed in the same
	// atomic step (the read path's change feed).
	Channel, Message string
}

// ErrChanged is why a guarded write did not happen: the key no longer
// holds the value that was observed.
var ErrChanged = errors.New("the value changed since it was read")

// CompareAndSwap applies s to key only if the key still holds s.Observed
// exactly. It returns ok false (nothing written) with the type the key
// holds now when the value changed since it was read.
func CompareAndSwap(ctx context.Context, c goredis.Scripter, key string, s Swap) (ok bool, nowType string, err error) {
	names := s.Observed.FieldNames()
	args := make([]any, 0, 8+len(names)+len(s.Hash))
	args = append(args, s.Observed.Type, s.Observed.Fingerprint(), strconv.Itoa(len(names)))
	for _, n := range names {
		args = append(args, n)
	}
	args = append(args, s.Op, strconv.FormatInt(s.TTLms, 10), s.Channel, s.Message)
	switch s.Op {
	case "hash":
		args = append(args, s.Hash...)
	case "string":
		args = append(args, s.String)
	}
	res, err := casScript.Run(ctx, c, []string{key}, args...).Slice()
	if err != nil {
		return false, "", fmt.Errorf("compare and swap %s: %w", key, err)
	}
	if len(res) == 0 {
		return false, "", fmt.Errorf("compare and swap %s: empty reply", key)
	}
	if n, _ := res[0].(int64); n == 1 {
		return true, "", nil
	}
	if len(res) > 1 {
		nowType, _ = res[1].(string)
	}
	return false, nowType, nil
}
