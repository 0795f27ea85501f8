package repair

import (
	"context"

	"github.com/triad-dev/triad/ingest"
)

// The capabilities an entity offers a sweep (repair/sweep): reading its
// stores by key range, summing segments inside a store, labels, and a
// write-numbered checkpoint.

// MaxSegmentRows bounds a segment: Elasticsearch range reads return at
// most index.max_result_window (10 000) documents, and a segment may
// grow by writes made while it is read.
const MaxSegmentRows = 5000

// Head is a record's version and digest in one store.
type Head struct {
	Present, Deleted bool
	Version, Digest  int64
	// Suspect: the copy does not decode, or its stored labels disagree
	// with its content; it is read again in full.
	Suspect bool
}

// Ranged is an entity with int64 keys that can be swept by key range: the
// primary cuts the key space into segments of about a given number of
// rows, and each store reads the heads (version, digest) of a range.
// Stores that cannot read by range (a cache keyed by ID) are asked for the
// primary's keys and list their own keys with a bounded scan, which finds
// their orphans.
type Ranged interface {
	Entity
	// Bounds returns the upper bounds (inclusive) of up to n consecutive
	// segments of size primary rows each within (after, hi]; fewer than n
	// means the rows ran out before hi.
	Bounds(ctx context.Context, after, hi int64, size, n int) ([]int64, error)
	PrimaryHeads(ctx context.Context, lo, hi int64) (map[int64]Head, error)
	// DerivedHeads reads derived store i: by range, or for the primary's
	// keys.
	DerivedHeads(ctx context.Context, i int, lo, hi int64, keys []int64) (map[int64]Head, error)
	// ScanDerived lists the keys of derived store i in bounded batches; ok
	// is false for stores read by range (their orphans show in ranges).
	ScanDerived(ctx context.Context, i int, fn func(keys []int64) error) (ok bool, err error)
	// PrimaryKeys streams every primary key (tombstones included) to fn
	// in bounded slices fn must not keep.
	PrimaryKeys(ctx context.Context, fn func(keys []int64) error) error
}

// Digested is a Ranged entity whose stores compute segment digests
// themselves (ingest.SegmentSum), so consistent segments are compared
// without moving their records.
type Digested interface {
	Ranged
	// PrimarySums sums the segments of bounds b: segment j is the key
	// range (b[j], b[j+1]].
	PrimarySums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error)
	// DerivedSums computes derived store i's sums; ok is false for stores
	// that cannot (a cache read by key, a store without stored segment
	// hashes): their records are read (pipelined, a batch at a time).
	// Each range is (lo, hi].
	DerivedSums(ctx context.Context, i int, ranges [][2]int64) (sums []ingest.SegmentSum, ok bool, err error)
}

// Preparer is an optional part of a Ranged entity: Prepare runs once
// before a sweep's first segment (profile: refresh the index, so documents
// written in the last second are searchable rather than suspects).
type Preparer interface {
	Prepare(ctx context.Context) error
}

// Counted is a Ranged entity that can count the keys a store read by key
// holds in all, cheaply (Redis DBSIZE).
type Counted interface {
	// CountDerived counts derived store i's keys; ok is false when it
	// cannot tell (the store holds other keys too, or is read by range).
	CountDerived(ctx context.Context, i int) (n int64, ok bool, err error)
}

// Labelled is a Digested entity whose derived stores can report the
// labels triad wrote on each record (the stored version and digest, an
// index's stored segment hash halves) without their content being read.
// Labels never prove agreement on their own: a sweep uses them only in
// the quick mode (ModeLabels, not content-true), or for a store whose
// records are proven unchanged since they were content-verified
// (Checkpointed).
type Labelled interface {
	Digested
	// LabelSums sums derived store i's stored segment hashes over
	// ranges, each (lo, hi]; ok is false for a store that keeps none.
	LabelSums(ctx context.Context, i int, ranges [][2]int64) (sums []ingest.SegmentSum, ok bool, err error)
	// LabelHeads reads derived store i's stored labels of keys (a store
	// read by key); ok is false when it cannot.
	LabelHeads(ctx context.Context, i int, keys []int64) (heads map[int64]Head, ok bool, err error)
}

// Checkpoint is a point in a derived store's write history: every write
// up to SeqNo is durable and visible (Elasticsearch: the smallest global
// checkpoint among the index's primary shards). A record not written
// since keeps a sequence number at or below it, whoever wrote it.
type Checkpoint struct {
	Index string `json:"index"`
	UUID  string `json:"uuid"` // a re-created index has another
	SeqNo int64  `json:"seq_no"`
}

// Follows reports whether c is a later point of the same index as base.
func (c Checkpoint) Follows(base Checkpoint) bool {
	return c.Index == base.Index && c.UUID == base.UUID && c.SeqNo >= base.SeqNo
}

// Checkpointed is a Labelled entity one of whose derived stores numbers
// every write to a record, whoever makes it (Elasticsearch _seq_no). A
// record written at or below a checkpoint a clean content-true sweep
// verified is unchanged since: its labels are its content's, so its
// segment is compared by labels; only the records written since are read
// whole. A sweep then costs what the write rate costs, not the dataset
// size.
type Checkpointed interface {
	Labelled
	// CheckpointStore is the index of the derived store that keeps
	// checkpoints.
	CheckpointStore() int
	// Checkpoint reads the store's current checkpoint. Take it before the
	// reads it is meant to cover.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// Changed reads every record of the store written after since (up to
	// now), whatever it holds, and hands fn, in bounded batches, the keys
	// of those whose content does not back their labels (undecodable, or
	// labels that lie). It returns how many records it read.
	Changed(ctx context.Context, since Checkpoint, fn func(keys []int64) error) (int64, error)
}

// Unkeyed is a Ranged entity one of whose stores read by range can list
// the records its range reads cannot see: documents without a key field,
// which another writer may leave (they would escape every sweep).
type Unkeyed interface {
	// UnkeyedDerived lists derived store i's unkeyed records: the keys of
	// those whose id is a key (up to max), and how many others there are
	// (ids that are not keys, or past max); ok is false for a store that
	// cannot tell.
	UnkeyedDerived(ctx context.Context, i, max int) (keys []int64, others int64, ok bool, err error)
}
