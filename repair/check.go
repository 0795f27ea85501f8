package repair

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Class is how a derived store's copy of a record compares with the
// primary's.
type Class string

// Classes, from the point of view of one derived store.
const (
	ClassOK            Class = "ok"             // same version, same content
	ClassAbsent        Class = "absent"         // absent everywhere (no such record)
	ClassAbsentAllowed Class = "absent_allowed" // absent from a cache-aside store; fine
	ClassMissing       Class = "missing"        // live in the primary, absent here
	ClassStale         Class = "stale"          // an older version than the primary's
	ClassAhead         Class = "ahead"          // a newer version than the primary's (written behind the primary)
	ClassOrphan        Class = "orphan"         // present here, absent from the primary
	ClassOrphanDeleted Class = "orphan_deleted" // present here, tombstoned in the primary
	ClassFieldMismatch Class = "field_mismatch" // same version, other content
	ClassCorrupt       Class = "corrupt"        // present, but not a valid record (wrong type, undecodable, missing or extra fields)
)

// Classes are every class, the consistent ones first.
var Classes = []Class{ClassOK, ClassAbsent, ClassAbsentAllowed, ClassMissing, ClassStale, ClassAhead, ClassOrphan,
	ClassOrphanDeleted, ClassFieldMismatch, ClassCorrupt}

// Drift is whether a class needs a repair.
func (c Class) Drift() bool {
	return c != ClassOK && c != ClassAbsent && c != ClassAbsentAllowed
}

// StoreView is one store's copy as a check saw it.
type StoreView struct {
	Present  bool     `json:"present"`
	Deleted  bool     `json:"deleted,omitempty"`
	Version  int64    `json:"version,omitempty"`
	Digest   int64    `json:"digest,omitempty,string"`
	Computed int64    `json:"computed_digest,omitempty,string"`
	Class    Class    `json:"class,omitempty"`
	Diff     []string `json:"diff,omitempty"` // fields whose content differs from the primary's
	// Corrupt says why a present copy is not a valid record; Bytes is its
	// size.
	Corrupt string `json:"corrupt,omitempty"`
	Bytes   int    `json:"bytes,omitempty"`
	// WriteTrace is the trace of the write through triad that produced
	// this copy, when known (Record.WriteTrace).
	WriteTrace string `json:"write_trace,omitempty"`
	// Fields and Raw are filled by Inspect only: the copy's counted
	// fields (canonical JSON), and a corrupt copy's stored value as text.
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
	Raw    string                     `json:"raw,omitempty"`
}

// Result is one key's check.
type Result struct {
	Entity     string               `json:"entity"`
	Key        string               `json:"key"`
	Consistent bool                 `json:"consistent"`
	Stores     map[string]StoreView `json:"stores"`
}

// Checker compares records across an entity's stores.
type Checker struct {
	entities map[string]Entity
	// MaxKeys bounds one check.
	MaxKeys int
	// Metrics, when set, count checks and the drift they find.
	Metrics *Metrics
}

// NewChecker returns a checker of the given entities.
func NewChecker(entities ...Entity) *Checker {
	c := &Checker{entities: map[string]Entity{}, MaxKeys: 1000}
	for _, e := range entities {
		c.entities[e.Name()] = e
	}
	return c
}

// Entities names the checker's entities, sorted.
func (c *Checker) Entities() []string {
	names := make([]string, 0, len(c.entities))
	for n := range c.entities {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Entity returns an entity by name.
func (c *Checker) Entity(name string) (Entity, error) {
	e, ok := c.entities[name]
	if !ok {
		names := make([]string, 0, len(c.entities))
		for n := range c.entities {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownEntity, name, names)
	}
	return e, nil
}

// Check reads keys from every store of the entity in parallel and
// classifies each derived store's copy against the primary's. Keys are
// validated first; an error reading any store fails the check (a check
// that cannot see a store says so rather than guessing).
func (c *Checker) Check(ctx context.Context, entity string, raw []string) ([]Result, error) {
	out, err := c.Compare(ctx, entity, raw)
	for _, r := range out {
		c.Metrics.checked(r)
	}
	return out, err
}

// Compare is Check without metrics (a sweep's recheck counts only what it
// confirms).
func (c *Checker) Compare(ctx context.Context, entity string, raw []string) ([]Result, error) {
	e, err := c.Entity(entity)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 || len(raw) > c.MaxKeys {
		return nil, fmt.Errorf("%w: a check takes 1 to %d keys, got %d", ErrTooMany, c.MaxKeys, len(raw))
	}
	recs, err := c.read(ctx, e, raw)
	if err != nil {
		return nil, err
	}
	out := make([]Result, len(recs.keys))
	for i, k := range recs.keys {
		out[i] = Classify(e, k, recs.primary[k], derivedRecords(recs.derived, k))
	}
	return out, nil
}

// records are the stores' copies of keys.
type records struct {
	keys    []string
	primary map[string]Record
	derived []map[string]Record // per e.Derived()
}

// read reads keys (canonical) from every store of e in parallel.
func (c *Checker) read(ctx context.Context, e Entity, raw []string) (records, error) {
	keys := make([]string, len(raw))
	for i, k := range raw {
		var err error
		if keys[i], err = e.ParseKey(k); err != nil {
			return records{}, fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	readers := append([]Reader{e.Primary()}, derivedReaders(e)...)
	got := make([]map[string]Record, len(readers))
	errs := make([]error, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() {
			got[i], errs[i] = r.Read(ctx, keys)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", r.Store(), errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return records{}, err
	}
	return records{keys: keys, primary: got[0], derived: got[1:]}, nil
}

func derivedReaders(e Entity) []Reader {
	var rs []Reader
	for _, d := range e.Derived() {
		rs = append(rs, d.Reader)
	}
	return rs
}

func derivedRecords(got []map[string]Record, key string) []Record {
	out := make([]Record, len(got))
	for i := range got {
		out[i] = got[i][key]
	}
	return out
}

// Classify judges each derived store's copy (derived[i] belongs to
// e.Derived()[i]) against the primary's.
func Classify(e Entity, key string, primary Record, derived []Record) Result {
	res := Result{Entity: e.Name(), Key: key, Consistent: true, Stores: map[string]StoreView{}}
	res.Stores[e.Primary().Store()] = view(primary)
	for i, d := range e.Derived() {
		r := derived[i]
		v := view(r)
		v.Class, v.Diff = classify(e, primary, r, d.CacheAside)
		if v.Class.Drift() {
			res.Consistent = false
		}
		res.Stores[d.Store()] = v
	}
	return res
}

func view(r Record) StoreView {
	return StoreView{Present: r.Present, Deleted: r.Deleted, Version: r.Version, Digest: r.Digest, Computed: r.Computed, Corrupt: r.Corrupt, Bytes: r.Bytes, WriteTrace: r.WriteTrace}
}

func classify(e Entity, p, d Record, cacheAside bool) (Class, []string) {
	switch {
	case !p.Present && !d.Present, p.Deleted && !d.Present:
		return ClassAbsent, nil
	case !p.Present:
		return ClassOrphan, nil
	case p.Deleted:
		return ClassOrphanDeleted, nil
	case d.Corrupt != "":
		return ClassCorrupt, nil
	case !d.Present && cacheAside:
		return ClassAbsentAllowed, nil
	case !d.Present:
		return ClassMissing, nil
	case d.Version < p.Version:
		return ClassStale, nil
	case d.Version > p.Version:
		return ClassAhead, nil
	}
	var diff []string
	for _, f := range e.FieldNames() {
		if !bytes.Equal(p.Fields[f], d.Fields[f]) {
			diff = append(diff, f)
		}
	}
	if d.Digest != p.Digest && d.Computed == p.Computed {
		diff = append(diff, "digest") // the stored label, not the content
	}
	if d.LabelsLie && d.Digest == p.Digest {
		diff = append(diff, "segment_hash") // the index's stored sweep halves
	}
	if len(diff) > 0 || d.Computed != p.Computed {
		if len(diff) == 0 {
			diff = []string{"digest"}
		}
		return ClassFieldMismatch, diff
	}
	return ClassOK, nil
}
