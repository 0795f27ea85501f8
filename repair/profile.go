package repair

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// Profile is the built-in profile entity: Postgres `profiles` (the truth,
// tombstones included), Redis hashes of the served dataset version (a TTL
// cache written on ingest: absent keys are allowed, present ones must
// match) and Elasticsearch documents behind the alias.
type Profile struct {
	pg    *pgstore.Store
	redis *redisstore.Store
	es    *esstore.Store
}

// NewProfile returns the profile entity over the ingest stores.
func NewProfile(pg *pgstore.Store, redis *redisstore.Store, es *esstore.Store) *Profile {
	return &Profile{pg: pg, redis: redis, es: es}
}

// Name implements Entity.
func (*Profile) Name() string { return "profile" }

// ParseKey implements Entity: a positive 64-bit user ID.
func (*Profile) ParseKey(s string) (string, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return "", fmt.Errorf("%w: a profile key is a positive 64-bit user ID, got %q", ErrBadKey, s)
	}
	return strconv.FormatInt(id, 10), nil
}

// FieldNames implements Entity: updated_at and the attribute fields.
func (*Profile) FieldNames() []string { return profileFields }

var profileFields = append([]string{"updated_at"}, ingest.FieldNames[:]...)

// Primary implements Entity.
func (p *Profile) Primary() Reader {
	return profileReader{store: "postgres", read: func(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
		rows, err := p.pg.Get(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[int64]*ingest.Profile, len(rows))
		for _, r := range rows {
			out[r.UserID] = r
		}
		return out, nil
	}}
}

// Derived implements Entity.
func (p *Profile) Derived() []Derived {
	return []Derived{
		{Reader: profileReader{store: "redis", read: p.redis.GetMany}, CacheAside: true, Priority: "high", Fixer: redisFixer{p.redis}},
		{Reader: profileReader{store: "elasticsearch", read: p.es.GetMany}, Priority: "medium", Fixer: esFixer{p.es}},
	}
}

type profileReader struct {
	store string
	read  func(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error)
}

func (r profileReader) Store() string { return r.store }

func (r profileReader) Read(ctx context.Context, keys []string) (map[string]Record, error) {
	ids := make([]int64, len(keys))
	for i, k := range keys {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrBadKey, k)
		}
		ids[i] = id
	}
	got, err := r.read(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(got))
	for id, p := range got {
		out[strconv.FormatInt(id, 10)] = profileRecord(p)
	}
	return out, nil
}

// profileRecord is a profile in the canonical record form. updated_at
// counts as microseconds since the epoch (null when unknown), as in the
// digest document.
func profileRecord(p *ingest.Profile) Record {
	rec := Record{Present: true, Deleted: p.Deleted, Version: p.Version, Digest: p.Digest, Fields: map[string][]byte{}, Raw: p}
	rec.Computed, _ = p.ComputeDigest(nil)
	if p.UpdatedAt.IsZero() {
		rec.Fields["updated_at"] = []byte("null")
	} else {
		rec.Fields["updated_at"] = strconv.AppendInt(nil, p.UpdatedAt.UnixMicro(), 10)
	}
	if !p.Deleted {
		for i, name := range ingest.FieldNames {
			rec.Fields[name] = p.Field(i)
		}
	}
	return rec
}

func userID(key string) (int64, error) {
	id, err := strconv.ParseInt(key, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	return id, nil
}

// redisFixer compares and sets the served version's hash in one Lua call:
// it writes only if the hash still has the observed version and digest
// (or is still absent).
type redisFixer struct{ s *redisstore.Store }

func (f redisFixer) Put(ctx context.Context, key string, observed, p Record) (bool, error) {
	id, err := userID(key)
	if err != nil {
		return false, err
	}
	want, ok := p.Raw.(*ingest.Profile)
	if !ok {
		return false, fmt.Errorf("profile %s: no record to write", key)
	}
	return f.s.CompareAndSet(ctx, id, redisHead(observed), want)
}

func (f redisFixer) Delete(ctx context.Context, key string, observed Record) (bool, error) {
	id, err := userID(key)
	if err != nil {
		return false, err
	}
	return f.s.CompareAndSet(ctx, id, redisHead(observed), nil)
}

func redisHead(r Record) *redisstore.Head {
	if !r.Present {
		return nil
	}
	return &redisstore.Head{Version: r.Version, Digest: r.Digest}
}

// esFixer writes through external versions (a repair can never replace a
// newer version; the same version is rewritten with external_gte) and
// deletes only the document it observed (if_seq_no/if_primary_term).
type esFixer struct{ s *esstore.Store }

func (f esFixer) Put(ctx context.Context, key string, observed, p Record) (bool, error) {
	want, ok := p.Raw.(*ingest.Profile)
	if !ok {
		return false, fmt.Errorf("profile %s: no record to write", key)
	}
	// Same version, other content: rewrite that version; otherwise only a
	// newer version goes in.
	ok, err := f.s.IndexVersioned(ctx, want, observed.Present && observed.Version == want.Version)
	if err != nil || ok || observed.Present {
		return ok, err
	}
	// Refused although the document was absent: either a newer version was
	// written meanwhile (a real conflict), or a delete made behind triad's
	// back left a tombstone with a higher version, which Elasticsearch
	// keeps for index.gc_deletes (60 s by default).
	m, merr := f.s.GetMeta(ctx, want.UserID)
	if merr == nil && !m.Found {
		return false, errors.New("elasticsearch refused the version: a recent delete's tombstone blocks it until index.gc_deletes (60 s) expires; a later repair will write it")
	}
	return false, nil
}

func (f esFixer) Delete(ctx context.Context, key string, observed Record) (bool, error) {
	id, err := userID(key)
	if err != nil {
		return false, err
	}
	m, err := f.s.GetMeta(ctx, id)
	if err != nil || !m.Found {
		return false, err
	}
	if m.Version != observed.Version || m.Digest != observed.Digest {
		return false, nil // changed since the check
	}
	return f.s.DeleteIf(ctx, id, m)
}

// Profile implements Ranged.
var _ Ranged = (*Profile)(nil)

// Bounds implements Ranged.
func (p *Profile) Bounds(ctx context.Context, after, hi int64, size, n int) ([]int64, error) {
	b, err := p.pg.Bounds(ctx, after, size, n)
	if err != nil {
		return nil, err
	}
	for i, x := range b {
		if x >= hi {
			return append(b[:i], hi), nil
		}
	}
	return b, nil
}

// Profile implements Digested: Postgres and Elasticsearch sum segments
// themselves; Redis, a cache read by key, is read in pipelines.
var _ Digested = (*Profile)(nil)

// PrimarySums implements Digested.
func (p *Profile) PrimarySums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error) {
	return p.pg.SegmentSums(ctx, b)
}

// DerivedSums implements Digested.
func (p *Profile) DerivedSums(ctx context.Context, i int, ranges [][2]int64) ([]ingest.SegmentSum, bool, error) {
	if i != 1 {
		return nil, false, nil
	}
	sums, err := p.es.RangeSums(ctx, ranges)
	return sums, true, err
}

// PrimaryHeads implements Ranged.
func (p *Profile) PrimaryHeads(ctx context.Context, lo, hi int64) (map[int64]Head, error) {
	rows, err := p.pg.HeadsBetween(ctx, lo, hi)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Head, len(rows))
	for _, r := range rows {
		out[r.UserID] = Head{Present: true, Deleted: r.Deleted, Version: r.Version, Digest: r.Digest}
	}
	return out, nil
}

// DerivedHeads implements Ranged: Redis (0) by the primary's keys,
// Elasticsearch (1) by range.
func (p *Profile) DerivedHeads(ctx context.Context, i int, lo, hi int64, keys []int64) (map[int64]Head, error) {
	out := map[int64]Head{}
	switch i {
	case 0:
		if len(keys) == 0 {
			return out, nil
		}
		got, err := p.redis.Heads(ctx, keys)
		if err != nil {
			return nil, err
		}
		for k, h := range got {
			out[k] = Head{Present: true, Version: h.Version, Digest: h.Digest}
		}
	case 1:
		got, err := p.es.HeadsBetween(ctx, lo, hi, 2*MaxSegmentRows)
		if err != nil {
			return nil, err
		}
		for k, h := range got {
			out[k] = Head{Present: true, Version: h.Version, Digest: h.Digest}
		}
	default:
		return nil, fmt.Errorf("profile has no derived store %d", i)
	}
	return out, nil
}

// ScanDerived implements Ranged: Redis keys are listed with SCAN.
func (p *Profile) ScanDerived(ctx context.Context, i int, fn func(keys []int64) error) (bool, error) {
	if i != 0 {
		return false, nil
	}
	return true, p.redis.ScanIDs(ctx, fn)
}

// PrimaryKeys implements Ranged.
func (p *Profile) PrimaryKeys(ctx context.Context, fn func(keys []int64) error) error {
	return p.pg.ScanIDs(ctx, fn)
}

// Prepare implements Preparer: refresh the index so recent documents are
// searchable by range.
func (p *Profile) Prepare(ctx context.Context) error { return p.es.Refresh(ctx) }
