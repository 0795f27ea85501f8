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
	// DerivedHeads reads derived store i: by range, or for the primary's
	// keys.
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
}

func (o *SweepOptions) defaults() {
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

func (s *Sweeper) ranged(name string) (Ranged, error) {
	e, err := s.checker.Entity(name)
	if err != nil {
		return nil, err
	}
	r, ok := e.(Ranged)
	if !ok {
		return nil, fmt.Errorf("entity %s cannot be swept by range", name)
	}
	return r, nil
}

// Sweep runs a whole sweep in this process, without persisting it: walk
// the entity in key-range segments, compare each record's head across the
// stores, list every key of stores that cannot be read by range (orphans
// there), read the suspects again after o.Recheck (records written during
// the sweep are not reported), classify what still differs and, with
// o.Repair, repair it. Run is the persisted, resumable form.
func (s *Sweeper) Sweep(ctx context.Context, o SweepOptions) (SweepReport, error) {
	start := time.Now()
	o.defaults()
	r, err := s.ranged(o.Entity)
	if err != nil {
		return SweepReport{}, err
	}
	rep := SweepReport{Entity: o.Entity}
	if err := prepare(ctx, r); err != nil {
		return rep, err
	}
	suspects := map[int64]Head{}
	var after int64
	for done := false; !done; {
		seg, err := s.segment(ctx, r, after, o.SegmentSize)
		if err != nil {
			return rep, err
		}
		rep.Segments++
		rep.Records += seg.records
		s.checker.Metrics.segment(o.Entity, seg.records)
		for k, h := range seg.suspects {
			suspects[k] = h
		}
		after, done = seg.hi, seg.last
	}
	if err := s.scanOrphans(ctx, r, suspects); err != nil {
		return rep, err
	}
	rep.Suspects = len(suspects)
	if err := s.finish(ctx, r, o, suspects, &rep); err != nil {
		return rep, err
	}
	rep.Took = time.Since(start)
	s.checker.Metrics.swept(o.Entity, int64(rep.Records), &rep)
	return rep, nil
}

// Preparer is an optional part of a Ranged entity: Prepare runs once
// before a sweep's first segment (profile: refresh the index, so documents
// written in the last second are searchable rather than suspects).
type Preparer interface {
	Prepare(ctx context.Context) error
}

func prepare(ctx context.Context, r Ranged) error {
	if p, ok := r.(Preparer); ok {
		return p.Prepare(ctx)
	}
	return nil
}

type segmentResult struct {
	hi       int64
	last     bool
	records  int
	suspects map[int64]Head
}

// segment compares the segment after `after`. Each suspect keeps the
// primary's head as the first pass saw it.
func (s *Sweeper) segment(ctx context.Context, r Ranged, after int64, size int) (segmentResult, error) {
	hi, n, err := r.NextBound(ctx, after, size)
	if err != nil {
		return segmentResult{}, fmt.Errorf("segment after %d: %w", after, err)
	}
	res := segmentResult{hi: hi, records: n, suspects: map[int64]Head{}}
	if n < size {
		// The last segment is open: orphans above every primary row.
		res.hi, res.last = math.MaxInt64, true
	}
	lo := after + 1
	ph, err := r.PrimaryHeads(ctx, lo, res.hi)
	if err != nil {
		return res, fmt.Errorf("segment %d..%d: %s: %w", lo, res.hi, r.Primary().Store(), err)
	}
	res.records = len(ph)
	keys := make([]int64, 0, len(ph))
	for k := range ph {
		keys = append(keys, k)
	}
	for i, d := range r.Derived() {
		dh, err := r.DerivedHeads(ctx, i, lo, res.hi, keys)
		if err != nil {
			return res, fmt.Errorf("segment %d..%d: %s: %w", lo, res.hi, d.Store(), err)
		}
		for k, p := range ph {
			if headDrift(p, dh[k], d.CacheAside) {
				res.suspects[k] = p
			}
		}
		for k := range dh {
			if _, ok := ph[k]; !ok {
				res.suspects[k] = Head{} // an orphan
			}
		}
	}
	return res, nil
}

// scanOrphans lists every key of the stores read by key, in bounded
// batches, and adds those without a primary row to suspects.
func (s *Sweeper) scanOrphans(ctx context.Context, r Ranged, suspects map[int64]Head) error {
	for i, d := range r.Derived() {
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
			return fmt.Errorf("scan %s: %w", d.Store(), err)
		}
	}
	return nil
}

// finish rechecks the suspects after o.Recheck, records findings and
// in-flight counts in rep, and repairs with o.Repair.
func (s *Sweeper) finish(ctx context.Context, r Ranged, o SweepOptions, suspects map[int64]Head, rep *SweepReport) error {
	if len(suspects) == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(o.Recheck):
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
		res, err := s.checker.check(ctx, r.Name(), keys)
		if err != nil {
			return fmt.Errorf("recheck: %w", err)
		}
		for _, x := range res {
			if x.Consistent {
				continue // it caught up (a write was in flight): not drift
			}
			k, _ := strconv.ParseInt(x.Key, 10, 64)
			was, now := suspects[k], x.Stores[r.Primary().Store()]
			if was.Present != now.Present || was.Deleted != now.Deleted || was.Version != now.Version {
				rep.InFlight++ // written since the first pass: judged by a later sweep
				continue
			}
			drifted = append(drifted, x.Key)
			for _, d := range r.Derived() {
				if v := x.Stores[d.Store()]; v.Class.Drift() {
					rep.Findings = append(rep.Findings, Finding{Key: x.Key, Store: d.Store(), Class: v.Class})
					if m := s.checker.Metrics; m != nil {
						m.drift.WithLabelValues(r.Name(), d.Store(), string(v.Class)).Inc()
					}
				}
			}
		}
	}
	if !o.Repair || len(drifted) == 0 {
		return nil
	}
	if s.repairer == nil {
		return errors.New("sweep: repairs asked for but no repairer")
	}
	total := &Run{DryRun: o.DryRun}
	for chunk := range slices.Chunk(drifted, s.checker.MaxKeys) {
		run, _, err := s.repairer.Repair(ctx, Request{Entity: o.Entity, Keys: chunk, DryRun: o.DryRun, Trigger: o.Trigger, Actor: o.Actor})
		if err != nil {
			return fmt.Errorf("repair: %w", err)
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
	return nil
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
