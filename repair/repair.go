package repair

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// Actions.
const (
	ActionWrite  = "write"
	ActionDelete = "delete"
	ActionNone   = "none"
)

// ErrAhead is why a store holding a newer version than the primary is not
// repaired automatically: the primary may have lost a write, and lowering
// the store's version would defeat its version guard.
var ErrAhead = errors.New("the store holds a newer version than the primary; not lowered automatically (investigate: was a write lost in the primary?)")

// Plan is the repair matrix for one derived store: what to do about a
// class of drift. The table is docs/repair-matrix.md; a test covers each
// cell.
func Plan(c Class, cacheAside bool) (action string, reason error) {
	switch c {
	case ClassMissing, ClassStale, ClassFieldMismatch, ClassCorrupt:
		return ActionWrite, nil
	case ClassOrphan, ClassOrphanDeleted:
		return ActionDelete, nil
	case ClassAhead:
		if cacheAside {
			// A cache holds no version guard history: compare-and-set it
			// back to the primary's record.
			return ActionWrite, nil
		}
		return ActionNone, ErrAhead
	}
	return ActionNone, nil // ok, absent, absent_allowed
}

// Request is a repair by key.
type Request struct {
	Entity  string
	Keys    []string
	DryRun  bool
	Budget  int // most writes (and deletes) in the run; 0: no limit
	Trigger string
	Actor   string
	// plan, when set, limits the run to these reviewed entries
	// (Planner.Apply); bulk lifts the bound to MaxPlanKeys.
	plan map[planKey]Entry
	bulk bool
	// keep, when set, is which entries the run returns (all are logged):
	// a bulk run need not hold its no-ops.
	keep func(Entry) bool
}

// Repairer repairs records from the primary and logs every step.
type Repairer struct {
	checker *Checker
	log     Log
}

// NewRepairer returns a repairer over the checker's entities.
func NewRepairer(c *Checker, l Log) *Repairer { return &Repairer{checker: c, log: l} }

// Repair checks the keys again (the primary is re-read at repair time),
// then for each derived store of each key plans by the matrix and, unless
// it is a dry run, applies the plan through the store's guarded Fixer. A
// dry run records exactly the entries a real run would, as planned. A
// key already consistent is recorded as a no-op, so repeating a repair
// writes nothing. The run and its entries go to the log.
func (r *Repairer) Repair(ctx context.Context, req Request) (Run, []Entry, error) {
	ctx, span := tracer.Start(ctx, "repair.run", oteltrace.WithAttributes(
		attribute.String("triad.entity", req.Entity), attribute.Int("triad.keys", len(req.Keys)),
		attribute.Bool("triad.dry_run", req.DryRun), attribute.String("triad.trigger", req.Trigger)))
	run, entries, err := r.repair(ctx, req)
	span.SetAttributes(attribute.Int64("triad.run_id", run.ID), attribute.Int("triad.planned", run.Planned),
		attribute.Int("triad.repaired", run.Repaired), attribute.Int("triad.noop", run.Noop),
		attribute.Int("triad.conflicts", run.Conflicts), attribute.Int("triad.failed", run.Failed))
	endSpan(span, err)
	return run, entries, err
}

func (r *Repairer) repair(ctx context.Context, req Request) (Run, []Entry, error) {
	e, err := r.checker.Entity(req.Entity)
	if err != nil {
		return Run{}, nil, err
	}
	if req.Trigger == "" {
		req.Trigger = TriggerAPI
	}
	run := Run{Trigger: req.Trigger, Actor: req.Actor, Entity: req.Entity, DryRun: req.DryRun}
	if req.Budget > 0 {
		b := req.Budget
		run.Budget = &b
	}
	// Validate before the run exists: a bad request leaves no trace.
	for i, k := range req.Keys {
		if _, err := e.ParseKey(k); err != nil {
			return Run{}, nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	most := r.checker.MaxKeys
	if req.bulk {
		most = MaxPlanKeys // read MaxKeys at a time
	}
	if len(req.Keys) == 0 || len(req.Keys) > most {
		return Run{}, nil, fmt.Errorf("%w: a repair takes 1 to %d keys, got %d", ErrTooMany, most, len(req.Keys))
	}
	if err := r.log.StartRun(ctx, &run); err != nil {
		return Run{}, nil, fmt.Errorf("repair log: %w", err)
	}
	// Entries go to the log a chunk at a time (what a chunk wrote is
	// logged before the next is read), and the run's totals at the end.
	// A bulk run reads bulkChunk keys at a time: what it holds at once
	// stays small whatever the run's size.
	var entries, pending []Entry
	record := func() error {
		err := r.log.Record(context.WithoutCancel(ctx), pending)
		for _, en := range pending {
			if req.keep == nil || req.keep(en) {
				entries = append(entries, en)
			}
		}
		pending = pending[:0]
		return err
	}
	finish := func(cause error) (Run, []Entry, error) {
		if cause != nil {
			run.Error = cause.Error()
		}
		lerr := record()
		if lerr == nil {
			lerr = r.log.FinishRun(context.WithoutCancel(ctx), &run)
		}
		if lerr != nil {
			return run, entries, errors.Join(cause, fmt.Errorf("repair log: %w", lerr))
		}
		return run, entries, cause
	}
	writes := 0
	step := r.checker.MaxKeys
	if req.bulk {
		step = min(step, bulkChunk)
	}
	for from := 0; from < len(req.Keys); from += step {
		if from > 0 {
			if err := record(); err != nil {
				return finish(fmt.Errorf("repair log: %w", err))
			}
		}
		chunk := req.Keys[from:min(from+step, len(req.Keys))]
		records, err := r.checker.read(ctx, e, chunk)
		if err != nil {
			// The primary (or a store) cannot be read: nothing more is
			// repaired.
			return finish(fmt.Errorf("read the stores: %w", err))
		}
		for _, k := range records.keys {
			p := records.primary[k]
			for i, d := range e.Derived() {
				var reviewed *Entry
				if req.plan != nil {
					pe, ok := req.plan[planKey{k, d.Store()}]
					if !ok {
						continue // not in the plan: not touched
					}
					reviewed = &pe
				}
				obs := records.derived[i][k]
				class, diff := classify(e, p, obs, d.CacheAside)
				action, reason := Plan(class, d.CacheAside)
				en := Entry{RunID: run.ID, Entity: e.Name(), Key: k, Store: d.Store(), Class: class, Action: action, Priority: d.Priority,
					Before: state(obs), Outcome: OutcomeNoop, Fields: diff, Observed: obs.Corrupt, WriteTrace: p.WriteTrace}
				if obs.Corrupt != "" {
					en.Bytes = obs.Bytes
				}
				var changed string
				if reviewed != nil {
					changed = reviewed.changedSince(en, p)
				}
				switch {
				case changed != "":
					en.Outcome, en.Error = OutcomeSkipped, "changed since the plan was reviewed: "+changed+"; not written"
				case reason != nil:
					en.Outcome, en.Error = OutcomeSkipped, reason.Error()
				case action == ActionNone:
					en.After = state(obs)
				case d.Fixer == nil:
					en.Outcome, en.Error = OutcomeSkipped, "this store has no repairer"
				case req.Budget > 0 && writes >= req.Budget:
					en.Outcome, en.Error = OutcomeSkipped, fmt.Sprintf("the run's budget of %d writes is spent", req.Budget)
				default:
					writes++
					if req.DryRun {
						en.Outcome = OutcomePlanned
						if action == ActionWrite {
							en.After = state(p)
						}
						break
					}
					var ok bool
					var now string
					var err error
					if action == ActionWrite {
						ok, now, err = d.Fixer.Put(ctx, k, obs, p)
					} else {
						ok, now, err = d.Fixer.Delete(ctx, k, obs)
					}
					switch {
					case err != nil:
						en.Outcome, en.Error = OutcomeFailed, err.Error()
					case !ok:
						// Nothing was written: After stays empty.
						en.Outcome = OutcomeConflict
						en.Error = fmt.Sprintf("not written: the copy changed after it was read (read: %s; now: %s); the newer value was kept", describe(obs), now)
					default:
						en.Outcome = OutcomeRepaired
						if action == ActionWrite {
							en.After = state(p)
						}
					}
				}
				run.Count(en.Outcome)
				r.checker.Metrics.repaired(en)
				pending = append(pending, en)
			}
		}
	}
	return finish(nil)
}

// bulkChunk is how many keys a bulk run (a plan) reads at a time.
const bulkChunk = 250

// describe says what a copy held, for a conflict's message.
func describe(r Record) string {
	switch {
	case !r.Present:
		return "nothing"
	case r.Corrupt != "":
		return fmt.Sprintf("an invalid value of %d bytes", r.Bytes)
	}
	return fmt.Sprintf("version %d, content digest %d", r.Version, r.Computed)
}

// state is what the log records of a copy: its version and the digest of
// its content as it is (recomputed; a stored digest can lie about content
// changed behind the writer).
func state(r Record) *State {
	if !r.Present || r.Deleted {
		return nil
	}
	return &State{Version: r.Version, Digest: r.Computed}
}
