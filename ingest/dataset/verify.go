package dataset

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// RedisMissingOK accepts profiles absent from Redis (it is a cache:
	// keys expire after profile_cache.ttl and reads fill them back). Stale
	// keys are never accepted.
	RedisMissingOK bool
}

// Verification compares a version's derived stores with Postgres.
type Verification struct {
	Version int   `json:"version"`
	Rows    int64 `json:"rows"` // live profiles in Postgres
	// DigestSum is the sum (mod 2^64) of the live rows' digests in
	// Postgres; RedisDigestSum and ESDigestSum the same over what each
	// store holds for those rows.
	DigestSum      int64 `json:"digest_sum"`
	RedisDigestSum int64 `json:"redis_digest_sum"`
	ESDigestSum    int64 `json:"es_digest_sum"`
	RedisMissing   int64 `json:"redis_missing"`
	RedisStale     int64 `json:"redis_stale"` // other version or digest, or a deleted profile still present
	ESDocs         int64 `json:"es_docs"`
	LiveRows       int64 `json:"live_rows"` // Postgres's live count when ESDocs was counted
	ESMissing      int64 `json:"es_missing"`
	ESStale        int64 `json:"es_stale"`
	// Examples are a few IDs that still differed after the recheck.
	Examples []int64       `json:"examples,omitempty"`
	Took     time.Duration `json:"took_ns"`
	Complete bool          `json:"complete"`
}

// Summary is one line for operators.
func (v Verification) Summary() string {
	return fmt.Sprintf("version %d: %d rows in postgres; redis %d missing, %d stale; elasticsearch %d docs (postgres %d live then), %d missing, %d stale; digest sums pg=%d redis=%d es=%d; examples %v",
		v.Version, v.Rows, v.RedisMissing, v.RedisStale, v.ESDocs, v.LiveRows, v.ESMissing, v.ESStale, v.DigestSum, v.RedisDigestSum, v.ESDigestSum, v.Examples)
}

// Verify compares version n of Redis and Elasticsearch with Postgres, row
// by row in user ID order (version and digest of every live profile;
// deleted ones must be absent), then the index's document count with the
// live row count. Writes race with the pass, so rows that differ are read
// again (all three stores) after a second before they count.
func (m *Manager) Verify(ctx context.Context, n int, o VerifyOptions) (Verification, error) {
	start := m.now()
	v := Verification{Version: n}
	// Pages are compared four at a time while the scan reads on: the
	// figures are sums, so the order does not matter.
	var suspects []int64
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	err := m.pg.ScanHeads(gctx, 0, 2000, func(page []pgstore.Head) error {
		g.Go(func() error {
			var part Verification
			bad, err := m.compare(gctx, n, page, &part, o, false)
			mu.Lock()
			v.merge(part)
			suspects = append(suspects, bad...)
			mu.Unlock()
			return err
		})
		return gctx.Err()
	})
	if werr := g.Wait(); err == nil || werr != nil {
		err = werr
	}
	if err != nil {
		return v, fmt.Errorf("verify version %d: %w", n, err)
	}
	if len(suspects) > 0 {
		// The first pass left the suspects out of every figure; read them
		// again and count them as they are now.
		if !sleep(ctx, time.Second) {
			return v, ctx.Err()
		}
		heads, err := m.heads(ctx, suspects)
		if err != nil {
			return v, err
		}
		still, err := m.compare(ctx, n, heads, &v, o, true)
		if err != nil {
			return v, err
		}
		slices.Sort(still)
		v.Examples = still[:min(len(still), 10)]
	}
	// Extra documents (in the index, not live in Postgres) show only in a
	// count (every live row was found above). Writes go on during a
	// verification, and the index trails Postgres by the writes in flight,
	// so the index is counted between two Postgres counts until the three
	// agree; if they never do (a steady stream of writes), an index that is
	// not larger than Postgres holds no extra documents beyond the writes
	// in flight.
	for attempt := 0; ; attempt++ {
		pg1, err := m.pg.CountLive(ctx)
		if err != nil {
			return v, err
		}
		if v.ESDocs, err = m.es.Count(ctx, n); err != nil {
			return v, err
		}
		if v.LiveRows, err = m.pg.CountLive(ctx); err != nil {
			return v, err
		}
		if (pg1 == v.LiveRows && v.ESDocs == v.LiveRows) || attempt == 9 {
			break
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return v, ctx.Err()
		}
	}
	v.Took = m.now().Sub(start)
	redisOK := v.RedisStale == 0 && (v.RedisMissing == 0 || o.RedisMissingOK)
	v.Complete = redisOK && v.ESMissing == 0 && v.ESStale == 0 && v.ESDocs <= v.LiveRows && v.ESDigestSum == v.DigestSum &&
		(o.RedisMissingOK || v.RedisDigestSum == v.DigestSum)
	return v, nil
}

func (m *Manager) heads(ctx context.Context, ids []int64) ([]pgstore.Head, error) {
	rows, err := m.pg.Get(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]pgstore.Head, 0, len(ids))
	for _, p := range rows {
		out = append(out, pgstore.Head{UserID: p.UserID, Version: p.Version, Digest: p.Digest, Deleted: p.Deleted})
	}
	return out, nil
}

// compare adds page's figures to v and returns the IDs that differ; with
// countBad false, the rows that differ are left out of v.
func (m *Manager) compare(ctx context.Context, n int, page []pgstore.Head, v *Verification, o VerifyOptions, countBad bool) ([]int64, error) {
	ids := make([]int64, len(page))
	for i, h := range page {
		ids[i] = h.UserID
	}
	var rd map[int64]redisstore.Head
	var es map[int64]esstore.Head
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if rd, rerr = m.redis.HeadsAt(ctx, n, ids); rerr != nil {
			rerr = fmt.Errorf("redis: %w", rerr)
		}
	}()
	es, err := m.es.HeadsAt(ctx, n, ids)
	<-done
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	if rerr != nil {
		return nil, rerr
	}
	var bad []int64
	for _, h := range page {
		row := Verification{}
		differs := row.add(h, rd, es, o)
		if differs {
			bad = append(bad, h.UserID)
		}
		if !differs || countBad {
			v.merge(row)
		}
	}
	return bad, nil
}

// add counts one row into v and reports whether the stores differ from it.
func (v *Verification) add(h pgstore.Head, rd map[int64]redisstore.Head, es map[int64]esstore.Head, o VerifyOptions) bool {
	r, inRedis := rd[h.UserID]
	e, inES := es[h.UserID]
	differs := false
	if h.Deleted {
		if inRedis {
			v.RedisStale++
			differs = true
		}
		if inES {
			v.ESStale++
			differs = true
		}
	} else {
		v.Rows++
		v.DigestSum += h.Digest
		switch {
		case !inRedis:
			v.RedisMissing++
			differs = differs || !o.RedisMissingOK
		case r.Suspect || r.Version != h.Version || r.Digest != h.Digest:
			// Redis heads are recomputed from content; Suspect: the value
			// does not decode, or its stored digest disagrees with it.
			v.RedisStale++
			differs = true
		}
		if inRedis {
			v.RedisDigestSum += r.Digest
		}
		switch {
		case !inES:
			v.ESMissing++
			differs = true
		case e.Version != h.Version || e.Digest != h.Digest:
			v.ESStale++
			differs = true
		}
		if inES {
			v.ESDigestSum += e.Digest
		}
	}
	return differs
}

func (v *Verification) merge(o Verification) {
	v.Rows += o.Rows
	v.DigestSum += o.DigestSum
	v.RedisDigestSum += o.RedisDigestSum
	v.ESDigestSum += o.ESDigestSum
	v.RedisMissing += o.RedisMissing
	v.RedisStale += o.RedisStale
	v.ESMissing += o.ESMissing
	v.ESStale += o.ESStale
}
