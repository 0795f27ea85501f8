package repair

import (
	"context"
	"errors"
)

// Errors of the consistency engine.
var (
	ErrUnknownEntity = errors.New("unknown entity")
	ErrBadKey        = errors.New("bad key")
	ErrTooMany       = errors.New("too many keys")
)

// Record is one store's copy of one entity record, in the canonical
// encoding every store adapter shares: a version, the 64-bit content
// digest (as stored, or recomputed where the store keeps none) and the
// counted fields as canonical JSON.
type Record struct {
	Present bool
	// Deleted: the primary holds a tombstone (derived stores hold none).
	Deleted bool
	Version int64
	// Digest is the stored digest; Computed the digest recomputed from
	// Fields (equal unless the record was changed behind the writer).
	Digest, Computed int64
	Fields           map[string][]byte
}

// Reader reads records by key from one store. Absent keys are absent from
// the result; an error means nothing is known about any key. Safe for
// concurrent use.
type Reader interface {
	Store() string // postgres, redis or elasticsearch
	Read(ctx context.Context, keys []string) (map[string]Record, error)
}

// Derived is a derived store of an entity and how to judge it.
type Derived struct {
	Reader
	// CacheAside: keys may legitimately be absent (a TTL cache written on
	// ingest and refilled on reads); a present key must match.
	CacheAside bool
}

// Entity is a kind of record triad checks: its source of truth and the
// stores derived from it.
type Entity interface {
	Name() string
	// ParseKey validates a key as an operator typed it and returns its
	// canonical form.
	ParseKey(s string) (string, error)
	Primary() Reader
	Derived() []Derived
	// FieldNames are the fields that count, in order.
	FieldNames() []string
}
