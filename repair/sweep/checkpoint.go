package sweep

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/triad-dev/triad/repair"
)

// Checkpoints persists, per entity and store, the checkpoint the last
// clean content-true sweep verified (repair/postgres).
type Checkpoints interface {
	// LoadCheckpoint returns the verified checkpoint; ok is false when
	// there is none.
	LoadCheckpoint(ctx context.Context, entity, store string) (cp repair.Checkpoint, ok bool, err error)
	SaveCheckpoint(ctx context.Context, entity, store string, cp repair.Checkpoint, sweep int64) error
}

// CheckpointReport is what a sweep knew and proved of a checkpointed
// store.
type CheckpointReport struct {
	Store string `json:"store"`
	// Base is the checkpoint verified before this sweep: records not
	// written since were compared by their labels. Nil: the sweep read
	// every record whole (the first content pass).
	Base *repair.Checkpoint `json:"base,omitempty"`
	// Taken is the store's checkpoint before this sweep read it: what the
	// sweep verifies when it ends clean.
	Taken repair.Checkpoint `json:"taken"`
	// Changed counts the records written since Base, read whole at the
	// finish.
	Changed int64 `json:"changed"`
	// Advanced: Taken became the entity's verified checkpoint.
	Advanced bool `json:"advanced"`
}

// takeCheckpoint starts a content-true sweep's checkpoint: the store's
// current one and, when it follows the same index, the verified base.
// Nil when the entity or the sweeper keeps none, or in the quick mode.
func (s *Sweeper) takeCheckpoint(ctx context.Context, r repair.Ranged, mode string) (*CheckpointReport, error) {
	c, ok := r.(repair.Checkpointed)
	if !ok || s.Checkpoints == nil || !ContentTrue(mode) {
		return nil, nil
	}
	store := r.Derived()[c.CheckpointStore()].Store()
	taken, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s checkpoint: %w", store, err)
	}
	sc := &CheckpointReport{Store: store, Taken: taken}
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
func (s *Sweeper) changedSince(ctx context.Context, r repair.Ranged, sc *CheckpointReport, suspects map[int64]repair.Head) (map[int64]bool, error) {
	bad := map[int64]bool{}
	if sc == nil || sc.Base == nil {
		return bad, nil
	}
	c := r.(repair.Checkpointed)
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
func (s *Sweeper) primaryHeadsOf(ctx context.Context, r repair.Ranged, keys []int64, suspects map[int64]repair.Head) error {
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
			suspects[k] = repair.Head{Present: ok && rec.Present, Deleted: ok && rec.Deleted, Version: rec.Version}
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
func (s *Sweeper) settleCheckpoint(ctx context.Context, r repair.Ranged, sc *CheckpointReport, sweep int64, rep *Report, untrusted map[int64]bool) error {
	if sc == nil {
		return nil
	}
	held := 0
	for _, f := range rep.Findings {
		if f.Store != sc.Store {
			continue
		}
		k, _ := strconv.ParseInt(f.Key, 10, 64)
		if f.Class == repair.ClassCorrupt || untrusted[k] || sc.Base == nil {
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
func suspectsUnion(dst, src map[int64]repair.Head) {
	for k, h := range src {
		if _, ok := dst[k]; !ok {
			dst[k] = h
		}
	}
}
