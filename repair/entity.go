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
	// Corrupt is set when the copy is present but is not a valid record:
	// a value of the wrong type, an undecodable or non-canonical field,
	// missing or extra fields. It says why; Bytes is the value's size.
	// Such a copy is drift (ClassCorrupt), never an error of the read.
	Corrupt string
	Bytes   int
	// RawText is a corrupt copy's stored value as text (a hash as a JSON
	// object of its fields), at most MaxRawText bytes of it.
	RawText string
	// LabelsLie: the copy's own digest labels (a stored digest, segment
	// hash halves) disagree with its content.
	LabelsLie bool
	// WriteTrace is the trace ID (hex) of the last write through triad
	// that produced this copy, while the copy is still what it wrote;
	// empty when unknown (written by another service, or untraced).
	WriteTrace string
	// Raw is the store adapter's own value: for the primary, what a Fixer
	// writes; for a derived copy, the exact value observed, which its
	// Fixer's guard checks.
	Raw any
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
	// Priority of its repairs: high for the cache (reads see it first),
	// medium for the index (the seed's matrix).
	Priority string
	// Fixer repairs it; nil: report only.
	Fixer Fixer
}

// Fixer repairs one derived store's copy of a record, guarded: it writes
// only if the store still holds what the repair observed, and never
// replaces a newer version. Safe for concurrent use.
type Fixer interface {
	// Put makes the store hold the primary's record p (p.Raw) where it
	// held observed (observed.Present false: nothing). ok is false when the
	// store changed since it was observed; nothing was written then, and
	// now says what the store holds instead (for the log).
	Put(ctx context.Context, key string, observed, p Record) (ok bool, now string, err error)
	// Delete removes the store's copy if it still is observed.
	Delete(ctx context.Context, key string, observed Record) (ok bool, now string, err error)
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
