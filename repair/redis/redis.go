// Package redis is the Redis side of a configured entity (repair's Table)
// stored as JSON strings: the version-guarded write script. Reads, scans
// and guarded repairs are ingest/redis's (ReadValues, ScanKeys,
// CompareAndSwap), shared with the profile.
package redis

import (
	"context"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// putJSON writes a JSON document into Redis unless the stored one has a
// newer version (compared as decimal strings, read from the stored JSON's
// version member). KEYS[1]; ARGV[1] = the version member's name,
// ARGV[2] = the version, ARGV[3] = the document, ARGV[4] = TTL ms.
// A value of another type at the key (garbage: a hash, a list) has no
// version and is replaced (SET replaces any type).
var putJSON = goredis.NewScript(`
local cur = nil
if redis.call('TYPE', KEYS[1]).ok == 'string' then cur = redis.call('GET', KEYS[1]) end
if cur then
  local v = string.match(cur, '"' .. ARGV[1] .. '"%s*:%s*"?(%d+)')
  if v and (#v > #ARGV[2] or (#v == #ARGV[2] and v > ARGV[2])) then return 0 end
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1`)

// PutJSON queues on pipe the guarded write of doc at key: not over a
// stored document whose versionMember holds a newer version.
func PutJSON(ctx context.Context, pipe goredis.Pipeliner, key, versionMember string, version int64, doc []byte, ttl time.Duration) *goredis.Cmd {
	return putJSON.EvalSha(ctx, pipe, []string{key}, versionMember, strconv.FormatInt(version, 10), doc, ttl.Milliseconds())
}

// LoadPutJSON loads the script, so a pipeline of PutJSON (EVALSHA) finds it.
func LoadPutJSON(ctx context.Context, rdb goredis.Scripter) error {
	return putJSON.Load(ctx, rdb).Err()
}
