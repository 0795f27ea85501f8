package repair

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/triad-dev/triad/ingest"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	repaires "github.com/triad-dev/triad/repair/elasticsearch"
	repairredis "github.com/triad-dev/triad/repair/redis"
)

// EntityConfig describes an entity checked by configuration (key
// `repair.entities`): where its records live in each store and which
// fields count. Keys are positive 64-bit integers.
type EntityConfig struct {
	Name     string `yaml:"name"`
	Postgres struct {
		Table   string `yaml:"table"`
		Key     string `yaml:"key"`
		Version string `yaml:"version"`
		// Deleted names a boolean tombstone column ("": rows are deleted).
		Deleted string `yaml:"deleted"`
	} `yaml:"postgres"`
	// Fields are the columns that count; type time compares timestamps as
	// microseconds since the epoch whatever their text form in each store.
	Fields []FieldConfig `yaml:"fields"`
	Redis  struct {
		// Key is the key template; {id} is replaced by the key, and the
		// Redis key prefix (profile_cache.key_prefix) is prepended.
		Key string `yaml:"key"`
		// Encoding: json (a JSON object string) or hash (one hash field per
		// field, values JSON or plain strings).
		Encoding string `yaml:"encoding"`
		// CacheAside: keys may be absent (a cache filled on reads).
		CacheAside bool          `yaml:"cache_aside"`
		TTL        time.Duration `yaml:"ttl"` // repairs set it on keys they write
	} `yaml:"redis"`
	Elasticsearch struct {
		// Index is the index or alias (the index prefix is prepended).
		Index string `yaml:"index"`
		// SegmentHash: documents carry sweep_h0/sweep_h1 (written by
		// triad), so sweeps sum segments inside Elasticsearch.
		SegmentHash bool `yaml:"segment_hash"`
	} `yaml:"elasticsearch"`
}

// FieldConfig is one counted field.
type FieldConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // json (default) or time
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Validate reports an invalid key of the entity (its names are written
// into SQL, keys and queries: identifiers only).
func (c EntityConfig) Validate() error {
	for what, v := range map[string]string{"name": c.Name, "postgres.table": c.Postgres.Table, "postgres.key": c.Postgres.Key, "postgres.version": c.Postgres.Version} {
		if !identifier.MatchString(v) {
			return fmt.Errorf("%s: want a lower-case identifier, got %q", what, v)
		}
	}
	if c.Postgres.Deleted != "" && !identifier.MatchString(c.Postgres.Deleted) {
		return fmt.Errorf("postgres.deleted: want a lower-case identifier, got %q", c.Postgres.Deleted)
	}
	if c.Name == "profile" {
		return errors.New("name: profile is built in")
	}
	if len(c.Fields) == 0 {
		return errors.New("fields: at least one")
	}
	seen := map[string]bool{c.Postgres.Key: true, c.Postgres.Version: true}
	for i, f := range c.Fields {
		if !identifier.MatchString(f.Name) || seen[f.Name] {
			return fmt.Errorf("fields[%d]: want a distinct lower-case identifier other than the key and version, got %q", i, f.Name)
		}
		seen[f.Name] = true
		if f.Type != "" && f.Type != "json" && f.Type != "time" {
			return fmt.Errorf("fields[%d].type: json or time, got %q", i, f.Type)
		}
	}
	if c.Redis.Key != "" && !strings.Contains(c.Redis.Key, "{id}") {
		return fmt.Errorf("redis.key: the template needs {id}, got %q", c.Redis.Key)
	}
	if c.Redis.Key != "" && c.Redis.Encoding != "json" && c.Redis.Encoding != "hash" {
		return fmt.Errorf("redis.encoding: json or hash, got %q", c.Redis.Encoding)
	}
	if c.Redis.Key == "" && c.Elasticsearch.Index == "" {
		return errors.New("no derived store: give redis.key or elasticsearch.index")
	}
	return nil
}

// OrderEntity is the configuration of the `order` entity (migration
// 00007_orders.sql, `triad loadgen --entity order`), which repair.entities
// lists by default: a store layout unlike the profile's (a JSON string in
// Redis written on every change, not a cache; its own index).
func OrderEntity() EntityConfig {
	var c EntityConfig
	c.Name = "order"
	c.Postgres.Table, c.Postgres.Key, c.Postgres.Version, c.Postgres.Deleted = "orders", "order_id", "version", "deleted"
	c.Fields = []FieldConfig{{Name: "user_id"}, {Name: "status"}, {Name: "total_cents"}, {Name: "currency"}, {Name: "items"}, {Name: "updated_at", Type: "time"}}
	c.Redis.Key, c.Redis.Encoding = "order:{id}", "json"
	c.Elasticsearch.Index, c.Elasticsearch.SegmentHash = "orders", true
	return c
}

// Table is an entity described by an EntityConfig: a Postgres table, a
// Redis key template and an Elasticsearch index. Derived stores hold no
// digest of their own: it is computed from their data (digest version 1
// of the canonical record: the first 8 bytes of SHA-256 over the jsonb
// text of {version, fields...}, which Postgres computes in SQL too).
type Table struct {
	cfg         EntityConfig
	rows        TableRows
	rdb         goredis.UniversalClient
	redisPrefix string
	es          *repaires.Index
	names       []string // counted field names
	derived     []Derived
	// trustSums: sweeps may compare the index's stored segment hash sums
	// (labels triad wrote) instead of reading documents. Off: another
	// writer's change that keeps them would pass unseen, and configured
	// entities have no checkpoint that proves documents unchanged.
	trustSums bool
}

// NewTable returns the configured entity on its primary's rows
// (repair/postgres TableRows); rdb or es may be nil when the entity has no
// such store.
func NewTable(cfg EntityConfig, rows TableRows, rdb goredis.UniversalClient, redisPrefix string, es *repaires.Index) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("entity %s: %w", cfg.Name, err)
	}
	t := &Table{cfg: cfg, rows: rows, rdb: rdb, redisPrefix: redisPrefix, es: es}
	for _, f := range cfg.Fields {
		t.names = append(t.names, f.Name)
	}
	t.derived = t.derivedStores()
	return t, nil
}

// TableRows is a configured entity's primary store: the rows of its
// table, read and written by key (repair/postgres). Safe for concurrent
// use.
type TableRows interface {
	// Rows reads the rows of ids (absent ids are not in the result).
	Rows(ctx context.Context, ids []int64) ([]Row, error)
	// Bounds, Heads, Keys and Sums are Ranged's Bounds, PrimaryHeads and
	// PrimaryKeys and Digested's PrimarySums.
	Bounds(ctx context.Context, after, hi int64, size, n int) ([]int64, error)
	Heads(ctx context.Context, lo, hi int64) (map[int64]Head, error)
	Keys(ctx context.Context, fn func(keys []int64) error) error
	Sums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error)
	// Upsert writes documents (JSON objects with the key, the version and
	// the fields), each only over an older version, and returns the keys
	// it wrote.
	Upsert(ctx context.Context, docs [][]byte) ([]int64, error)
}

// Row is one row as the primary holds it: its digest (digest version 1,
// computed by the store from the row's content) and its fields as JSON
// (a time as microseconds since the epoch).
type Row struct {
	ID, Version int64
	Deleted     bool
	Digest      int64
	Fields      map[string]json.RawMessage
}

// Name implements Entity.
func (t *Table) Name() string { return t.cfg.Name }

// ParseKey implements Entity.
func (t *Table) ParseKey(s string) (string, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return "", fmt.Errorf("%w: a %s key is a positive 64-bit integer, got %q", ErrBadKey, t.cfg.Name, s)
	}
	return strconv.FormatInt(id, 10), nil
}

// FieldNames implements Entity.
func (t *Table) FieldNames() []string { return t.names }

// Digest computes digest version 1 of a canonical record.
func (t *Table) Digest(version int64, fields map[string][]byte) int64 {
	obj := make([]byte, 0, 256)
	obj = append(obj, `{"version":`...)
	obj = strconv.AppendInt(obj, version, 10)
	for _, n := range t.names {
		obj = append(obj, ',')
		obj = strconv.AppendQuote(obj, n)
		obj = append(obj, ':')
		if v, ok := fields[n]; ok {
			obj = append(obj, v...)
		} else {
			obj = append(obj, "null"...)
		}
	}
	obj = append(obj, '}')
	c, err := ingest.CanonicalJSON(nil, obj)
	if err != nil {
		return 0
	}
	sum := sha256.Sum256(c)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// canonical turns a store's value of field f into its canonical form: a
// time as microseconds since the epoch, anything else as canonical JSON
// (a value that is not JSON, as hash fields often are, is a string).
func canonical(f FieldConfig, raw []byte) ([]byte, error) {
	if raw == nil {
		return []byte("null"), nil
	}
	if f.Type == "time" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			raw = []byte(s)
		}
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return strconv.AppendInt(nil, n, 10), nil
		}
		if string(raw) == "null" {
			return []byte("null"), nil
		}
		ts, err := time.Parse(time.RFC3339Nano, string(raw))
		if err != nil {
			return nil, fmt.Errorf("field %s: not a time: %q", f.Name, raw)
		}
		return strconv.AppendInt(nil, ts.UnixMicro(), 10), nil
	}
	if c, err := ingest.CanonicalJSON(nil, raw); err == nil {
		return c, nil
	}
	return ingest.CanonicalJSON(nil, strconv.AppendQuote(nil, string(raw)))
}

// record builds the canonical record of a JSON object holding the version
// (under the version column's name) and the fields.
func (t *Table) record(obj map[string]json.RawMessage, raw any) (Record, error) {
	rec := Record{Present: true, Fields: map[string][]byte{}, Raw: raw}
	v, ok := obj[t.cfg.Postgres.Version]
	if !ok {
		return rec, fmt.Errorf("%s: missing", t.cfg.Postgres.Version)
	}
	{
		if err := json.Unmarshal(v, &rec.Version); err != nil {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return rec, fmt.Errorf("version: %s", v)
			}
			if rec.Version, err = strconv.ParseInt(s, 10, 64); err != nil {
				return rec, fmt.Errorf("version: %s", v)
			}
		}
	}
	for _, f := range t.cfg.Fields {
		raw, ok := obj[f.Name]
		if !ok {
			return rec, fmt.Errorf("%s: missing", f.Name)
		}
		c, err := canonical(f, raw)
		if err != nil {
			return rec, err
		}
		rec.Fields[f.Name] = c
	}
	rec.Digest = t.Digest(rec.Version, rec.Fields)
	rec.Computed = rec.Digest
	return rec, nil
}

// Primary implements Entity.
func (t *Table) Primary() Reader { return tableReader{"postgres", t.readPG} }

// Derived implements Entity: Redis (priority high), then Elasticsearch.
func (t *Table) Derived() []Derived { return t.derived }

func (t *Table) derivedStores() []Derived {
	var out []Derived
	if t.rdb != nil && t.cfg.Redis.Key != "" {
		d := Derived{Reader: tableReader{"redis", t.readRedis}, CacheAside: t.cfg.Redis.CacheAside, Priority: "high"}
		d.Fixer = tableRedisFixer{t}
		out = append(out, d)
	}
	if t.es != nil && t.cfg.Elasticsearch.Index != "" {
		out = append(out, Derived{Reader: tableReader{"elasticsearch", t.readES}, Priority: "medium", Fixer: tableESFixer{t}})
	}
	return out
}

type tableReader struct {
	store string
	read  func(ctx context.Context, ids []int64) (map[string]Record, error)
}

func (r tableReader) Store() string { return r.store }

func (r tableReader) Read(ctx context.Context, keys []string) (map[string]Record, error) {
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

func (t *Table) readPG(ctx context.Context, ids []int64) (map[string]Record, error) {
	rows, err := t.rows.Rows(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(rows))
	for _, r := range rows {
		rec := Record{Present: true, Version: r.Version, Deleted: r.Deleted, Digest: r.Digest, Fields: map[string][]byte{}}
		for _, f := range t.cfg.Fields {
			c, err := ingest.CanonicalJSON(nil, r.Fields[f.Name])
			if err != nil {
				return nil, fmt.Errorf("row %d: field %s: %w", r.ID, f.Name, err)
			}
			rec.Fields[f.Name] = c
		}
		rec.Computed = t.Digest(rec.Version, rec.Fields)
		out[strconv.FormatInt(r.ID, 10)] = rec
	}
	return out, nil
}

// RedisKey is the Redis key of id.
func (t *Table) RedisKey(id int64) string {
	return t.redisPrefix + strings.ReplaceAll(t.cfg.Redis.Key, "{id}", strconv.FormatInt(id, 10))
}

func (t *Table) readRedis(ctx context.Context, ids []int64) (map[string]Record, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = t.RedisKey(id)
	}
	vals, err := redisstore.ReadValues(ctx, t.rdb, keys)
	if err != nil {
		return nil, err
	}
	want := "string"
	if t.cfg.Redis.Encoding == "hash" {
		want = "hash"
	}
	out := map[string]Record{}
	for i, v := range vals {
		if !v.Present() {
			continue
		}
		key := strconv.FormatInt(ids[i], 10)
		corrupt := func(why string) {
			out[key] = Record{Present: true, Corrupt: fmt.Sprintf("%s: %s (value of %d bytes)", keys[i], why, v.Bytes), Bytes: v.Bytes, Raw: v, RawText: redisText(v)}
		}
		if v.Oversize {
			corrupt(fmt.Sprintf("a %s over the %d-byte read bound: not read", v.Type, redisstore.MaxValueBytes))
			continue
		}
		if v.Type != want {
			corrupt("a " + v.Type + " where a " + want + " belongs")
			continue
		}
		var obj map[string]json.RawMessage
		if want == "string" {
			if err := json.Unmarshal([]byte(v.Str), &obj); err != nil || obj == nil {
				corrupt("not a JSON object")
				continue
			}
		} else {
			obj = make(map[string]json.RawMessage, len(v.Hash))
			for k, val := range v.Hash {
				obj[k] = json.RawMessage(val)
			}
		}
		rec, err := t.record(obj, v)
		if err == nil {
			err = t.unknownFields(obj)
		}
		if err != nil {
			corrupt(err.Error())
			continue
		}
		rec.Bytes = v.Bytes
		out[key] = rec
	}
	return out, nil
}

func (t *Table) readES(ctx context.Context, ids []int64) (map[string]Record, error) {
	docs, err := t.es.Get(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(docs))
	for id, d := range docs {
		out[strconv.FormatInt(id, 10)] = t.docRecord(id, d)
	}
	return out, nil
}

// docRecord is an index document as a record: corrupt when it does not
// decode (never an error of the read).
func (t *Table) docRecord(id int64, d repaires.Doc) Record {
	rec, err := t.record(d.Source, d.Meta)
	if err == nil && d.Source == nil {
		err = errors.New("no _source")
	}
	if err == nil {
		err = t.unknownFields(d.Source)
	}
	if err != nil {
		raw, _ := json.Marshal(d.Source) // its fields as stored, sorted by name
		return Record{Present: true, Corrupt: fmt.Sprintf("%s %d in elasticsearch: %s", t.cfg.Name, id, err), Bytes: d.Size, Raw: d.Meta,
			RawText: clip(string(raw), len(raw))}
	}
	rec.Bytes = d.Size
	return rec
}

// unknownFields refuses fields a document of this entity does not have.
func (t *Table) unknownFields(src map[string]json.RawMessage) error {
	for k := range src {
		switch k {
		case t.cfg.Postgres.Key, t.cfg.Postgres.Version, "sweep_h0", "sweep_h1":
			continue
		}
		if !slices.Contains(t.names, k) {
			return fmt.Errorf("unknown field %q", k)
		}
	}
	return nil
}

// Document is the JSON object written to Redis and Elasticsearch for the
// primary's record: the key, the version and the fields (times as
// RFC 3339), plus, for the index, the segment hash halves.
func (t *Table) Document(key int64, rec Record, index bool) []byte {
	obj := make([]byte, 0, 256)
	obj = append(obj, '{')
	obj = strconv.AppendQuote(obj, t.cfg.Postgres.Key)
	obj = append(obj, ':')
	obj = strconv.AppendInt(obj, key, 10)
	obj = append(obj, ',')
	obj = strconv.AppendQuote(obj, t.cfg.Postgres.Version)
	obj = append(obj, ':')
	obj = strconv.AppendInt(obj, rec.Version, 10)
	for _, f := range t.cfg.Fields {
		obj = append(obj, ',')
		obj = strconv.AppendQuote(obj, f.Name)
		obj = append(obj, ':')
		v := rec.Fields[f.Name]
		if f.Type == "time" && string(v) != "null" {
			us, _ := strconv.ParseInt(string(v), 10, 64)
			obj = strconv.AppendQuote(obj, time.UnixMicro(us).UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
			continue
		}
		obj = append(obj, v...)
	}
	if index && t.cfg.Elasticsearch.SegmentHash {
		h := ingest.SegmentHash(rec.Version, rec.Digest)
		obj = fmt.Appendf(obj, `,"sweep_h0":%d,"sweep_h1":%d`, h&0xFFFFFFFF, h>>32)
	}
	return append(obj, '}')
}

// tableRedisFixer replaces the key only if it still holds exactly the
// value a check read (whatever its form), or is still absent, in one Lua
// call (redisstore.CompareAndSwap).
type tableRedisFixer struct{ t *Table }

func (f tableRedisFixer) swap(ctx context.Context, key string, observed Record, sw redisstore.Swap) (bool, string, error) {
	id, err := strconv.ParseInt(key, 10, 64)
	if err != nil {
		return false, "", fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	if observed.Present {
		sw.Observed, _ = observed.Raw.(redisstore.Value)
	}
	sw.TTLms = f.t.cfg.Redis.TTL.Milliseconds()
	ok, now, err := redisstore.CompareAndSwap(ctx, f.t.rdb, f.t.RedisKey(id), sw)
	return ok, redisNow(now), err
}

func (f tableRedisFixer) Put(ctx context.Context, key string, observed, p Record) (bool, string, error) {
	id, _ := strconv.ParseInt(key, 10, 64)
	doc := f.t.Document(id, p, false)
	if f.t.cfg.Redis.Encoding == "json" {
		return f.swap(ctx, key, observed, redisstore.Swap{Op: "string", String: string(doc)})
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(doc, &obj); err != nil {
		return false, "", err
	}
	sw := redisstore.Swap{Op: "hash"}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		v := []byte(obj[k])
		var str string
		if json.Unmarshal(v, &str) == nil {
			v = []byte(str) // strings are stored plain in hash fields
		}
		sw.Hash = append(sw.Hash, k, string(v))
	}
	return f.swap(ctx, key, observed, sw)
}

func (f tableRedisFixer) Delete(ctx context.Context, key string, observed Record) (bool, string, error) {
	return f.swap(ctx, key, observed, redisstore.Swap{Op: "del"})
}

// tableESFixer writes through external versions (never over a newer
// version) and deletes only the document a check read (its sequence
// number and primary term).
type tableESFixer struct{ t *Table }

func (f tableESFixer) Put(ctx context.Context, key string, observed, p Record) (bool, string, error) {
	id, _ := strconv.ParseInt(key, 10, 64)
	m, _ := observed.Raw.(repaires.Meta)
	doc := f.t.Document(id, p, true)
	var ok bool
	var err error
	switch {
	case !observed.Present:
		ok, err = f.t.es.Put(ctx, id, doc, p.Version, false)
	case observed.Corrupt == "" && m.Version == observed.Version && p.Version >= observed.Version:
		// The document follows the record version: same version, other
		// content rewrites that version; otherwise only a newer one goes in.
		ok, err = f.t.es.Put(ctx, id, doc, p.Version, p.Version == observed.Version)
	default:
		// Another writer's internally versioned write (or garbage): guard
		// on the exact document read.
		ok, err = f.t.es.PutIf(ctx, id, doc, m)
	}
	if err != nil || ok {
		return ok, "", err
	}
	docs, gerr := f.t.es.Get(ctx, []int64{id})
	switch {
	case gerr != nil:
		return false, "unknown (" + gerr.Error() + ")", nil
	case len(docs) == 0 && !observed.Present:
		return false, "", errors.New("elasticsearch refused the version: " + tombstoneNote)
	case len(docs) == 0:
		return false, "nothing (deleted)", nil
	}
	now := docs[id]
	return false, fmt.Sprintf("_version %d, _seq_no %d", now.Meta.Version, now.Meta.SeqNo), nil
}

func (f tableESFixer) Delete(ctx context.Context, key string, observed Record) (bool, string, error) {
	id, _ := strconv.ParseInt(key, 10, 64)
	m, _ := observed.Raw.(repaires.Meta)
	ok, err := f.t.es.Delete(ctx, id, m)
	if err != nil || ok {
		return ok, "", err
	}
	return false, "another document (or none)", nil
}

// Table implements Digested.
var _ Digested = (*Table)(nil)

// Bounds implements Ranged.
func (t *Table) Bounds(ctx context.Context, after, hi int64, size, n int) ([]int64, error) {
	return t.rows.Bounds(ctx, after, hi, size, n)
}

// PrimaryHeads implements Ranged.
func (t *Table) PrimaryHeads(ctx context.Context, lo, hi int64) (map[int64]Head, error) {
	return t.rows.Heads(ctx, lo, hi)
}

// DerivedHeads implements Ranged: Redis by the primary's keys, the index
// by range.
func (t *Table) DerivedHeads(ctx context.Context, i int, lo, hi int64, keys []int64) (map[int64]Head, error) {
	d := t.Derived()
	if i >= len(d) {
		return nil, fmt.Errorf("%s has no derived store %d", t.cfg.Name, i)
	}
	var recs map[string]Record
	var err error
	switch d[i].Store() {
	case "redis":
		if len(keys) == 0 {
			return map[int64]Head{}, nil
		}
		recs, err = t.readRedis(ctx, keys)
	default:
		var docs map[int64]repaires.Doc
		if docs, err = t.es.Between(ctx, lo, hi, 2*MaxSegmentRows); err == nil {
			recs = make(map[string]Record, len(docs))
			for id, doc := range docs {
				recs[strconv.FormatInt(id, 10)] = t.docRecord(id, doc)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Head, len(recs))
	for k, r := range recs {
		id, _ := strconv.ParseInt(k, 10, 64)
		out[id] = Head{Present: true, Version: r.Version, Digest: r.Digest, Suspect: r.Corrupt != "" || r.LabelsLie}
	}
	return out, nil
}

// ScanDerived implements Ranged: Redis keys are listed with SCAN.
func (t *Table) ScanDerived(ctx context.Context, i int, fn func(keys []int64) error) (bool, error) {
	d := t.Derived()
	if i >= len(d) || d[i].Store() != "redis" {
		return false, nil
	}
	prefix, suffix, _ := strings.Cut(t.redisPrefix+t.cfg.Redis.Key, "{id}")
	return true, redisstore.ScanKeys(ctx, t.rdb, prefix, suffix, fn)
}

// PrimaryKeys implements Ranged.
func (t *Table) PrimaryKeys(ctx context.Context, fn func(keys []int64) error) error {
	return t.rows.Keys(ctx, fn)
}

// PrimarySums implements Digested.
func (t *Table) PrimarySums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error) {
	return t.rows.Sums(ctx, b)
}

// DerivedSums implements Digested: the index sums its stored segment
// hashes when configured to carry them.
func (t *Table) DerivedSums(ctx context.Context, i int, ranges [][2]int64) ([]ingest.SegmentSum, bool, error) {
	d := t.Derived()
	if i >= len(d) || d[i].Store() != "elasticsearch" || !t.cfg.Elasticsearch.SegmentHash || !t.trustSums {
		return nil, false, nil
	}
	sums, err := t.es.Sums(ctx, ranges)
	return sums, true, err
}

// Prepare implements Preparer.
func (t *Table) Prepare(ctx context.Context) error {
	if t.es == nil {
		return nil
	}
	return t.es.Refresh(ctx)
}

// WriteResult counts a Write.
type WriteResult struct {
	Applied, Stale int
}

// Write writes documents (JSON objects with the key, the version and the
// fields, as Document makes them) into every store of the entity, each
// write version-guarded: Postgres first (an upsert that applies only a
// newer version), then Redis (Lua: not over a newer version) and the index
// (external versions) for the rows Postgres took. For loadgen and demos:
// the platform's own services write their entities.
func (t *Table) Write(ctx context.Context, docs [][]byte) (WriteResult, error) {
	var res WriteResult
	if len(docs) == 0 {
		return res, nil
	}
	took, err := t.rows.Upsert(ctx, docs)
	if err != nil {
		return res, fmt.Errorf("write %s: postgres: %w", t.cfg.Name, err)
	}
	applied := make(map[int64]bool, len(took))
	for _, id := range took {
		applied[id] = true
	}
	res.Applied, res.Stale = len(took), len(docs)-len(took)
	var ids, versions []int64
	var index [][]byte
	pipe := t.rdbPipe()
	for _, doc := range docs {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(doc, &obj); err != nil {
			return res, err
		}
		var id int64
		if err := json.Unmarshal(obj[t.cfg.Postgres.Key], &id); err != nil || !applied[id] {
			continue
		}
		rec, err := t.record(obj, nil)
		if err != nil {
			return res, err
		}
		if pipe != nil {
			repairredis.PutJSON(ctx, pipe, t.RedisKey(id), t.cfg.Postgres.Version, rec.Version, t.Document(id, rec, false), t.cfg.Redis.TTL)
		}
		ids, versions, index = append(ids, id), append(versions, rec.Version), append(index, t.Document(id, rec, true))
	}
	if pipe != nil && len(ids) > 0 {
		if err := repairredis.LoadPutJSON(ctx, t.rdb); err != nil {
			return res, err
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return res, fmt.Errorf("write %s: redis: %w", t.cfg.Name, err)
		}
	}
	if t.es != nil && len(ids) > 0 {
		if _, err := t.es.Bulk(ctx, ids, versions, index); err != nil {
			return res, fmt.Errorf("write %s: elasticsearch: %w", t.cfg.Name, err)
		}
	}
	return res, nil
}

func (t *Table) rdbPipe() goredis.Pipeliner {
	if t.rdb == nil || t.cfg.Redis.Key == "" || t.cfg.Redis.Encoding != "json" {
		return nil
	}
	return t.rdb.Pipeline()
}
