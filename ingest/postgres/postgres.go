// Package postgres is the Postgres store of the profile pipeline: the source
// of truth (version-guarded bulk upserts, tombstones), the outbox each upsert
// writes of the derived writes it owes, the catch-up log of derived writes
// that failed or were abandoned, and the records derived stores rejected.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/triad-dev/triad/ingest"
)

// Store reads and writes the profiles table (migrations/00002_profiles.sql).
// It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool; the pool's search_path must reach the tables.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// upsert applies a batch in one statement: a row is written only when the
// stored version is older (the version guard), so an older version never
// replaces a newer one, and a tombstone keeps its version. Parameters are
// arrays so one round trip carries the whole batch. The same statement,
// and so the same transaction, records what the rows it wrote owe to the
// stores in $10 as one outbox entry, whose ID every returned row carries.
// When the batch is traced ($11 the trace ID, $13 the span's), each row
// keeps the trace and the digest it was written with ($12), and the batch
// the users it wrote (migration 00019).
const upsert = `
WITH w AS (
INSERT INTO profiles AS p (user_id, version, updated_at, deleted, deleted_at, tags, interests, devices, behavior, props, write_trace, write_digest)
SELECT u.user_id, u.version, u.updated_at, u.deleted, CASE WHEN u.deleted THEN now() END,
       u.tags::jsonb, u.interests::jsonb, u.devices::jsonb, u.behavior::jsonb, u.props::jsonb,
       $11::bytea, CASE WHEN $11::bytea IS NOT NULL THEN u.digest END
FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::boolean[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $12::bigint[])
     AS u(user_id, version, updated_at, deleted, tags, interests, devices, behavior, props, digest)
ON CONFLICT (user_id) DO UPDATE SET
    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
    deleted = EXCLUDED.deleted, deleted_at = EXCLUDED.deleted_at,
    tags = EXCLUDED.tags, interests = EXCLUDED.interests, devices = EXCLUDED.devices,
    behavior = EXCLUDED.behavior, props = EXCLUDED.props,
    write_trace = EXCLUDED.write_trace, write_digest = EXCLUDED.write_digest
WHERE p.version < EXCLUDED.version
RETURNING user_id, version),
o AS (
INSERT INTO profile_outbox (stores, user_ids, versions)
SELECT $10::text[], array_agg(user_id), array_agg(version) FROM w
HAVING count(*) > 0 AND cardinality($10::text[]) > 0
RETURNING id),
t AS (
INSERT INTO profile_write_traces (trace_id, span_id, user_ids, versions)
SELECT $11::bytea, $13::bytea, array_agg(user_id), array_agg(version) FROM w
HAVING count(*) > 0 AND $11::bytea IS NOT NULL)
SELECT user_id, coalesce((SELECT id FROM o), 0) FROM w`

// held reads back what the table holds for users whose upsert wrote
// nothing, so the caller knows whether the input is already the stored
// truth (a re-run) or lost to a newer version.
const held = `SELECT user_id, version, deleted, digest FROM profiles WHERE user_id = ANY($1::bigint[])`

// Apply implements ingest.Primary.
func (s *Store) Apply(ctx context.Context, batch []*ingest.Profile, out []bool, owed []string) (int64, error) {
	if owed == nil {
		owed = []string{}
	}
	n := len(batch)
	ids, versions, digests := make([]int64, n), make([]int64, n), make([]int64, n)
	updated, deleted := make([]pgtype.Timestamptz, n), make([]bool, n)
	var fields [ingest.NumFields][]string
	for f := range fields {
		fields[f] = make([]string, n)
	}
	for i, p := range batch {
		ids[i], versions[i], deleted[i], digests[i] = p.UserID, p.Version, p.Deleted, p.Digest
		updated[i] = pgtype.Timestamptz{Time: p.UpdatedAt, Valid: !p.UpdatedAt.IsZero()}
		for f := range fields {
			fields[f][i] = string(p.Field(f))
		}
	}
	var traceID, spanID []byte // NULL unless the batch is traced
	if sc := oteltrace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsSampled() {
		t, sp := sc.TraceID(), sc.SpanID()
		traceID, spanID = t[:], sp[:]
	}
	rows, err := s.pool.Query(ctx, upsert, ids, versions, updated, deleted, fields[0], fields[1], fields[2], fields[3], fields[4], owed,
		traceID, digests, spanID)
	if err != nil {
		return 0, fmt.Errorf("upsert %d profiles: %w", n, err)
	}
	written := make(map[int64]bool, n)
	var outbox int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &outbox); err != nil {
			rows.Close()
			return 0, err
		}
		written[id] = true
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("upsert %d profiles: %w", n, err)
	}
	var rest []int64
	for i, p := range batch {
		out[i] = written[p.UserID]
		if !out[i] {
			rest = append(rest, p.UserID)
		}
	}
	if len(rest) == 0 {
		return outbox, nil
	}
	type state struct {
		version int64
		deleted bool
		digest  int64
	}
	got := make(map[int64]state, len(rest))
	// The entry is committed: from here on an error must still return it,
	// or its writes would be left to recovery after outbox_grace.
	rows, err = s.pool.Query(ctx, held, rest)
	if err != nil {
		return outbox, fmt.Errorf("read back %d profiles: %w", len(rest), err)
	}
	for rows.Next() {
		var id int64
		var st state
		if err := rows.Scan(&id, &st.version, &st.deleted, &st.digest); err != nil {
			rows.Close()
			return outbox, err
		}
		got[id] = st
	}
	if err := rows.Err(); err != nil {
		return outbox, fmt.Errorf("read back %d profiles: %w", len(rest), err)
	}
	for i, p := range batch {
		if out[i] {
			continue
		}
		st, ok := got[p.UserID]
		out[i] = ok && st.version == p.Version && st.deleted == p.Deleted && (p.Deleted || st.digest == p.Digest)
	}
	return outbox, nil
}

const columns = `user_id, version, updated_at, deleted, tags::text, interests::text, devices::text, behavior::text, props::text, digest`

// Get implements ingest.Primary. Field text comes from jsonb, which is
// canonical by construction, so the digest triad computes for the result
// equals the digest column.
func (s *Store) Get(ctx context.Context, ids []int64) ([]*ingest.Profile, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM profiles WHERE user_id = ANY($1::bigint[])`, ids)
	if err != nil {
		return nil, err
	}
	return scanProfiles(rows)
}

func scanProfiles(rows pgx.Rows) ([]*ingest.Profile, error) { return scanTraced(rows, nil) }

// scanTraced is scanProfiles of rows that also hold a write trace (the
// last column), which goes to traces (nil: no such column).
func scanTraced(rows pgx.Rows, traces map[int64]string) ([]*ingest.Profile, error) {
	defer rows.Close()
	var out []*ingest.Profile
	for rows.Next() {
		p := &ingest.Profile{}
		var updated pgtype.Timestamptz
		var f [ingest.NumFields]string
		var trace *string
		dest := []any{&p.UserID, &p.Version, &updated, &p.Deleted, &f[0], &f[1], &f[2], &f[3], &f[4], &p.Digest}
		if traces != nil {
			dest = append(dest, &trace)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if trace != nil {
			traces[p.UserID] = *trace
		}
		if updated.Valid {
			p.UpdatedAt = updated.Time.UTC()
		}
		if !p.Deleted {
			for i := range f {
				p.Fields[i] = []byte(f[i])
			}
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// Scan calls fn for every row with user_id > after, in user_id order, in
// pages of limit rows (the archive-free way to re-read the dataset).
func (s *Store) Scan(ctx context.Context, after int64, limit int, fn func([]*ingest.Profile) error) error {
	for {
		rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM profiles WHERE user_id > $1 ORDER BY user_id LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		page, err := scanProfiles(rows)
		if err != nil || len(page) == 0 {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		after = page[len(page)-1].UserID
	}
}

// PurgeTombstones deletes tombstones written more than retention ago and
// returns how many. After that an older write of the same user could be
// accepted again, so retention must outlast any replay of old input.
func (s *Store) PurgeTombstones(ctx context.Context, retention time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM profiles WHERE deleted AND deleted_at < now() - $1::interval`, retention)
	return tag.RowsAffected(), err
}

// Record implements ingest.CatchupLog.
func (s *Store) Record(ctx context.Context, store string, batch []*ingest.Profile, reason string) error {
	newest := map[int64]int64{}
	for _, p := range batch {
		newest[p.UserID] = max(newest[p.UserID], p.Version)
	}
	// In user_id order, as every writer of the log takes its rows: two
	// statements that lock rows in the same order cannot deadlock.
	ids := slices.Sorted(maps.Keys(newest))
	versions := make([]int64, len(ids))
	for i, id := range ids {
		versions[i] = newest[id]
	}
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	return retryDeadlock(ctx, func() error {
		_, err := s.pool.Exec(ctx, `
		INSERT INTO profile_catchup AS c (store, user_id, version, last_error)
		SELECT $1, u.id, u.v, $4 FROM unnest($2::bigint[], $3::bigint[]) AS u(id, v) ORDER BY u.id
		ON CONFLICT (store, user_id) DO UPDATE SET
			version = GREATEST(c.version, EXCLUDED.version), attempts = c.attempts + 1,
			last_error = EXCLUDED.last_error, last_failed_at = now()`, store, ids, versions, reason)
		return err
	})
}

// retryDeadlock runs fn again (up to three times in all) when Postgres
// chose it as a deadlock's victim (40P01): the catch-up log is written by
// every shard writer, the replay and a re-warm at once, and a victim's
// statement succeeds when run again. Other errors are returned as they are.
func retryDeadlock(ctx context.Context, fn func() error) error {
	var err error
	for attempt := range 3 {
		if err = fn(); err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40P01" || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(10*(attempt+1)) * time.Millisecond)
	}
	return err
}

// Pending implements ingest.CatchupLog.
func (s *Store) Pending(ctx context.Context, store string, after int64, limit int) ([]ingest.Pending, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, version, first_failed_at FROM profile_catchup WHERE store = $1 AND user_id > $2 ORDER BY user_id LIMIT $3`, store, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ingest.Pending, error) {
		var p ingest.Pending
		return p, r.Scan(&p.UserID, &p.Version, &p.Since)
	})
}

// Done implements ingest.CatchupLog.
func (s *Store) Done(ctx context.Context, store string, written []*ingest.Profile) error {
	if len(written) == 0 {
		return nil
	}
	ids, versions := make([]int64, len(written)), make([]int64, len(written))
	for i, p := range written {
		ids[i], versions[i] = p.UserID, p.Version
	}
	return retryDeadlock(ctx, func() error {
		_, err := s.pool.Exec(ctx, `
		DELETE FROM profile_catchup c USING unnest($2::bigint[], $3::bigint[]) AS u(id, v)
		WHERE c.store = $1 AND c.user_id = u.id AND c.version <= u.v`, store, ids, versions)
		return err
	})
}

// Settle implements ingest.CatchupLog.
func (s *Store) Settle(ctx context.Context, outbox []int64) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM profile_outbox WHERE id = ANY($1::bigint[])`, outbox)
	return err
}

// Recover implements ingest.CatchupLog: one statement deletes the oldest
// abandoned entries (skipping any another triad is moving) and records
// each profile they owe, per store, in the catch-up log.
func (s *Store) Recover(ctx context.Context, age time.Duration, limit int) (int64, error) {
	var n int64
	err := retryDeadlock(ctx, func() error {
		return s.pool.QueryRow(ctx, `
WITH o AS (
    DELETE FROM profile_outbox WHERE id IN (
        SELECT id FROM profile_outbox WHERE created_at < now() - $1::interval
        ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING stores, user_ids, versions),
u AS (
    SELECT st.store, x.id, max(x.v) AS v
    FROM o, unnest(o.stores) AS st(store), unnest(o.user_ids, o.versions) AS x(id, v)
    GROUP BY st.store, x.id),
i AS (
    INSERT INTO profile_catchup AS c (store, user_id, version, last_error)
    SELECT store, id, v, 'owed by a writer that did not finish (recovered from the outbox)' FROM u ORDER BY store, id
    ON CONFLICT (store, user_id) DO UPDATE SET
        version = GREATEST(c.version, EXCLUDED.version), last_failed_at = now())
SELECT count(*) FROM u`, age, limit).Scan(&n)
	})
	return n, err
}

// OweAll implements ingest.CatchupLog, in pages of 50,000 user IDs so no
// statement nears the statement timeout on a large table.
func (s *Store) OweAll(ctx context.Context, store, reason string) (int64, error) {
	var total, after int64
	for {
		var n, last int64
		err := retryDeadlock(ctx, func() error {
			return s.pool.QueryRow(ctx, `
WITH page AS (SELECT user_id, version FROM profiles WHERE NOT deleted AND user_id > $3 ORDER BY user_id LIMIT 50000),
i AS (
    INSERT INTO profile_catchup AS c (store, user_id, version, last_error)
    SELECT $1, user_id, version, $2 FROM page ORDER BY user_id
    ON CONFLICT (store, user_id) DO UPDATE SET
        version = GREATEST(c.version, EXCLUDED.version), last_error = EXCLUDED.last_error, last_failed_at = now())
SELECT count(*), coalesce(max(user_id), 0) FROM page`, store, reason, after).Scan(&n, &last)
		})
		after = max(after, last)
		if err != nil || n == 0 {
			return total, err
		}
		total += n
	}
}

// Reject implements ingest.CatchupLog.
func (s *Store) Reject(ctx context.Context, store string, rejected []ingest.Rejection) error {
	ids, versions, reasons := make([]int64, len(rejected)), make([]int64, len(rejected)), make([]string, len(rejected))
	for i, r := range rejected {
		ids[i], versions[i], reasons[i] = r.UserID, r.Version, r.Reason
	}
	_, err := s.pool.Exec(ctx, `
WITH r AS (
    INSERT INTO profile_rejects AS x (store, user_id, version, reason)
    SELECT DISTINCT ON (u.id) $1, u.id, u.v, u.reason FROM unnest($2::bigint[], $3::bigint[], $4::text[]) AS u(id, v, reason) ORDER BY u.id, u.v DESC
    ON CONFLICT (store, user_id) DO UPDATE SET version = EXCLUDED.version, reason = EXCLUDED.reason, rejected_at = now()
    RETURNING user_id, version)
DELETE FROM profile_catchup c USING r WHERE c.store = $1 AND c.user_id = r.user_id AND c.version <= r.version`, store, ids, versions, reasons)
	return err
}

// Count implements ingest.CatchupLog.
func (s *Store) Count(ctx context.Context, store string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM profile_catchup WHERE store = $1`, store).Scan(&n)
	return n, err
}

// EstimateRows is Postgres's estimate of the profiles table's row count
// (pg_class.reltuples, kept by ANALYZE and autovacuum; 0 when never
// analysed). Sizing the read path's filter needs no exact count.
func (s *Store) EstimateRows(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'profiles'::regclass`).Scan(&n)
	return n, err
}

// ScanIDs streams every user ID (tombstones included) to fn in slices of
// up to 8192, in one query; fn must not keep the slice.
func (s *Store) ScanIDs(ctx context.Context, fn func(ids []int64) error) error {
	return StreamIDs(ctx, s.pool, `SELECT user_id FROM profiles`, fn)
}

// StreamIDs runs query, whose rows are one bigint each, and streams the
// values to fn in slices of up to 8192; fn must not keep the slice.
func StreamIDs(ctx context.Context, pool *pgxpool.Pool, query string, fn func(ids []int64) error, args ...any) error {
	rows, err := pool.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	ids := make([]int64, 0, 8192)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		if ids = append(ids, id); len(ids) == cap(ids) {
			if err := fn(ids); err != nil {
				return err
			}
			ids = ids[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(ids) > 0 {
		return fn(ids)
	}
	return nil
}

// Head is a row's identity, version and digest without its content.
type Head struct {
	UserID  int64
	Version int64
	Digest  int64
	Deleted bool
}

// ScanHeads calls fn with the heads of rows with user_id > after, in
// user_id order, in pages of limit.
func (s *Store) ScanHeads(ctx context.Context, after int64, limit int, fn func([]Head) error) error {
	for {
		rows, err := s.pool.Query(ctx, `SELECT user_id, version, digest, deleted FROM profiles WHERE user_id > $1 ORDER BY user_id LIMIT $2`, after, limit)
		if err != nil {
			return err
		}
		var page []Head
		for rows.Next() {
			var h Head
			if err := rows.Scan(&h.UserID, &h.Version, &h.Digest, &h.Deleted); err != nil {
				rows.Close()
				return err
			}
			page = append(page, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(page) == 0 {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		after = page[len(page)-1].UserID
	}
}

// CountLive counts the live (not deleted) profiles.
func (s *Store) CountLive(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM profiles WHERE NOT deleted`).Scan(&n)
	return n, err
}

// NextBound returns the upper bound (inclusive) of the next segment after
// `after`: the user_id of the size-th row above it (tombstones count), and
// how many rows that segment holds; n is 0 past the last row.
func (s *Store) NextBound(ctx context.Context, after int64, size int) (hi int64, n int, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(max(user_id), 0), count(*) FROM (SELECT user_id FROM profiles WHERE user_id > $1 ORDER BY user_id LIMIT $2) s`,
		after, size).Scan(&hi, &n)
	return hi, n, err
}

// Bounds returns the upper bounds of up to n consecutive segments of
// size rows each (tombstones included) after the key `after`, in one
// index-only pass; fewer than n means the rows ran out (the rest after the
// last bound is a partial segment, which the caller closes).
func (s *Store) Bounds(ctx context.Context, after int64, size, n int) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id FROM (
	    SELECT user_id, row_number() OVER (ORDER BY user_id) AS rn
	    FROM (SELECT user_id FROM profiles WHERE user_id > $1 ORDER BY user_id LIMIT $2) s) t
	WHERE rn % $3 = 0 ORDER BY user_id`, after, size*n, size)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// SegmentSums computes, inside Postgres, the ingest.SegmentSum of the
// live rows of each segment (bounds[i], bounds[i+1]]: one grouped
// aggregate over the key range, the segment hash computed from the digest
// and version columns exactly as ingest.SegmentHash does.
func (s *Store) SegmentSums(ctx context.Context, bounds []int64) ([]ingest.SegmentSum, error) {
	n := len(bounds) - 1
	if n < 1 {
		return nil, nil
	}
	thresholds := make([]int64, n)
	for i := range thresholds {
		thresholds[i] = bounds[i] + 1 // width_bucket's buckets are [t_j, t_j+1)
	}
	rows, err := s.pool.Query(ctx, `SELECT width_bucket(user_id, $1::bigint[]), count(*),
	    sum(h & 4294967295)::bigint, sum((h >> 32) & 4294967295)::bigint
	FROM (SELECT user_id, digest # ((version << 32) | ((version >> 32) & 4294967295)) AS h
	      FROM profiles WHERE user_id > $2 AND user_id <= $3 AND NOT deleted) t
	GROUP BY 1`, thresholds, bounds[0], bounds[n])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]ingest.SegmentSum, n)
	for rows.Next() {
		var b int
		var sum ingest.SegmentSum
		var h0, h1 int64
		if err := rows.Scan(&b, &sum.Records, &h0, &h1); err != nil {
			return nil, err
		}
		if b < 1 || b > n {
			return nil, fmt.Errorf("segment sums: bucket %d outside 1..%d", b, n)
		}
		sum.Hashed, sum.H0, sum.H1 = sum.Records, uint64(h0), uint64(h1)
		out[b-1] = sum
	}
	return out, rows.Err()
}

// HeadsBetween returns the heads of rows with lo <= user_id <= hi,
// tombstones included.
func (s *Store) HeadsBetween(ctx context.Context, lo, hi int64) ([]Head, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, version, digest, deleted FROM profiles WHERE user_id BETWEEN $1 AND $2`, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Head
	for rows.Next() {
		var h Head
		if err := rows.Scan(&h.UserID, &h.Version, &h.Digest, &h.Deleted); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// WatchBaseline keeps a store watch's last look in table store_watch, so
// that the next leader's watch compares against it (redis.Baseline).
type WatchBaseline struct {
	pool  *pgxpool.Pool
	store string
}

// NewWatchBaseline returns the baseline of store's watch.
func NewWatchBaseline(pool *pgxpool.Pool, store string) *WatchBaseline {
	return &WatchBaseline{pool: pool, store: store}
}

// Load returns the last look saved; ok is false when none was.
func (b *WatchBaseline) Load(ctx context.Context) (runID, token string, ok bool, err error) {
	err = b.pool.QueryRow(ctx, `SELECT run_id, token FROM store_watch WHERE store = $1`, b.store).Scan(&runID, &token)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", false, nil
	}
	return runID, token, err == nil, err
}

// Save records a look.
func (b *WatchBaseline) Save(ctx context.Context, runID, token string) error {
	_, err := b.pool.Exec(ctx, `INSERT INTO store_watch (store, run_id, token) VALUES ($1, $2, $3)
		ON CONFLICT (store) DO UPDATE SET run_id = excluded.run_id, token = excluded.token, updated_at = now()`, b.store, runID, token)
	return err
}

// GetTraced is Get with the trace of each row's last write through triad
// (hex), for the rows still what that write left: a row another writer
// changed since has another digest, and no trace is claimed for it.
func (s *Store) GetTraced(ctx context.Context, ids []int64) ([]*ingest.Profile, map[int64]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+`, CASE WHEN write_digest = digest THEN encode(write_trace, 'hex') END
		FROM profiles WHERE user_id = ANY($1::bigint[])`, ids)
	if err != nil {
		return nil, nil, err
	}
	traces := map[int64]string{}
	out, err := scanTraced(rows, traces)
	return out, traces, err
}

// TraceWrites returns the batches trace wrote (hex trace ID), oldest
// first, with at most limit users in all.
func (s *Store) TraceWrites(ctx context.Context, trace []byte, limit int) ([]ingest.TraceWrite, error) {
	rows, err := s.pool.Query(ctx, `SELECT encode(span_id, 'hex'), written_at, user_ids[1:$2], versions[1:$2]
		FROM profile_write_traces WHERE trace_id = $1 ORDER BY written_at LIMIT $2`, trace, limit)
	if err != nil {
		return nil, fmt.Errorf("trace writes: %w", err)
	}
	var out []ingest.TraceWrite
	var w ingest.TraceWrite
	n := 0
	_, err = pgx.ForEachRow(rows, []any{&w.SpanID, &w.WrittenAt, &w.UserIDs, &w.Versions}, func() error {
		if n >= limit {
			return nil
		}
		if n+len(w.UserIDs) > limit {
			w.UserIDs, w.Versions = w.UserIDs[:limit-n], w.Versions[:limit-n]
		}
		n += len(w.UserIDs)
		out = append(out, w)
		w = ingest.TraceWrite{}
		return nil
	})
	return out, err
}

// PurgeWriteTraces drops the batch records of traced writes older than
// cutoff (the spans they point to are gone by then).
func (s *Store) PurgeWriteTraces(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM profile_write_traces WHERE written_at < $1`, cutoff)
	return tag.RowsAffected(), err
}
