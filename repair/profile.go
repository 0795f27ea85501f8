package repair

import (
	"context"
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
		{Reader: profileReader{store: "redis", read: p.redis.GetMany}, CacheAside: true},
		{Reader: profileReader{store: "elasticsearch", read: p.es.GetMany}},
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
	rec := Record{Present: true, Deleted: p.Deleted, Version: p.Version, Digest: p.Digest, Fields: map[string][]byte{}}
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
