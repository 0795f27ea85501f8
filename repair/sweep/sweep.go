package sweep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/RoaringBitmap/roaring/v2/roaring64"
	"golang.org/x/sync/errgroup"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
)

// Sweep modes.
const (
	// ModeRecords reads every record's head from every store: the
	// baseline, and the fallback where drift is dense.
	ModeRecords = "records"
	// ModeDigest compares per-segment digests computed inside each store
	// and reads records only in segments that differ.
	ModeDigest = "digest"
	// ModeAuto starts with digests and falls back to records once most
	// segments turn out dirty (AutoDenseShare).
	ModeAuto = "auto"
	// ModeLabels is the quick mode: it compares the labels triad wrote
	// (stored versions, digests and segment hashes) and reads no content,
	// so another writer's change that left them alone goes unseen. Its
	// figures are not content-true and never feed the consistency gauge.
	ModeLabels = "labels"
)

// ContentTrue reports whether a sweep in mode m judges content: every
// mode but the quick one.
func ContentTrue(m string) bool { return m != ModeLabels }

// contentTrue is ContentTrue for entity r: an entity with no labels to
// read (repair.Labelled) is read by content in the quick mode too, and
// says so.
func contentTrue(r repair.Ranged, m string) bool {
	if _, ok := r.(repair.Labelled); !ok {
		return true
	}
	return ContentTrue(m)
}

// AutoDenseShare is the share of dirty segments (after AutoMinSegments)
// above which an auto sweep stops computing digests: narrowing nearly
// every segment costs what reading every record costs, plus the digests.
const (
	AutoDenseShare  = 0.75
	AutoMinSegments = 64
)

// ValidMode reports whether m names a sweep mode ("" is auto).
func ValidMode(m string) bool {
	return m == "" || m == ModeRecords || m == ModeDigest || m == ModeAuto || m == ModeLabels
}

// Options configure one
type Options struct {
	Entity      string
	Mode        string        // auto (default), digest, records, or labels (quick, not content-true)
	SegmentSize int           // primary rows per segment (default 1000)
	Recheck     time.Duration // wait before suspects are read again (default 2s)
	Repair      bool          // repair the findings
	DryRun      bool          // with Repair: plan only
	Rate        int           // records per second per runner (0: unlimited)
	Trigger     string
	Actor       string
}

func (o *Options) defaults() {
	if o.SegmentSize <= 0 {
		o.SegmentSize = 1000
	}
	o.SegmentSize = min(o.SegmentSize, repair.MaxSegmentRows)
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	if o.Recheck <= 0 {
		o.Recheck = 2 * time.Second
	}
	if o.Trigger == "" {
		o.Trigger = repair.TriggerSchedule
	}
	if o.Actor == "" {
		o.Actor = "sweep"
	}
}

// Finding is drift a sweep confirmed.
type Finding struct {
	Key   string       `json:"key"`
	Store string       `json:"store"`
	Class repair.Class `json:"class"`
}

// Report is what a sweep found (and repaired).
type Report struct {
	Entity string `json:"entity"`
	Mode   string `json:"mode"` // what the walk used (auto: digest, or digest→records)
	// ContentTrue: every copy was judged by its content (or proven
	// unchanged since it was); false for the quick label-only mode.
	ContentTrue bool              `json:"content_true"`
	Checkpoint  *CheckpointReport `json:"checkpoint,omitempty"`
	// OrphanScan says how the stores read by key were searched for
	// orphans: "scanned", or "skipped: ..." when counts proved none.
	OrphanScan string        `json:"orphan_scan,omitempty"`
	Segments   int           `json:"segments"`
	Dirty      int           `json:"dirty_segments"`
	Records    int           `json:"records"`   // primary rows compared
	Suspects   int           `json:"suspects"`  // keys that differed in the first pass
	InFlight   int           `json:"in_flight"` // suspects whose primary row changed before the recheck: written meanwhile, not judged
	Findings   []Finding     `json:"findings"`  // drift that remained after the recheck
	Repair     *repair.Run   `json:"repair,omitempty"`
	Took       time.Duration `json:"took_ns"`
}

// Sweeper compares whole entities across their stores. This is the
// record-by-record mode (every record's version and digest from every
// store, in segments): the baseline the segment-digest mode is measured
// against, and its fallback when drift is dense.
type Sweeper struct {
	checker  *repair.Checker
	repairer *repair.Repairer
	// Metrics, when set, count segments, records and finished sweeps.
	Metrics *Metrics
	// Checkpoints keeps verified checkpoints (nil: none, so every
	// content-true sweep reads every record whole).
	Checkpoints Checkpoints
}

// NewSweeper returns a sweeper; repairer may be nil (no repairs).
func New(c *repair.Checker, r *repair.Repairer) *Sweeper { return &Sweeper{checker: c, repairer: r} }

func (s *Sweeper) ranged(name string) (repair.Ranged, error) {
	e, err := s.checker.Entity(name)
	if err != nil {
		return nil, err
	}
	r, ok := e.(repair.Ranged)
	if !ok {
		return nil, fmt.Errorf("entity %s cannot be swept by range", name)
	}
	return r, nil
}

// Sweep runs a whole sweep in this process, without persisting it: walk
// the entity in batches of key-range segments (in o.Mode), list every key
// of stores that cannot be read by range (orphans there), read the
// suspects again after o.Recheck (records written during the sweep are
// not reported), classify what still differs and, with o.Repair, repair
// it. Worker runs the persisted form, spread over replicas.
func (s *Sweeper) Sweep(ctx context.Context, o Options) (Report, error) {
	start := time.Now()
	o.defaults()
	r, err := s.ranged(o.Entity)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Entity: o.Entity, Mode: o.Mode, ContentTrue: contentTrue(r, o.Mode)}
	// The checkpoint is taken before the refresh and every read it covers.
	sc, err := s.takeCheckpoint(ctx, r, o.Mode)
	if err != nil {
		return rep, err
	}
	rep.Checkpoint = sc
	if err := prepare(ctx, r); err != nil {
		return rep, err
	}
	w := s.walker(r, o, sc)
	suspects := map[int64]repair.Head{}
	present := make([]int64, len(r.Derived()))
	err = w.walk(ctx, 0, math.MaxInt64, func(b batchResult) (bool, error) {
		rep.Segments += b.segments
		rep.Dirty += b.dirty
		rep.Records += b.records
		for i, n := range b.present {
			present[i] += n
		}
		maps.Copy(suspects, b.suspects)
		return true, nil
	})
	if err != nil {
		return rep, err
	}
	rep.Mode = w.used()
	orphans := map[int64]repair.Head{}
	if rep.OrphanScan, err = s.scanOrphans(ctx, r, present, orphans); err != nil {
		return rep, err
	}
	suspectsUnion(suspects, orphans)
	untrusted, err := s.changedSince(ctx, r, sc, suspects)
	if err != nil {
		return rep, err
	}
	rep.Suspects = len(suspects)
	if err := s.finish(ctx, r, o, suspects, &rep); err != nil {
		return rep, err
	}
	if err := s.settleCheckpoint(ctx, r, sc, 0, &rep, untrusted); err != nil {
		return rep, err
	}
	rep.Took = time.Since(start)
	s.Metrics.swept(o.Entity, int64(rep.Records), &rep)
	return rep, nil
}

func prepare(ctx context.Context, r repair.Ranged) error {
	if p, ok := r.(repair.Preparer); ok {
		return p.Prepare(ctx)
	}
	return nil
}

// batchSegments is how many segments one batch compares: one bounds
// query, one digest query per store and one heads read per batch.
const batchSegments = 16

// walker compares key ranges batch by batch and decides, in auto mode,
// when digests stop paying off. Not safe for concurrent use.
type walker struct {
	s *Sweeper
	r repair.Ranged
	d repair.Digested // nil: the entity has no segment digests
	l repair.Labelled // nil: the entity has no labels to read
	// labels[i]: derived store i is compared by its labels (the quick
	// mode, or a store proven unchanged since a verified checkpoint).
	labels     []bool
	o          Options
	mode       string // records or digest: what the next batch uses
	fellBack   bool
	segs, dirt int
	// pacing (o.Rate records/s)
	paceStart time.Time
	paced     int
}

func (s *Sweeper) walker(r repair.Ranged, o Options, sc *CheckpointReport) *walker {
	w := &walker{s: s, r: r, o: o, mode: ModeRecords, labels: make([]bool, len(r.Derived()))}
	if d, ok := r.(repair.Digested); ok && o.Mode != ModeRecords {
		w.d, w.mode = d, ModeDigest
	}
	if l, ok := r.(repair.Labelled); ok && w.d != nil {
		w.l = l
		for i := range w.labels {
			w.labels[i] = o.Mode == ModeLabels
		}
		if c, ok := r.(repair.Checkpointed); ok && sc != nil && sc.Base != nil {
			w.labels[c.CheckpointStore()] = true
		}
	}
	return w
}

// sums computes derived store i's segment sums: from its labels where
// they are trusted (or the quick mode asks), else from content.
func (w *walker) sums(ctx context.Context, i int, ranges [][2]int64) ([]ingest.SegmentSum, bool, error) {
	if w.labels[i] {
		if sums, ok, err := w.l.LabelSums(ctx, i, ranges); ok || err != nil {
			return sums, ok, err
		}
	}
	return w.d.DerivedSums(ctx, i, ranges)
}

// heads reads derived store i's heads: in the quick mode a store read by
// key gives its labels only.
func (w *walker) heads(ctx context.Context, i int, lo, hi int64, keys []int64) (map[int64]repair.Head, error) {
	if w.labels[i] && w.o.Mode == ModeLabels && keys != nil {
		if h, ok, err := w.l.LabelHeads(ctx, i, keys); ok || err != nil {
			return h, err
		}
	}
	return w.r.DerivedHeads(ctx, i, lo, hi, keys)
}

// used names the mode the walk used: records, digest, or auto:
// digest then records.
func (w *walker) used() string {
	if w.o.Mode == ModeLabels {
		return ModeLabels
	}
	if w.fellBack {
		return "digest→records"
	}
	return w.mode
}

type batchResult struct {
	hi              int64 // the upper bound of the batch's last segment
	last            bool  // nothing is left in the range
	segments, dirty int
	records         int // live primary records compared
	// present[i] counts the keys derived store i was asked for by key
	// and holds (stores read by key hold no others in their answer).
	present  []int64
	suspects map[int64]repair.Head
}

// plan cuts the next batch of segments after `after` within (after, hi]:
// its bounds b (segment j is (b[j], b[j+1]]) and whether it ends the range.
func (w *walker) plan(ctx context.Context, after, hi int64) ([]int64, bool, error) {
	bounds, err := w.r.Bounds(ctx, after, hi, w.o.SegmentSize, batchSegments)
	if err != nil {
		return nil, false, fmt.Errorf("segments after %d: %s: %w", after, w.r.Primary().Store(), err)
	}
	b := append([]int64{after}, bounds...)
	if len(bounds) < batchSegments && b[len(b)-1] < hi {
		// The rows ran out: one last segment up to hi holds what derived
		// stores have above the last primary row (orphans).
		b = append(b, hi)
	}
	return b, b[len(b)-1] >= hi, nil
}

// compare compares one planned batch in the given mode. Each suspect
// keeps the primary's head as this pass saw it. Safe to run beside
// another batch's compare.
func (w *walker) compare(ctx context.Context, b []int64, mode string) (batchResult, error) {
	res := batchResult{hi: b[len(b)-1], segments: len(b) - 1, suspects: map[int64]repair.Head{}, present: make([]int64, len(w.r.Derived()))}
	if res.segments == 0 {
		return res, nil
	}
	var err error
	if mode == ModeDigest {
		err = w.digestBatch(ctx, b, &res)
	} else {
		err = w.recordBatch(ctx, b, &res)
	}
	return res, err
}

// walkDepth is how many batches are compared at once: one batch's reads
// of the cache overlap the next one's sums and primary reads.
const walkDepth = 2

// walk compares (after, hi] batch by batch, walkDepth batches in flight,
// and hands each result to fn in key order (fn returning false stops the
// walk). Auto fallback, metrics and pacing are applied in that order.
func (w *walker) walk(ctx context.Context, after, hi int64, fn func(batchResult) (bool, error)) error {
	type job struct {
		res  batchResult
		last bool
		err  error
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pending []*job
	defer func() {
		cancel()
		for _, j := range pending {
			<-j.done
		}
	}()
	planned := false // the last batch is planned
	for !planned || len(pending) > 0 {
		for len(pending) < walkDepth && !planned {
			b, last, err := w.plan(ctx, after, hi)
			if err != nil {
				return err
			}
			j := &job{last: last, done: make(chan struct{})}
			mode := w.mode
			go func() {
				defer close(j.done)
				j.res, j.err = w.compare(ctx, b, mode)
			}()
			pending = append(pending, j)
			after, planned = b[len(b)-1], last
		}
		j := pending[0]
		<-j.done
		pending = pending[1:]
		if j.err != nil {
			return j.err
		}
		j.res.last = j.last
		res := j.res
		w.segs += res.segments
		w.dirt += res.dirty
		if w.o.Mode == ModeAuto && w.mode == ModeDigest && w.segs >= AutoMinSegments && float64(w.dirt) > AutoDenseShare*float64(w.segs) {
			w.mode, w.fellBack = ModeRecords, true
		}
		w.s.Metrics.segment(w.o.Entity, res.segments, res.dirty, res.records)
		if err := w.pace(ctx, res.records); err != nil {
			return err
		}
		more, err := fn(res)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// pace holds the walk to o.Rate records per second (the sweep's
// intensity; 0: as fast as the stores answer).
func (w *walker) pace(ctx context.Context, records int) error {
	if w.o.Rate <= 0 {
		return nil
	}
	if w.paceStart.IsZero() {
		w.paceStart = time.Now()
	}
	w.paced += records
	wait := time.Duration(float64(w.paced)/float64(w.o.Rate)*float64(time.Second)) - time.Since(w.paceStart)
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// recordBatch reads every record's head from every store, segment by
// segment.
func (w *walker) recordBatch(ctx context.Context, b []int64, res *batchResult) error {
	for j := range len(b) - 1 {
		lo, hi := b[j]+1, b[j+1]
		ph, err := w.r.PrimaryHeads(ctx, lo, hi)
		if err != nil {
			return fmt.Errorf("segment %d..%d: %s: %w", lo, hi, w.r.Primary().Store(), err)
		}
		keys := make([]int64, 0, len(ph))
		for k, p := range ph {
			keys = append(keys, k)
			if p.Present && !p.Deleted {
				res.records++
			}
		}
		dirty := false
		for i, d := range w.r.Derived() {
			dh, err := w.heads(ctx, i, lo, hi, keys)
			if err != nil {
				return fmt.Errorf("segment %d..%d: %s: %w", lo, hi, d.Store(), err)
			}
			res.present[i] += int64(len(dh))
			dirty = compareHeads(ph, dh, d.CacheAside, res.suspects) || dirty
		}
		if dirty {
			res.dirty++
		}
	}
	return nil
}

// digestBatch compares segment sums computed inside each store and reads
// record heads only where the sums differ or cannot be had.
//
//  1. The primary and every store that can sum do so, concurrently.
//  2. A store read by key (a cache) is summed here, in Go, over segments
//     the primary holds densely (every key of the range is a live row, so
//     the keys are known without asking for them), read in one pipelined
//     batch; a segment whose cache holds every key with equal sums is
//     consistent.
//  3. Only the segments left (sums differ, cache keys absent, keys not
//     dense) cost the primary's heads: the cache is compared record by
//     record there and the summing stores are narrowed.
func (w *walker) digestBatch(ctx context.Context, b []int64, res *batchResult) error {
	n := len(b) - 1
	lo, hi := b[0]+1, b[n]
	derived := w.r.Derived()
	segs := make([][2]int64, n)
	for j := range n {
		segs[j] = [2]int64{b[j], b[j+1]}
	}
	var (
		ps []ingest.SegmentSum
		ds = make([][]ingest.SegmentSum, len(derived)) // nil: read by key
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		if ps, err = w.d.PrimarySums(gctx, b); err != nil {
			return fmt.Errorf("segment sums %d..%d: %s: %w", lo, hi, w.r.Primary().Store(), err)
		}
		return nil
	})
	for i, d := range derived {
		g.Go(func() error {
			sums, ok, err := w.sums(gctx, i, segs)
			if err != nil {
				return fmt.Errorf("segment sums %d..%d: %s: %w", lo, hi, d.Store(), err)
			}
			if ok {
				ds[i] = sums
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	dense := make([]bool, n)
	for j, s := range ps {
		res.records += int(s.Records)
		dense[j] = s.Records == b[j+1]-b[j]
	}
	need := make([]bool, n)            // the segment's primary heads are needed
	bad := make([][]int, len(derived)) // segments a summing store disagrees on
	keyed := make([]map[int64]repair.Head, len(derived))
	for i, d := range derived {
		if ds[i] != nil {
			for j := range n {
				// Documents without a stored segment hash are read by
				// record, not taken for drift.
				if ds[i][j] != ps[j] || ds[i][j].Hashed != ds[i][j].Records {
					bad[i] = append(bad[i], j)
					need[j] = true
				}
			}
			continue
		}
		var keys []int64
		for j := range n {
			if !dense[j] {
				need[j] = true
				continue
			}
			for k := b[j] + 1; k <= b[j+1]; k++ {
				keys = append(keys, k)
			}
		}
		dh, err := w.heads(ctx, i, lo, hi, keys)
		if err != nil {
			return fmt.Errorf("segment %d..%d: %s: %w", lo, hi, d.Store(), err)
		}
		res.present[i] += int64(len(dh))
		keyed[i] = dh
		for j := range n {
			if !dense[j] {
				continue
			}
			var sum ingest.SegmentSum
			suspect := false
			for k := b[j] + 1; k <= b[j+1]; k++ {
				if h, ok := dh[k]; ok && h.Present {
					sum.Add(ingest.SegmentHash(h.Version, h.Digest))
					suspect = suspect || h.Suspect
				}
			}
			if sum != ps[j] || suspect {
				need[j] = true // drift, or cache keys legitimately absent
			}
		}
	}
	ph, err := w.primaryHeads(ctx, b, need)
	if err != nil {
		return err
	}
	dirty := make([]bool, n)
	for i, d := range derived {
		if ds[i] != nil {
			for _, j := range bad[i] {
				dirty[j] = true
			}
			if err := w.narrow(ctx, i, d, b, bad[i], ph, res.suspects); err != nil {
				return err
			}
			continue
		}
		// The cache, record by record, where its sums did not settle it:
		// dense segments' heads are at hand; the others are read for the
		// primary's keys.
		var keys []int64
		for j := range n {
			if need[j] && !dense[j] {
				for k := range within(ph, b[j], b[j+1]) {
					keys = append(keys, k)
				}
			}
		}
		dh := keyed[i]
		if len(keys) > 0 {
			more, err := w.heads(ctx, i, lo, hi, keys)
			if err != nil {
				return fmt.Errorf("segment %d..%d: %s: %w", lo, hi, d.Store(), err)
			}
			res.present[i] += int64(len(more))
			if dh == nil {
				dh = more
			} else {
				maps.Copy(dh, more)
			}
		}
		for j := range n {
			if need[j] && compareHeads(within(ph, b[j], b[j+1]), within(dh, b[j], b[j+1]), d.CacheAside, res.suspects) {
				dirty[j] = true
			}
		}
	}
	for _, d := range dirty {
		if d {
			res.dirty++
		}
	}
	return nil
}

// primaryHeads reads the primary's heads of the segments marked in need,
// one query per run of consecutive segments.
func (w *walker) primaryHeads(ctx context.Context, b []int64, need []bool) (map[int64]repair.Head, error) {
	ph := map[int64]repair.Head{}
	for j := 0; j < len(need); {
		if !need[j] {
			j++
			continue
		}
		end := j
		for end+1 < len(need) && need[end+1] {
			end++
		}
		lo, hi := b[j]+1, b[end+1]
		got, err := w.r.PrimaryHeads(ctx, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("segment %d..%d: %s: %w", lo, hi, w.r.Primary().Store(), err)
		}
		maps.Copy(ph, got)
		j = end + 1
	}
	return ph, nil
}

// within returns the heads of m with keys in (lo, hi], walking the
// range or the map, whichever is shorter.
func within(m map[int64]repair.Head, lo, hi int64) map[int64]repair.Head {
	out := map[int64]repair.Head{}
	if hi-lo <= int64(len(m)) {
		for k := lo + 1; k <= hi; k++ {
			if h, ok := m[k]; ok {
				out[k] = h
			}
		}
		return out
	}
	for k, h := range m {
		if k > lo && k <= hi {
			out[k] = h
		}
	}
	return out
}

// narrowSplit is how many sub-ranges a dirty segment is cut into before
// records are read: sparse drift (one bad record in a segment) then costs
// one more aggregation and one small read rather than the whole segment.
const narrowSplit = 16

// narrow finds the records behind dirty segments (indexes into b) of
// derived store i: each is cut into narrowSplit sub-ranges by the
// primary's keys, the store sums them (one request for all), the primary's
// sums come from its heads, and only the sub-ranges that still differ are
// read record by record.
func (w *walker) narrow(ctx context.Context, i int, d repair.Derived, b []int64, bad []int, ph map[int64]repair.Head, suspects map[int64]repair.Head) error {
	if len(bad) == 0 {
		return nil
	}
	var subs [][2]int64
	var want []ingest.SegmentSum
	for _, j := range bad {
		lo, hi := b[j], b[j+1]
		var keys []int64
		for k, h := range ph {
			if k > lo && k <= hi && h.Present && !h.Deleted {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		step := max(1, (len(keys)+narrowSplit-1)/narrowSplit)
		from := lo
		for x := step - 1; x < len(keys); x += step {
			if keys[x] < hi {
				subs = append(subs, [2]int64{from, keys[x]})
				from = keys[x]
			}
		}
		subs = append(subs, [2]int64{from, hi})
	}
	for _, r := range subs {
		var sum ingest.SegmentSum
		for k, h := range ph {
			if k > r[0] && k <= r[1] && h.Present && !h.Deleted {
				sum.Add(ingest.SegmentHash(h.Version, h.Digest))
			}
		}
		want = append(want, sum)
	}
	got, _, err := w.sums(ctx, i, subs)
	if err != nil {
		return fmt.Errorf("narrow %d ranges: %s: %w", len(subs), d.Store(), err)
	}
	for x, r := range subs {
		if got[x] == want[x] && got[x].Hashed == got[x].Records {
			continue
		}
		dh, err := w.r.DerivedHeads(ctx, i, r[0]+1, r[1], nil)
		if err != nil {
			return fmt.Errorf("segment %d..%d: %s: %w", r[0]+1, r[1], d.Store(), err)
		}
		seg := make(map[int64]repair.Head, len(dh))
		for k, p := range ph {
			if k > r[0] && k <= r[1] {
				seg[k] = p
			}
		}
		compareHeads(seg, dh, d.CacheAside, suspects)
	}
	return nil
}

// compareHeads adds to suspects the keys whose heads differ between the
// primary (ph) and a derived store (dh), orphans included; it reports
// whether any did.
func compareHeads(ph, dh map[int64]repair.Head, cacheAside bool, suspects map[int64]repair.Head) bool {
	found := false
	for k, p := range ph {
		if headDrift(p, dh[k], cacheAside) {
			suspects[k], found = p, true
		}
	}
	for k := range dh {
		if _, ok := ph[k]; !ok {
			suspects[k], found = repair.Head{}, true // an orphan
		}
	}
	return found
}

// maxUnkeyed bounds the unkeyed records one sweep takes in as suspects
// (the next sweep takes the rest once these are repaired).
const maxUnkeyed = 1000

// scanOrphans lists every key of the stores read by key, in bounded
// batches, and adds those without a primary row to suspects. The
// primary's keys are read once, in one streaming query, into a compressed
// bitmap (roaring: about 2 bytes a key, far less for dense ID ranges)
// rather than asking the primary about each scanned batch.
//
// A store whose key count, read after the walk, is no more than the keys
// the walk found it holding for primary rows (present[i]) holds no
// orphan, and is not scanned. (A key written and another expired between
// the walk and the count can hide one orphan until the next sweep, as a
// SCAN misses keys written while it runs.) It returns what it did, for
// the report.
func (s *Sweeper) scanOrphans(ctx context.Context, r repair.Ranged, present []int64, suspects map[int64]repair.Head) (string, error) {
	var known *roaring64.Bitmap
	var did []string
	for i, d := range r.Derived() {
		if u, ok := r.(repair.Unkeyed); ok {
			keys, others, ok, err := u.UnkeyedDerived(ctx, i, maxUnkeyed)
			if err != nil {
				return "", fmt.Errorf("%s records without a key: %w", d.Store(), err)
			}
			if ok && len(keys)+int(others) > 0 {
				var fresh []int64
				for _, k := range keys {
					if _, ok := suspects[k]; !ok {
						fresh = append(fresh, k)
					}
				}
				if err := s.primaryHeadsOf(ctx, r, fresh, suspects); err != nil {
					return "", err
				}
				did = append(did, fmt.Sprintf("%s: %d records without a key field (%d by a key id: suspects; %d others, for an operator)", d.Store(), len(keys)+int(others), len(keys), others))
			}
		}
		if c, ok := r.(repair.Counted); ok && i < len(present) {
			n, ok, err := c.CountDerived(ctx, i)
			if err != nil {
				return "", fmt.Errorf("count %s keys: %w", d.Store(), err)
			}
			if ok && n <= present[i] {
				did = append(did, fmt.Sprintf("%s: skipped, its %d keys are all primary rows' keys", d.Store(), n))
				continue
			}
		}
		scanned, err := r.ScanDerived(ctx, i, func(keys []int64) error {
			if known == nil {
				known = roaring64.New()
				if err := r.PrimaryKeys(ctx, func(ids []int64) error {
					for _, id := range ids {
						known.Add(uint64(id))
					}
					return nil
				}); err != nil {
					return fmt.Errorf("%s keys: %w", r.Primary().Store(), err)
				}
			}
			for _, k := range keys {
				if !known.Contains(uint64(k)) {
					suspects[k] = repair.Head{}
				}
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("scan %s: %w", d.Store(), err)
		}
		if scanned {
			did = append(did, d.Store()+": scanned")
		}
	}
	return strings.Join(did, "; "), nil
}

// finish rechecks the suspects after o.Recheck, records findings and
// in-flight counts in rep, and repairs with o.Repair.
func (s *Sweeper) finish(ctx context.Context, r repair.Ranged, o Options, suspects map[int64]repair.Head, rep *Report) error {
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
		res, err := s.checker.Compare(ctx, r.Name(), keys)
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
					s.checker.Metrics.Drifted(r.Name(), d.Store(), v.Class)
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
	total := &repair.Run{DryRun: o.DryRun}
	for chunk := range slices.Chunk(drifted, s.checker.MaxKeys) {
		run, _, err := s.repairer.Repair(ctx, repair.Request{Entity: o.Entity, Keys: chunk, DryRun: o.DryRun, Trigger: o.Trigger, Actor: o.Actor})
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
func headDrift(p, d repair.Head, cacheAside bool) bool {
	switch {
	case !p.Present || p.Deleted:
		return d.Present
	case !d.Present:
		return !cacheAside
	}
	return d.Suspect || p.Version != d.Version || p.Digest != d.Digest
}
