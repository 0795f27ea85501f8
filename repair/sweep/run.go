package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/triad-dev/triad/repair"
)

// Sweep states.
const (
	Running    = "running"
	Paused     = "paused"
	Cancelled  = "cancelled"
	Done       = "done"
	Failed     = "failed"
	Superseded = "superseded" // the dataset version switched: a successor sweeps the new one
)

// Range states.
const (
	RangePending = "pending"
	RangeRunning = "running"
	RangeDone    = "done"
)

// ErrBadOption is a sweep option out of range.
var ErrBadOption = errors.New("bad sweep option")

// ErrSweepState is a pause, resume or cancel the sweep's state does not allow.
var ErrState = errors.New("sweep state does not allow this")

// ErrNoSweep is an unknown sweep ID (a Store returns it).
var ErrNoSweep = errors.New("no such sweep")

// Record is a persisted
type Record struct {
	ID     int64  `json:"id"`
	Entity string `json:"entity"`
	Mode   string `json:"mode"`
	// ContentTrue: the sweep judges content (every mode but labels, and
	// labels too for an entity with no labels to read).
	ContentTrue bool `json:"content_true"`
	// Checkpoint: the checkpointed store's base and taken checkpoints.
	Checkpoint *CheckpointReport `json:"checkpoint,omitempty"`
	// Present[i]: keys derived store i held for the primary rows walked.
	Present        []int64    `json:"present,omitempty"`
	OrphanScan     string     `json:"orphan_scan,omitempty"`
	State          string     `json:"state"`
	Repair         bool       `json:"repair"`
	DryRun         bool       `json:"dry_run"`
	SegmentSize    int        `json:"segment_size"`
	Rate           int        `json:"rate"` // records/s per runner; 0 unlimited
	DatasetVersion int        `json:"dataset_version"`
	Trigger        string     `json:"trigger"`
	Actor          string     `json:"actor"`
	Schedule       string     `json:"schedule,omitempty"`
	Supersedes     *int64     `json:"supersedes,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	FinishedAt     *time.Time `json:"finished_at,omitempty"`
	Ranges         int        `json:"ranges"` // 0 until planned
	RangesDone     int        `json:"ranges_done"`
	Segments       int        `json:"segments"`
	Dirty          int        `json:"dirty_segments"`
	Records        int64      `json:"records"`
	Suspects       int        `json:"suspects"`
	InFlight       int        `json:"in_flight"`
	Findings       int        `json:"findings"`
	Repaired       int        `json:"repaired"`
	RepairRun      *int64     `json:"repair_run,omitempty"`
	// Stuck: running, but no range made progress for the stuck threshold.
	Stuck bool   `json:"stuck"`
	Error string `json:"error,omitempty"`
}

// Range is a persisted part of a sweep: the key range (Lo, Hi], claimed by
// one replica at a time, with its progress (Cursor: the upper bound of the
// last finished batch of segments).
type Range struct {
	SweepID    int64      `json:"sweep_id"`
	Lo         int64      `json:"lo"`
	Hi         int64      `json:"hi"`
	State      string     `json:"state"`
	Owner      string     `json:"owner,omitempty"`
	Attempts   int        `json:"attempts"`
	Cursor     int64      `json:"cursor"`
	Mode       string     `json:"mode,omitempty"`
	Segments   int        `json:"segments"`
	Dirty      int        `json:"dirty_segments"`
	Records    int64      `json:"records"`
	UpdatedAt  time.Time  `json:"updated_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// Failures counts runs of the range that failed for a store reason;
	// LastError is the latest, and the range is not claimed again before
	// RetryAt (exponential back-off).
	Failures  int        `json:"failures"`
	LastError string     `json:"last_error,omitempty"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	// Holder is, for a running range as listed by the API, the replica
	// whose live claim holds it now; "" while none does (its owner died:
	// another replica takes it over), nil when unknown.
	Holder *string `json:"holder,omitempty"`
}

// RangeKey is the claim key of rg.
func RangeKey(rg Range) string { return rangeKey(rg) }

// Progress is one batch of a range, saved with its suspects.
type Progress struct {
	Cursor           int64
	Segments, Dirty  int
	Records          int
	Present          []int64 // per derived store, as batchResult.present
	Mode             string
	Done             bool
	Suspects         map[int64]repair.Head
	Owner            string
	SweepID, RangeLo int64
}

// Store persists sweeps and their ranges (repair/postgres). Safe for
// concurrent use by every replica.
type Store interface {
	CreateSweep(ctx context.Context, r *Record) error
	GetSweep(ctx context.Context, id int64) (Record, error)
	ListSweeps(ctx context.Context, limit int) ([]Record, error)
	// Plan cuts a sweep into ranges once: under a lock on the sweep, if it
	// has no ranges yet, cut returns their upper bounds and they are
	// saved, with the sweep's checkpoint (nil: none).
	Plan(ctx context.Context, id int64, sc *CheckpointReport, cut func() ([]int64, error)) error
	Ranges(ctx context.Context, id int64) ([]Range, error)
	// Work lists the running sweeps with work left: unplanned ones, their
	// unfinished ranges (pending, or running under an owner whose claim
	// may have lapsed), and planned sweeps whose ranges are all done but
	// which are not finished.
	Work(ctx context.Context) (unplanned []Record, ranges []Range, finishable []Record, err error)
	// FailRange puts a range that failed back to pending with its error,
	// not to be claimed before retryAt; it returns its failure count.
	FailRange(ctx context.Context, id, lo int64, cause string, retryAt time.Time) (int, error)
	// NoteError shows why a running sweep waits (its finish failed for a
	// store reason and is tried again); a finished sweep clears it.
	NoteError(ctx context.Context, id int64, note string) error
	// StartRange records that owner runs the range (one more attempt).
	StartRange(ctx context.Context, id, lo int64, owner string) (Range, error)
	// SaveProgress records a batch (suspects, counts, cursor; done) and
	// returns the sweep's state, which an operator may have changed.
	SaveProgress(ctx context.Context, p Progress) (string, error)
	// SetState moves a sweep between running and paused, or to cancelled.
	SetState(ctx context.Context, id int64, to string) (Record, error)
	// Supersede ends a running or paused sweep as superseded; ok is false
	// when it already ended (another replica superseded it).
	Supersede(ctx context.Context, id int64, reason string) (ok bool, err error)
	Suspects(ctx context.Context, id int64) (map[int64]repair.Head, error)
	// Finish records the end: state, counts, findings, error.
	Finish(ctx context.Context, r *Record, findings []Finding) error
	Findings(ctx context.Context, id int64, limit int) ([]Finding, error)
	// MarkStuck flags running sweeps with no progress for stuckAfter
	// (and clears the flag of those moving again); it returns the ones
	// flagged now.
	MarkStuck(ctx context.Context, stuckAfter time.Duration) ([]Record, error)
}

// Claims hands a unit of work to one replica at a time, under a lease that
// ends with the replica (repair/leader, over etcd).
type Claims interface {
	// Claim takes key; ok is false when another live replica holds it.
	Claim(ctx context.Context, key string) (c Claim, ok bool, err error)
}

// Claim is held work.
type Claim interface {
	// Lost is closed when the claim lapsed (the lease expired): another
	// replica may hold the work now, so stop before writing more.
	Lost() <-chan struct{}
	Release(ctx context.Context) error
}

// WorkerConfig configures a sweep worker.
type WorkerConfig struct {
	Owner string // this replica
	// Recheck is the wait before suspects are read again (default 2s).
	Recheck time.Duration
	// Poll is how often the worker looks for work (default 1s; Wake
	// shortens it).
	Poll time.Duration
	// RangeSegments is how many segments a range (the unit a replica
	// claims) holds (default 32).
	RangeSegments int
	// Serving returns the dataset version this replica serves (0:
	// unknown); a sweep ends when it differs from the one it began on.
	Serving func() int
}

// Worker runs persisted sweeps on one replica: it plans new sweeps into
// ranges, claims ranges no live replica holds (a killed replica's range
// is claimed again once its lease expires, and resumes from its cursor),
// and claims the finish of sweeps whose ranges are all done: scan for
// orphans, recheck the suspects, repair. Every replica runs one; any mix
// of them finishes a
type Worker struct {
	sw     *Sweeper
	st     Store
	claims Claims
	cfg    WorkerConfig
	log    *slog.Logger
	wake   chan struct{}
	// finishes backs off the finish of sweeps whose finish failed for a
	// store reason (the finish is retried, not the sweep failed). Only
	// Run's goroutine touches it.
	finishes map[int64]retry
}

// retry is when a failed step may be tried again, and how often it
// failed.
type retry struct {
	failures int
	next     time.Time
}

// NewWorker returns a worker.
func NewWorker(sw *Sweeper, st Store, claims Claims, cfg WorkerConfig, log *slog.Logger) *Worker {
	if cfg.Recheck <= 0 {
		cfg.Recheck = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.RangeSegments <= 0 {
		cfg.RangeSegments = 32
	}
	if cfg.Serving == nil {
		cfg.Serving = func() int { return 0 }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{sw: sw, st: st, claims: claims, cfg: cfg, log: log.With("component", "repair.sweep"), wake: make(chan struct{}, 1)}
}

// Start creates a sweep on the dataset version this replica serves and
// wakes the worker.
func (w *Worker) Start(ctx context.Context, rec Record) (Record, error) {
	r, err := w.sw.ranged(rec.Entity)
	if err != nil {
		return rec, err
	}
	if !ValidMode(rec.Mode) {
		return rec, fmt.Errorf("%w: mode %q (auto, digest, records or labels)", ErrBadOption, rec.Mode)
	}
	if rec.Mode == "" {
		rec.Mode = ModeAuto
	}
	rec.ContentTrue = contentTrue(r, rec.Mode)
	if rec.SegmentSize <= 0 {
		rec.SegmentSize = 1000
	}
	if rec.SegmentSize > repair.MaxSegmentRows {
		return rec, fmt.Errorf("%w: segment_size %d is above %d", ErrBadOption, rec.SegmentSize, repair.MaxSegmentRows)
	}
	rec.DatasetVersion = w.cfg.Serving()
	if err := w.st.CreateSweep(ctx, &rec); err != nil {
		return rec, err
	}
	w.Wake()
	return rec, nil
}

// Wake makes the worker look for work now.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		worked, err := w.step(ctx)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("sweep worker", "err", err)
		}
		if worked {
			continue
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-time.After(w.cfg.Poll):
		}
	}
}

// step does one unit of work, if there is one it can claim.
func (w *Worker) step(ctx context.Context) (bool, error) {
	unplanned, ranges, finishable, err := w.st.Work(ctx)
	if err != nil {
		return false, err
	}
	if len(unplanned) > 0 {
		// One at a time: planning the oldest is this step's work.
		if err := w.plan(ctx, unplanned[0]); err != nil {
			return false, fmt.Errorf("plan sweep %d: %w", unplanned[0].ID, err)
		}
		return true, nil
	}
	for _, rg := range ranges {
		ok, err := w.runRange(ctx, rg)
		if err != nil && ctx.Err() == nil {
			// A store failed or hung: the range backs off and says why; the
			// other ranges, sweeps and entities go on.
			w.backOff(ctx, rg, err)
			continue
		}
		if ok || err != nil {
			return ok, err
		}
	}
	for _, rec := range finishable {
		if r, ok := w.finishes[rec.ID]; ok && time.Now().Before(r.next) {
			continue
		}
		ok, err := w.finishSweep(ctx, rec)
		if err != nil && ctx.Err() == nil {
			// A store failed or hung while the sweep finished: the finish
			// backs off and is tried again; the sweep does not fail.
			if w.finishes == nil {
				w.finishes = map[int64]retry{}
			}
			r := w.finishes[rec.ID]
			wait := min(RangeBackoff<<min(r.failures, 16), RangeBackoffMax)
			w.finishes[rec.ID] = retry{failures: r.failures + 1, next: time.Now().Add(wait)}
			w.log.WarnContext(ctx, "sweep finish failed; backing off", "sweep", rec.ID, "failures", r.failures+1, "retry_in", wait, "err", err)
			note := fmt.Sprintf("finish: %s (failure %d; retrying at %s)", err, r.failures+1, time.Now().Add(wait).UTC().Format(time.RFC3339))
			if err := w.st.NoteError(context.WithoutCancel(ctx), rec.ID, note); err != nil {
				w.log.WarnContext(ctx, "sweep finish error not recorded", "sweep", rec.ID, "err", err)
			}
			continue
		}
		if ok {
			delete(w.finishes, rec.ID)
			return ok, err
		}
	}
	return false, nil
}

// RangeBackoff is the first wait after a range fails; it doubles with each
// failure up to RangeBackoffMax.
var (
	RangeBackoff    = 2 * time.Second
	RangeBackoffMax = 5 * time.Minute
)

func (w *Worker) backOff(ctx context.Context, rg Range, cause error) {
	wait := RangeBackoff << min(rg.Failures, 16)
	wait = min(wait, RangeBackoffMax)
	n, err := w.st.FailRange(context.WithoutCancel(ctx), rg.SweepID, rg.Lo, cause.Error(), time.Now().Add(wait))
	if err != nil {
		w.log.WarnContext(ctx, "record a range failure", "sweep", rg.SweepID, "range", rg.Lo, "err", err)
	}
	w.sw.Metrics.rangeFailed()
	w.log.WarnContext(ctx, "sweep range failed; backing off", "sweep", rg.SweepID, "range", rg.Lo, "failures", n, "retry_in", wait, "err", cause)
}

// plan cuts the key space into ranges of cfg.RangeSegments segments.
func (w *Worker) plan(ctx context.Context, rec Record) error {
	r, err := w.sw.ranged(rec.Entity)
	if err != nil {
		return w.fail(ctx, rec, err)
	}
	// The checkpoint is taken before any range refreshes and reads.
	sc, err := w.sw.takeCheckpoint(ctx, r, rec.Mode)
	if err != nil {
		return err
	}
	return w.st.Plan(ctx, rec.ID, sc, func() ([]int64, error) {
		size := rec.SegmentSize * w.cfg.RangeSegments
		var his []int64
		for after := int64(0); ; {
			b, err := r.Bounds(ctx, after, math.MaxInt64, size, 256)
			if err != nil {
				return nil, err
			}
			his = append(his, b...)
			if len(b) < 256 {
				break
			}
			after = b[len(b)-1]
		}
		if len(his) == 0 || his[len(his)-1] != math.MaxInt64 {
			his = append(his, math.MaxInt64) // keys above the last row (orphans, new rows)
		}
		return his, nil
	})
}

func (w *Worker) fail(ctx context.Context, rec Record, cause error) error {
	rec.State, rec.Error = Failed, cause.Error()
	return errors.Join(cause, w.st.Finish(context.WithoutCancel(ctx), &rec, nil))
}

// current reports whether rec still sweeps the served dataset version;
// if not, it ends rec as superseded and (once, across replicas) starts
// its successor on the new version.
func (w *Worker) current(ctx context.Context, rec Record) (bool, error) {
	now := w.cfg.Serving()
	if rec.DatasetVersion == 0 || now == 0 || now == rec.DatasetVersion {
		return true, nil
	}
	ok, err := w.st.Supersede(ctx, rec.ID, fmt.Sprintf("dataset version switched from %d to %d: sweep %d continues on v%d", rec.DatasetVersion, now, rec.ID, now))
	if err != nil || !ok {
		return false, err
	}
	next := Record{Entity: rec.Entity, Mode: rec.Mode, Repair: rec.Repair, DryRun: rec.DryRun, SegmentSize: rec.SegmentSize, Rate: rec.Rate,
		Trigger: rec.Trigger, Actor: rec.Actor, Schedule: rec.Schedule, Supersedes: &rec.ID, DatasetVersion: now}
	if err := w.st.CreateSweep(ctx, &next); err != nil {
		return false, err
	}
	w.log.InfoContext(ctx, "dataset version switched during a sweep: ended it, started its successor", "sweep", rec.ID, "successor", next.ID,
		"from", rec.DatasetVersion, "to", now)
	return false, nil
}

func rangeKey(rg Range) string {
	return "sweeps/" + strconv.FormatInt(rg.SweepID, 10) + "/ranges/" + strconv.FormatInt(rg.Lo, 10)
}

// runRange claims a range and compares it batch by batch from its
// cursor, saving each batch. ok is false when another replica holds it.
func (w *Worker) runRange(ctx context.Context, rg Range) (bool, error) {
	ctx, span := tracer.Start(ctx, "sweep.range", oteltrace.WithAttributes(attribute.Int64("triad.sweep_id", rg.SweepID),
		attribute.Int64("triad.range.lo", rg.Lo), attribute.Int64("triad.range.hi", rg.Hi), attribute.Int64("triad.range.cursor", rg.Cursor)))
	ok, err := w.runRangeClaimed(ctx, rg)
	span.SetAttributes(attribute.Bool("triad.claimed", ok))
	endSpan(span, err)
	return ok, err
}

func (w *Worker) runRangeClaimed(ctx context.Context, rg Range) (bool, error) {
	rec, err := w.st.GetSweep(ctx, rg.SweepID)
	if err != nil || rec.State != Running {
		return false, err
	}
	if cur, err := w.current(ctx, rec); err != nil || !cur {
		return err == nil, err
	}
	cl, ok, err := w.claims.Claim(ctx, rangeKey(rg))
	if err != nil || !ok {
		return false, err
	}
	defer func() { _ = cl.Release(context.WithoutCancel(ctx)) }()
	if rg, err = w.st.StartRange(ctx, rg.SweepID, rg.Lo, w.cfg.Owner); err != nil || rg.State == RangeDone {
		return err == nil, err
	}
	if rg.Attempts > 1 {
		w.log.WarnContext(ctx, "resuming a range another runner left", "sweep", rg.SweepID, "range", rg.Lo, "cursor", rg.Cursor, "attempt", rg.Attempts)
	}
	r, err := w.sw.ranged(rec.Entity)
	if err != nil {
		return true, w.fail(ctx, rec, err)
	}
	if err := prepare(ctx, r); err != nil {
		return true, err
	}
	o := Options{Entity: rec.Entity, Mode: rec.Mode, SegmentSize: rec.SegmentSize, Rate: rec.Rate}
	o.defaults()
	wk := w.sw.walker(r, o, rec.Checkpoint)
	if rg.Mode == ModeRecords {
		wk.mode = ModeRecords
	}
	err = wk.walk(ctx, rg.Cursor, rg.Hi, func(b batchResult) (bool, error) {
		select {
		case <-cl.Lost():
			return false, fmt.Errorf("sweep %d range %d: the claim lapsed; another replica resumes it", rg.SweepID, rg.Lo)
		default:
		}
		state, err := w.st.SaveProgress(ctx, Progress{SweepID: rg.SweepID, RangeLo: rg.Lo, Owner: w.cfg.Owner, Cursor: b.hi,
			Segments: b.segments, Dirty: b.dirty, Records: b.records, Present: b.present, Mode: wk.mode, Done: b.last, Suspects: b.suspects})
		if err != nil || b.last {
			return false, err
		}
		for state == Paused {
			// Hold the claim and wait; resume, cancel or a switch ends it.
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-cl.Lost():
				return false, nil
			case <-time.After(250 * time.Millisecond):
			}
			if rec, err = w.st.GetSweep(ctx, rg.SweepID); err != nil {
				return false, err
			}
			state = rec.State
		}
		if state != Running {
			return false, nil // cancelled or superseded: stop here
		}
		cur, err := w.current(ctx, rec)
		return cur, err
	})
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("sweep %d: %w", rg.SweepID, err) // the range stays claimable: a retry resumes it
	}
	return true, err
}

// finishSweep claims the end of a sweep whose ranges are all done: scan
// the stores read by key for orphans, recheck the suspects, classify,
// repair, and save the findings. A replica killed here leaves the claim to
// lapse; the next one starts the finish again (repairs of records already
// repaired find them consistent: nothing is written twice).
func (w *Worker) finishSweep(ctx context.Context, rec Record) (bool, error) {
	ctx, span := tracer.Start(ctx, "sweep.finish", oteltrace.WithAttributes(attribute.Int64("triad.sweep_id", rec.ID), attribute.String("triad.entity", rec.Entity)))
	ok, err := w.finishClaimed(ctx, rec)
	span.SetAttributes(attribute.Bool("triad.claimed", ok))
	endSpan(span, err)
	return ok, err
}

func (w *Worker) finishClaimed(ctx context.Context, rec Record) (bool, error) {
	cl, ok, err := w.claims.Claim(ctx, "sweeps/"+strconv.FormatInt(rec.ID, 10)+"/finish")
	if err != nil || !ok {
		return false, err
	}
	defer func() { _ = cl.Release(context.WithoutCancel(ctx)) }()
	if rec, err = w.st.GetSweep(ctx, rec.ID); err != nil || rec.State != Running || rec.FinishedAt != nil {
		return err == nil, err
	}
	r, err := w.sw.ranged(rec.Entity)
	if err != nil {
		return true, w.fail(ctx, rec, err)
	}
	suspects, err := w.st.Suspects(ctx, rec.ID)
	if err != nil {
		return true, err
	}
	if rec.OrphanScan, err = w.sw.scanOrphans(ctx, r, rec.Present, suspects); err != nil {
		return true, fmt.Errorf("sweep %d: orphan scan: %w", rec.ID, err) // a store reason: the finish is tried again
	}
	untrusted, err := w.sw.changedSince(ctx, r, rec.Checkpoint, suspects)
	if err != nil {
		return true, err // a store reason: the finish is tried again
	}
	rec.Suspects = len(suspects)
	o := Options{Entity: rec.Entity, Mode: rec.Mode, Recheck: w.cfg.Recheck, Repair: rec.Repair, DryRun: rec.DryRun, Trigger: rec.Trigger, Actor: rec.Actor}
	o.defaults()
	rep := Report{Entity: rec.Entity, Mode: rec.Mode, ContentTrue: rec.ContentTrue, Checkpoint: rec.Checkpoint, OrphanScan: rec.OrphanScan}
	if err := w.sw.finish(ctx, r, o, suspects, &rep); err != nil {
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
		return true, fmt.Errorf("sweep %d: finish: %w", rec.ID, err) // a store reason: the finish is tried again
	}
	if err := w.sw.settleCheckpoint(ctx, r, rec.Checkpoint, rec.ID, &rep, untrusted); err != nil {
		return true, err
	}
	select {
	case <-cl.Lost():
		return true, fmt.Errorf("sweep %d: the finish claim lapsed; another replica finishes it", rec.ID)
	default:
	}
	// Done: every range finished, so an error a range had before a
	// retry succeeded is history (the range keeps it, with its failure
	// count), not the sweep's.
	rec.State, rec.Error = Done, ""
	rec.InFlight, rec.Findings = rep.InFlight, len(rep.Findings)
	if rep.Repair != nil {
		rec.Repaired = rep.Repair.Repaired
		id := rep.Repair.ID
		rec.RepairRun = &id
	}
	if err := w.st.Finish(context.WithoutCancel(ctx), &rec, rep.Findings); err != nil {
		return true, fmt.Errorf("save sweep %d: %w", rec.ID, err)
	}
	rep.Records, rep.Suspects = int(rec.Records), rec.Suspects
	rep.Took = rec.FinishedAt.Sub(rec.CreatedAt)
	w.sw.Metrics.swept(rec.Entity, rec.Records, &rep)
	w.log.InfoContext(ctx, "sweep finished", "sweep", rec.ID, "records", rec.Records, "segments", rec.Segments, "dirty_segments", rec.Dirty,
		"findings", rec.Findings, "repaired", rec.Repaired, "took", rep.Took)
	return true, nil
}

// WatchStuck runs on the leader: every interval it flags running sweeps
// that made no progress for stuckAfter (logged once; the API and the
// triad_repair_sweeps_stuck gauge show the flag) and clears the flag of
// those moving again.
func (w *Worker) WatchStuck(ctx context.Context, interval, stuckAfter time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	logged := map[int64]bool{}
	for {
		recs, err := w.st.MarkStuck(ctx, stuckAfter)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("stuck sweeps", "err", err)
		}
		if err == nil {
			now := map[int64]bool{}
			for _, r := range recs {
				now[r.ID] = true
				if !logged[r.ID] {
					w.log.Warn("sweep stuck: no progress", "sweep", r.ID, "entity", r.Entity, "since", r.UpdatedAt,
						"ranges_done", r.RangesDone, "ranges", r.Ranges)
				}
			}
			logged = now
			w.sw.Metrics.stuck(len(recs))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
