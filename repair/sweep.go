package repair

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Head is a record's version and digest in one store.
type Head struct {
	Present, Deleted bool
	Version, Digest  int64
}

// Ranged is an entity with int64 keys that can be swept by key range: the
// primary splits the key space into segments of about a given number of
// rows, and each store reads the heads (version, digest) of a range.
// Stores that cannot read by range (a cache keyed by ID) are asked for the
// primary's keys and list their own keys with a bounded scan, which finds
// their orphans.
type Ranged interface {
	Entity
	// NextBound is the upper bound (inclusive) of the segment after
	// `after` holding up to size primary rows, and its row count (0 past
	// the end).
	NextBound(ctx context.Context, after int64, size int) (hi int64, n int, err error)
	PrimaryHeads(ctx context.Context, lo, hi int64) (map[int64]Head, error)
	// DerivedHeads reads derived store i: by range, or (byKeys) for the
	// primary's keys.
	DerivedHeads(ctx context.Context, i int, lo, hi int64, keys []int64) (map[int64]Head, error)
	// ScanDerived lists the keys of derived store i in bounded batches; ok
	// is false for stores read by range (their orphans show in ranges).
	ScanDerived(ctx context.Context, i int, fn func(keys []int64) error) (ok bool, err error)
	// PrimaryExisting reports which keys have a primary row.
	PrimaryExisting(ctx context.Context, keys []int64) (map[int64]bool, error)
}

// SweepOptions configure one sweep.
type SweepOptions struct {
	Entity      string
	SegmentSize int           // primary rows per segment (default 1000)
	Recheck     time.Duration // wait before suspects are read again (default 2s)
	Repair      bool          // repair the findings
	DryRun      bool          // with Repair: plan only
	Trigger     string
	Actor       string
	// Progress, when set, hears about every finished segment.
	Progress func(SweepProgress)
}

// SweepProgress is a sweep's state after a segment.
type SweepProgress struct {
	Segments, Records, Suspects int
	Hi                          int64 // the last segment's upper bound
}

// Finding is drift a sweep confirmed.
type Finding struct {
	Key   string `json:"key"`
	Store string `json:"store"`
	Class Class  `json:"class"`
}

// SweepReport is what a sweep found (and repaired).
type SweepReport struct {
	Entity   string        `json:"entity"`
	Segments int           `json:"segments"`
	Records  int           `json:"records"`   // primary rows compared
	Suspects int           `json:"suspects"`  // keys that differed in the first pass
	InFlight int           `json:"in_flight"` // suspects whose primary row changed before the recheck: written meanwhile, not judged
	Findings []Finding     `json:"findings"`  // drift that remained after the recheck
	Repair   *Run          `json:"repair,omitempty"`
	Took     time.Duration `json:"took_ns"`
}

// Sweeper compares whole entities across their stores. This is the
// record-by-record mode (every record's version and digest from every
// store, in segments): the baseline the segment-digest mode is measured
// against, and its fallback when drift is dense.
type Sweeper struct {
	checker  *Checker
	repairer *Repairer
}

// NewSweeper returns a sweeper; repairer may be nil (no repairs).
func NewSweeper(c *Checker, r *Repairer) *Sweeper { return &Sweeper{checker: c, repairer: r} }

// Sweep walks the entity in key-range segments, compares each record's
// head across the stores, lists every key of stores that cannot be read by
// range (orphans there), reads the suspects again after o.Recheck (so
// records written during the sweep are not reported), classifies what
// still differs and, with o.Repair, repairs it.
func (s *Sweeper) Sweep(ctx context.Context, o SweepOptions) (SweepReport, error) {
	start := time.Now()
	e, err := s.checker.Entity(o.Entity)
	if err != nil {
		return SweepReport{}, err
	}
	r, ok := e.(Ranged)
	if !ok {
		return SweepReport{}, fmt.Errorf("entity %s cannot be swept by range", o.Entity)
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 1000
	}
	if o.Recheck <= 0 {
		o.Recheck = 2 * time.Second
	}
	if o.Trigger == "" {
		o.Trigger = TriggerSchedule
	}
	if o.Actor == "" {
		o.Actor = "sweep"
	}
	rep := SweepReport{Entity: o.Entity}
	// suspects maps each suspect key to its primary head in the first
	// pass; a key whose primary head changed by the recheck was written
	// during the sweep and is not judged (its writes are in flight).
	suspects := map[int64]Head{}
	derived := e.Derived()
	var after int64
	for last := false; !last; {
		hi, n, err := r.NextBound(ctx, after, o.SegmentSize)
		if err != nil {
			return rep, fmt.Errorf("segment after %d: %w", after, err)
		}
		if n < o.SegmentSize {
			hi, last = math.MaxInt64, true // the last segment is open: orphans above every row
		}
		lo := after + 1
		ph, err := r.PrimaryHeads(ctx, lo, hi)
		if err != nil {
			return rep, fmt.Errorf("segment %d..%d: %s: %w", lo, hi, e.Primary().Store(), err)
		}
		keys := make([]int64, 0, len(ph))
		for k := range ph {
			keys = append(keys, k)
		}
		for i, d := range derived {
			dh, err := r.DerivedHeads(ctx, i, lo, hi, keys)
			if err != nil {
				return rep, fmt.Errorf("segment %d..%d: %s: %w", lo, hi, d.Store(), err)
			}
			for k, p := range ph {
				if headDrift(p, dh[k], d.CacheAside) {
					suspects[k] = p
				}
			}
			for k := range dh {
				if _, ok := ph[k]; !ok {
					suspects[k] = Head{} // an orphan
				}
			}
		}
		rep.Segments++
		rep.Records += len(ph)
		after = hi
		if o.Progress != nil {
			o.Progress(SweepProgress{Segments: rep.Segments, Records: rep.Records, Suspects: len(suspects), Hi: hi})
		}
	}
	// Orphans in stores read by key: every key they hold, in bounded batches.
	for i := range derived {
		_, err := r.ScanDerived(ctx, i, func(keys []int64) error {
			exist, err := r.PrimaryExisting(ctx, keys)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if !exist[k] {
					suspects[k] = Head{}
				}
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("scan %s: %w", derived[i].Store(), err)
		}
	}
	rep.Suspects = len(suspects)
	if len(suspects) > 0 {
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(o.Recheck):
		}
	}
	ids := make([]int64, 0, len(suspects))
	for k := range suspects {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	var drifted []string
	for chunk := range slices.Chunk(ids, s.checker.MaxKeys) {
		keys := make([]string, len(chunk))
		for i, k := range chunk {
			keys[i] = strconv.FormatInt(k, 10)
		}
		res, err := s.checker.Check(ctx, o.Entity, keys)
		if err != nil {
			return rep, fmt.Errorf("recheck: %w", err)
		}
		for _, x := range res {
			if x.Consistent {
				continue // it caught up (a write was in flight): not drift
			}
			k, _ := strconv.ParseInt(x.Key, 10, 64)
			was, now := suspects[k], x.Stores[e.Primary().Store()]
			if was.Present != now.Present || was.Deleted != now.Deleted || was.Version != now.Version {
				rep.InFlight++ // written since the first pass: judged by a later sweep
				continue
			}
			drifted = append(drifted, x.Key)
			for _, d := range derived {
				if v := x.Stores[d.Store()]; v.Class.Drift() {
					rep.Findings = append(rep.Findings, Finding{Key: x.Key, Store: d.Store(), Class: v.Class})
				}
			}
		}
	}
	if o.Repair && len(drifted) > 0 {
		if s.repairer == nil {
			return rep, errors.New("sweep: repairs asked for but no repairer")
		}
		total := &Run{DryRun: o.DryRun}
		for chunk := range slices.Chunk(drifted, s.checker.MaxKeys) {
			run, _, err := s.repairer.Repair(ctx, Request{Entity: o.Entity, Keys: chunk, DryRun: o.DryRun, Trigger: o.Trigger, Actor: o.Actor})
			if err != nil {
				return rep, fmt.Errorf("repair: %w", err)
			}
			total.ID = run.ID
			total.Planned += run.Planned
			total.Repaired += run.Repaired
			total.Noop += run.Noop
			total.Conflicts += run.Conflicts
			total.Failed += run.Failed
			total.Skipped += run.Skipped
		}
		rep.Repair = total
	}
	rep.Took = time.Since(start)
	return rep, nil
}

// headDrift is a cheap first-pass comparison of heads; what it flags is
// read again in full before it counts.
func headDrift(p, d Head, cacheAside bool) bool {
	switch {
	case !p.Present || p.Deleted:
		return d.Present
	case !d.Present:
		return !cacheAside
	}
	return p.Version != d.Version || p.Digest != d.Digest
}
