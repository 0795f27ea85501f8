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
	return profileReader{store: "postgres", read: func(ctx context.Context, ids []int64) (map[string]Record, error) {
		rows, traces, err := p.pg.GetTraced(ctx, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[string]Record, len(rows))
		for _, r := range rows {
			rec := profileRecord(r, r)
			rec.WriteTrace = traces[r.UserID]
			out[strconv.FormatInt(r.UserID, 10)] = rec
		}
		return out, nil
	}}
}

// Derived implements Entity.
func (p *Profile) Derived() []Derived {
	return []Derived{
		{Reader: profileReader{store: "redis", read: p.readRedis}, CacheAside: true, Priority: "high", Fixer: redisFixer{p.redis}},
		{Reader: profileReader{store: "elasticsearch", read: p.readES}, Priority: "medium", Fixer: esFixer{p.es, p.pg}},
	}
}

// readRedis reads the served version's keys as they are: a value that is
// not a profile hash is a corrupt record, never an error.
func (p *Profile) readRedis(ctx context.Context, ids []int64) (map[string]Record, error) {
	got, err := p.redis.ReadAt(ctx, p.redis.Serving(), ids, true)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(got))
	for id, c := range got {
		k := strconv.FormatInt(id, 10)
		if c.Err != nil {
			out[k] = Record{Present: true, Corrupt: c.Err.Error(), Bytes: c.Value.Bytes, Raw: c.Value, RawText: redisText(c.Value)}
			continue
		}
		rec := profileRecord(c.Profile, c.Value)
		rec.Bytes = c.Value.Bytes
		out[k] = rec
	}
	return out, nil
}

// readES reads the documents as they are, with their _seq_no (a repair's
// guard): a document that does not decode is a corrupt record.
func (p *Profile) readES(ctx context.Context, ids []int64) (map[string]Record, error) {
	docs, err := p.es.ReadDocs(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(docs))
	for id, d := range docs {
		k := strconv.FormatInt(id, 10)
		if d.Err != nil {
			out[k] = Record{Present: true, Corrupt: d.Err.Error(), Bytes: d.Bytes, Raw: d, RawText: clip(string(d.Source), d.Bytes)}
			continue
		}
		rec := profileRecord(d.Profile, d)
		rec.Computed, rec.LabelsLie, rec.Bytes = d.Computed, d.LabelsLie, d.Bytes
		out[k] = rec
	}
	return out, nil
}

type profileReader struct {
	store string
	read  func(ctx context.Context, ids []int64) (map[string]Record, error)
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
	return r.read(ctx, ids)
}

// profileRecord is a profile in the canonical record form; raw is the
// store's own value. updated_at counts as microseconds since the epoch
// (null when unknown), as in the digest document.
func profileRecord(p *ingest.Profile, raw any) Record {
	rec := Record{Present: true, Deleted: p.Deleted, Version: p.Version, Digest: p.Digest, Fields: map[string][]byte{}, Raw: raw}
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

// redisFixer compares and sets the served version's key in one Lua call:
// it writes only if the key still holds exactly the value observed (a
// profile hash, or whatever another writer left there), or is still
// absent.
type redisFixer struct{ s *redisstore.Store }

func observedValue(r Record) redisstore.Value {
	v, _ := r.Raw.(redisstore.Value)
	if !r.Present {
		return redisstore.Value{}
	}
	return v
}

func (f redisFixer) Put(ctx context.Context, key string, observed, p Record) (bool, string, error) {
	id, err := userID(key)
	if err != nil {
		return false, "", err
	}
	want, ok := p.Raw.(*ingest.Profile)
	if !ok {
		return false, "", fmt.Errorf("profile %s: no record to write", key)
	}
	ok, now, err := f.s.CompareAndSet(ctx, id, observedValue(observed), want)
	return ok, redisNow(now), err
}

func (f redisFixer) Delete(ctx context.Context, key string, observed Record) (bool, string, error) {
	id, err := userID(key)
	if err != nil {
		return false, "", err
	}
	ok, now, err := f.s.CompareAndSet(ctx, id, observedValue(observed), nil)
	return ok, redisNow(now), err
}

func redisNow(t string) string {
	if t == "" {
		return "nothing"
	}
	return "another " + t + " value"
}

// esFixer writes through external versions where the document follows
// the profile version (a repair can never replace a newer version; the
// same version is rewritten with external_gte), and through the exact
// document observed (if_seq_no/if_primary_term) where another writer's
// internally versioned write left _version past the profile version, or
// the document does not decode; deletes only the document it observed.
type esFixer struct {
	s  *esstore.Store
	pg *pgstore.Store
}

func (f esFixer) Put(ctx context.Context, key string, observed, p Record) (bool, string, error) {
	want, ok := p.Raw.(*ingest.Profile)
	if !ok {
		return false, "", fmt.Errorf("profile %s: no record to write", key)
	}
	doc, _ := observed.Raw.(esstore.Doc)
	var written bool
	var err error
	switch {
	case !observed.Present:
		written, err = f.s.IndexVersioned(ctx, want, false)
	case doc.Profile != nil && doc.ESVersion == doc.Profile.Version && want.Version >= doc.ESVersion:
		// Same version, other content: rewrite that version; otherwise only a
		// newer version goes in.
		written, err = f.s.IndexVersioned(ctx, want, want.Version == doc.ESVersion)
	default:
		written, err = f.s.IndexIf(ctx, want, doc.Guard())
	}
	if err != nil || written {
		return written, "", err
	}
	now := f.now(ctx, want.UserID, observed.Present)
	if now == tombstoneNote {
		// Not a newer write: a delete made with internal versioning left a
		// tombstone that refuses the external version. The document is
		// still absent, so it is created (refused if one appeared since).
		// Unless Postgres has moved on: triad's own delete leaves such a
		// tombstone too, after its Postgres tombstone, so the row is read
		// again first and a newer write is never undone.
		rows, err := f.pg.Get(ctx, []int64{want.UserID})
		if err != nil {
			return false, "", fmt.Errorf("profile %s: re-read before create: %w", key, err)
		}
		if len(rows) != 1 || rows[0].Deleted || rows[0].Version != want.Version {
			return false, "nothing (Postgres holds a newer write since the repair read it)", nil
		}
		if written, err = f.s.CreateIfAbsent(ctx, want); err != nil || written {
			return written, "", err
		}
		now = f.now(ctx, want.UserID, true)
	}
	return false, now, nil
}

const tombstoneNote = "nothing, but a recent delete's tombstone refuses this version"

// now describes the document as it is after a refused write.
func (f esFixer) now(ctx context.Context, id int64, wasPresent bool) string {
	docs, err := f.s.ReadDocs(ctx, []int64{id})
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	d, ok := docs[id]
	switch {
	case !ok && !wasPresent:
		// Refused although absent: a delete made behind triad's back left
		// a tombstone with a higher version, kept for index.gc_deletes.
		return tombstoneNote
	case !ok:
		return "nothing (deleted)"
	case d.Err != nil:
		return fmt.Sprintf("an invalid document (_seq_no %d)", d.SeqNo)
	}
	return fmt.Sprintf("version %d, _version %d, _seq_no %d", d.Profile.Version, d.ESVersion, d.SeqNo)
}

func (f esFixer) Delete(ctx context.Context, key string, observed Record) (bool, string, error) {
	id, err := userID(key)
	if err != nil {
		return false, "", err
	}
	doc, ok := observed.Raw.(esstore.Doc)
	if !ok || !observed.Present {
		return false, "", fmt.Errorf("profile %s: no observed document to delete", key)
	}
	done, err := f.s.DeleteDocIf(ctx, id, doc.Guard())
	if err != nil || done {
		return done, "", err
	}
	return false, f.now(ctx, id, true), nil
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

// Profile implements Digested: Postgres sums segments itself, from its
// generated digest column (content). Redis and Elasticsearch copies are
// read in full and their digests recomputed from content (Redis: one
// pipeline per batch of keys; Elasticsearch: a range scan of _source),
// then summed here: the index's stored segment hash halves are labels
// triad wrote, which another writer's change leaves as they were, so they
// never prove a segment consistent.
var _ Digested = (*Profile)(nil)

// PrimarySums implements Digested.
func (p *Profile) PrimarySums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error) {
	return p.pg.SegmentSums(ctx, b)
}

// DerivedSums implements Digested.
func (p *Profile) DerivedSums(context.Context, int, [][2]int64) ([]ingest.SegmentSum, bool, error) {
	return nil, false, nil
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
			out[k] = Head{Present: true, Version: h.Version, Digest: h.Digest, Suspect: h.Suspect}
		}
	case 1:
		got, err := p.es.HeadsBetween(ctx, lo, hi)
		if err != nil {
			return nil, err
		}
		for k, h := range got {
			out[k] = Head{Present: true, Version: h.Version, Digest: h.Digest, Suspect: h.Suspect}
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

// Profile implements Labelled, Checkpointed and Counted: Redis keys'
// stored v and d fields, the index's stored segment hash halves, and the
// index's _seq_no (every write to a document gets a new one, whoever
// makes it), so a sweep reads whole only the documents written since the
// checkpoint the last clean content-true sweep verified.
var (
	_ Checkpointed = (*Profile)(nil)
	_ Counted      = (*Profile)(nil)
)

// LabelSums implements Labelled: the index's stored sweep_h halves.
func (p *Profile) LabelSums(ctx context.Context, i int, ranges [][2]int64) ([]ingest.SegmentSum, bool, error) {
	if i != 1 {
		return nil, false, nil
	}
	sums, err := p.es.RangeSums(ctx, ranges)
	return sums, err == nil, err
}

// LabelHeads implements Labelled: Redis keys' stored v and d fields.
func (p *Profile) LabelHeads(ctx context.Context, i int, keys []int64) (map[int64]Head, bool, error) {
	if i != 0 {
		return nil, false, nil
	}
	if len(keys) == 0 {
		return map[int64]Head{}, true, nil
	}
	got, err := p.redis.Labels(ctx, keys)
	if err != nil {
		return nil, true, err
	}
	out := make(map[int64]Head, len(got))
	for k, h := range got {
		out[k] = Head{Present: true, Version: h.Version, Digest: h.Digest, Suspect: h.Suspect}
	}
	return out, true, nil
}

// CheckpointStore implements Checkpointed: Elasticsearch.
func (*Profile) CheckpointStore() int { return 1 }

// Checkpoint implements Checkpointed.
func (p *Profile) Checkpoint(ctx context.Context) (Checkpoint, error) {
	cp, err := p.es.Checkpoint(ctx)
	return Checkpoint{Index: cp.Index, UUID: cp.UUID, SeqNo: cp.SeqNo}, err
}

// Changed implements Checkpointed: documents written since are decoded
// whole; those that do not decode or whose labels lie are handed on.
func (p *Profile) Changed(ctx context.Context, since Checkpoint, fn func(keys []int64) error) (int64, error) {
	cp, err := p.es.Checkpoint(ctx)
	if err != nil {
		return 0, err
	}
	if cp.Index != since.Index || cp.UUID != since.UUID {
		return 0, fmt.Errorf("the alias now points at %s (%s), not %s (%s)", cp.Index, cp.UUID, since.Index, since.UUID)
	}
	return p.es.Changed(ctx, cp.Index, cp.Shards, since.SeqNo, func(docs []esstore.Doc) error {
		var bad []int64
		for _, d := range docs {
			if d.Err != nil || d.LabelsLie {
				bad = append(bad, d.ID)
			}
		}
		if len(bad) == 0 {
			return nil
		}
		return fn(bad)
	})
}

// CountDerived implements Counted: every key of the Redis database.
func (p *Profile) CountDerived(ctx context.Context, i int) (int64, bool, error) {
	if i != 0 {
		return 0, false, nil
	}
	n, err := p.redis.CountKeys(ctx)
	return n, err == nil, err
}

var _ Unkeyed = (*Profile)(nil)

// UnkeyedDerived implements Unkeyed: index documents without a user_id.
func (p *Profile) UnkeyedDerived(ctx context.Context, i, max int) ([]int64, int64, bool, error) {
	if i != 1 {
		return nil, 0, false, nil
	}
	ids, total, err := p.es.Unkeyed(ctx, max)
	if err != nil {
		return nil, 0, true, err
	}
	var keys []int64
	for _, id := range ids {
		if k, err := strconv.ParseInt(id, 10, 64); err == nil && k > 0 {
			keys = append(keys, k)
		}
	}
	return keys, total - int64(len(keys)), true, nil
}
