package repair

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/triad-dev/triad/ingest"
)

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

// Checkpoints persists, per entity and store, the checkpoint the last
// clean content-true sweep verified (repair/postgres).
type Checkpoints interface {
	// LoadCheckpoint returns the verified checkpoint; ok is false when
	// there is none.
	LoadCheckpoint(ctx context.Context, entity, store string) (cp Checkpoint, ok bool, err error)
	SaveCheckpoint(ctx context.Context, entity, store string, cp Checkpoint, sweep int64) error
}

// SweepCheckpoint is what a sweep knew and proved of a checkpointed
// store.
type SweepCheckpoint struct {
	Store string `json:"store"`
	// Base is the checkpoint verified before this sweep: records not
	// written since were compared by their labels. Nil: the sweep read
	// every record whole (the first content pass).
	Base *Checkpoint `json:"base,omitempty"`
	// Taken is the store's checkpoint before this sweep read it: what the
	// sweep verifies when it ends clean.
	Taken Checkpoint `json:"taken"`
	// Changed counts the records written since Base, read whole at the
	// finish.
	Changed int64 `json:"changed"`
	// Advanced: Taken became the entity's verified checkpoint.
	Advanced bool `json:"advanced"`
}

// takeCheckpoint starts a content-true sweep's checkpoint: the store's
// current one and, when it follows the same index, the verified base.
// Nil when the entity or the sweeper keeps none, or in the quick mode.
func (s *Sweeper) takeCheckpoint(ctx context.Context, r Ranged, mode string) (*SweepCheckpoint, error) {
	c, ok := r.(Checkpointed)
	if !ok || s.Checkpoints == nil || !ContentTrue(mode) {
		return nil, nil
	}
	store := r.Derived()[c.CheckpointStore()].Store()
	taken, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s checkpoint: %w", store, err)
	}
	sc := &SweepCheckpoint{Store: store, Taken: taken}
	base, ok, err := s.Checkpoints.LoadCheckpoint(ctx, r.Name(), store)
	if err != nil {
		return nil, fmt.Errorf("verified %s checkpoint: %w", store, err)
	}
	if ok && taken.Follows(base) {
		sc.Base = &base
	}
	return sc, nil
}

// changedSince reads the records of the checkpointed store written since
// the sweep's base and adds those whose content does not back their
// labels to suspects, with the primary's head as it is now. It returns
// those keys.
func (s *Sweeper) changedSince(ctx context.Context, r Ranged, sc *SweepCheckpoint, suspects map[int64]Head) (map[int64]bool, error) {
	bad := map[int64]bool{}
	if sc == nil || sc.Base == nil {
		return bad, nil
	}
	c := r.(Checkpointed)
	n, err := c.Changed(ctx, *sc.Base, func(keys []int64) error {
		var fresh []int64
		for _, k := range keys {
			bad[k] = true
			if _, ok := suspects[k]; !ok {
				fresh = append(fresh, k)
			}
		}
		return s.primaryHeadsOf(ctx, r, fresh, suspects)
	})
	sc.Changed = n
	if err != nil {
		return nil, fmt.Errorf("%s: records written since seq_no %d: %w", sc.Store, sc.Base.SeqNo, err)
	}
	return bad, nil
}

// primaryHeadsOf adds keys to suspects with the primary's current heads
// (the recheck tells a record written meanwhile from drift by them).
func (s *Sweeper) primaryHeadsOf(ctx context.Context, r Ranged, keys []int64, suspects map[int64]Head) error {
	for chunk := range slices.Chunk(keys, max(1, s.checker.MaxKeys)) {
		ks := make([]string, len(chunk))
		for i, k := range chunk {
			ks[i] = strconv.FormatInt(k, 10)
		}
		got, err := r.Primary().Read(ctx, ks)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Primary().Store(), err)
		}
		for i, k := range chunk {
			rec, ok := got[ks[i]]
			suspects[k] = Head{Present: ok && rec.Present, Deleted: ok && rec.Deleted, Version: rec.Version}
		}
	}
	return nil
}

// settleCheckpoint decides, once a sweep's findings are known, whether
// its taken checkpoint becomes the verified one: only when no record of
// the checkpointed store failed its content check (undecodable, lying
// labels), or every such finding was repaired (a repair is a later
// write). A stale but well-formed copy does not hold it back: its labels
// are its content's, and every sweep compares them.
func (s *Sweeper) settleCheckpoint(ctx context.Context, r Ranged, sc *SweepCheckpoint, sweep int64, rep *SweepReport, untrusted map[int64]bool) error {
	if sc == nil {
		return nil
	}
	held := 0
	for _, f := range rep.Findings {
		if f.Store != sc.Store {
			continue
		}
		k, _ := strconv.ParseInt(f.Key, 10, 64)
		if f.Class == ClassCorrupt || untrusted[k] || sc.Base == nil {
			held++
		}
	}
	repaired := rep.Repair != nil && !rep.Repair.DryRun && rep.Repair.Failed == 0 && rep.Repair.Conflicts == 0 && rep.Repair.Skipped == 0
	if held > 0 && !repaired {
		return nil
	}
	if err := s.Checkpoints.SaveCheckpoint(ctx, r.Name(), sc.Store, sc.Taken, sweep); err != nil {
		return fmt.Errorf("save %s checkpoint: %w", sc.Store, err)
	}
	sc.Advanced = true
	return nil
}

// suspectsUnion adds src's keys missing from dst.
func suspectsUnion(dst, src map[int64]Head) {
	for k, h := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = h
		}
	}
}
