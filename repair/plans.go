package repair

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// MaxPlanKeys bounds the records of one plan (a dry run reads them
// MaxKeys at a time).
const MaxPlanKeys = 10000

// Errors of plans.
var (
	ErrPlanNotFound = errors.New("no such plan")
	ErrPlanApplied  = errors.New("the plan was already applied")
	ErrPlanEmpty    = errors.New("nothing to repair: the dry run planned no write")
)

// SavedPlan is a reviewed repair: a dry run saved with an ID. Applying it
// writes exactly its entries, each only if the record is still what the
// dry run saw.
type SavedPlan struct {
	ID     int64  `json:"id"`
	Entity string `json:"entity"`
	// Source says what was planned: the IDs given, a sweep's findings or
	// a repair-log filter.
	Source    string    `json:"source"`
	DryRunID  *int64    `json:"dry_run_id,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Keys      int       `json:"keys"`
	Entries   int       `json:"entries"`
	// Applied: who claimed the plan and when, and the run that applied it.
	AppliedBy  string     `json:"applied_by,omitempty"`
	AppliedAt  *time.Time `json:"applied_at,omitempty"`
	AppliedRun *int64     `json:"applied_run,omitempty"`
	// Counts and Sample are filled by a plan's own read (review).
	Counts []PlanCount `json:"counts,omitempty"`
	Sample []Entry     `json:"sample,omitempty"`
}

// PlanCount is how many entries of a plan share a store, class and action.
type PlanCount struct {
	Store  string `json:"store"`
	Class  Class  `json:"class"`
	Action string `json:"action"`
	Count  int    `json:"count"`
}

// PlanStore keeps plans (repair/postgres). Safe for concurrent use.
type PlanStore interface {
	// CreatePlan fills p.ID and p.CreatedAt.
	CreatePlan(ctx context.Context, p *SavedPlan, entries []Entry) error
	// GetPlan returns a plan with its counts and a sample of sample
	// entries; ErrPlanNotFound when there is none.
	GetPlan(ctx context.Context, id int64, sample int) (SavedPlan, error)
	// ListPlans lists plans newest first, below before (0: from the newest).
	ListPlans(ctx context.Context, limit int, before int64) ([]SavedPlan, error)
	// PlanEntries returns entries in order from offset after (0: the
	// first), at most limit.
	PlanEntries(ctx context.Context, id int64, after, limit int) ([]Entry, error)
	// ClaimPlan marks the plan applied by actor, once: ErrPlanApplied when
	// it already was.
	ClaimPlan(ctx context.Context, id int64, actor string) (SavedPlan, error)
	// FinishPlan records the run that applied it.
	FinishPlan(ctx context.Context, id, run int64) error
	// ReleasePlan undoes a claim whose apply never started a run (the
	// plan could not be read back), so it can be applied again.
	ReleasePlan(ctx context.Context, id int64) error
}

// PlanRequest asks for a plan of keys.
type PlanRequest struct {
	Entity  string
	Keys    []string
	Source  string
	Trigger string
	Actor   string
}

// Planner makes, keeps and applies plans.
type Planner struct {
	repairer *Repairer
	store    PlanStore
}

// NewPlanner returns a planner over a repairer and a plan store.
func NewPlanner(r *Repairer, s PlanStore) *Planner { return &Planner{repairer: r, store: s} }

// Store is the planner's plan store (reads for review).
func (p *Planner) Store() PlanStore { return p.store }

// Create dry-runs the keys (logged as any dry run) and saves the planned
// entries as a plan. A dry run that plans nothing saves no plan.
func (p *Planner) Create(ctx context.Context, req PlanRequest) (SavedPlan, error) {
	keys := dedupe(req.Keys)
	if len(keys) == 0 || len(keys) > MaxPlanKeys {
		return SavedPlan{}, fmt.Errorf("%w: a plan takes 1 to %d keys, got %d", ErrTooMany, MaxPlanKeys, len(keys))
	}
	planned := func(e Entry) bool { return e.Outcome == OutcomePlanned }
	run, entries, err := p.repairer.repairAll(ctx, Request{Entity: req.Entity, Keys: keys, DryRun: true, Trigger: req.Trigger, Actor: req.Actor, keep: planned})
	if err != nil {
		return SavedPlan{}, err
	}
	if len(entries) == 0 {
		return SavedPlan{}, fmt.Errorf("%w (dry run %d: %d no-op, %d skipped)", ErrPlanEmpty, run.ID, run.Noop, run.Skipped)
	}
	id := run.ID
	plan := SavedPlan{Entity: req.Entity, Source: req.Source, DryRunID: &id, CreatedBy: req.Actor, Keys: len(keys), Entries: len(entries)}
	if err := p.store.CreatePlan(ctx, &plan, entries); err != nil {
		return SavedPlan{}, fmt.Errorf("save plan: %w", err)
	}
	return plan, nil
}

// Apply writes exactly a plan's entries, once: each record is read again
// and an entry is written only while its copy, and the primary's, are
// what the dry run saw; an entry whose record changed is skipped, and the
// run says why. Stores and records not in the plan are not touched. It
// returns the entries not written (every entry is in the log).
func (p *Planner) Apply(ctx context.Context, id int64, trigger, actor string) (Run, []Entry, error) {
	plan, err := p.store.ClaimPlan(ctx, id, actor)
	if err != nil {
		return Run{}, nil, err
	}
	reviewed := map[planKey]Entry{}
	seen := map[string]bool{}
	var keys []string
	for after := 0; ; {
		page, err := p.store.PlanEntries(ctx, id, after, 1000)
		if err != nil {
			err = fmt.Errorf("read plan %d: %w", id, err)
			if rerr := p.store.ReleasePlan(context.WithoutCancel(ctx), id); rerr != nil {
				err = errors.Join(err, fmt.Errorf("release plan %d: %w", id, rerr))
			}
			return Run{}, nil, err
		}
		for _, e := range page {
			k := planKey{e.Key, e.Store}
			if _, dup := reviewed[k]; dup {
				continue
			}
			if !seen[e.Key] {
				seen[e.Key] = true
				keys = append(keys, e.Key)
			}
			reviewed[k] = e
		}
		if len(page) < 1000 {
			break
		}
		after += len(page)
	}
	// The caller reports what was not written; the repaired are in the log.
	notWritten := func(e Entry) bool { return e.Outcome != OutcomeRepaired }
	run, entries, err := p.repairer.repairAll(ctx, Request{Entity: plan.Entity, Keys: keys, Trigger: trigger, Actor: actor, plan: reviewed, keep: notWritten})
	switch {
	case run.ID != 0:
		if ferr := p.store.FinishPlan(context.WithoutCancel(ctx), id, run.ID); ferr != nil {
			err = errors.Join(err, fmt.Errorf("plan %d: %w", id, ferr))
		}
	case err != nil: // no run started: nothing was written
		if rerr := p.store.ReleasePlan(context.WithoutCancel(ctx), id); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release plan %d: %w", id, rerr))
		}
	}
	return run, entries, err
}

// repairAll is Repair for up to MaxPlanKeys keys.
func (r *Repairer) repairAll(ctx context.Context, req Request) (Run, []Entry, error) {
	req.bulk = true
	return r.Repair(ctx, req)
}

// planKey is one record in one store.
type planKey struct{ key, store string }

func dedupe(keys []string) []string {
	seen := make(map[string]bool, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// changedSince says how the record moved since e (a reviewed entry) was
// planned, comparing what a run sees now (now, and the primary's copy p);
// "" when it has not.
func (e Entry) changedSince(now Entry, p Record) string {
	switch {
	case now.Class != e.Class || now.Action != e.Action:
		return fmt.Sprintf("reviewed as %s (%s), now %s (%s)", e.Class, e.Action, now.Class, now.Action)
	case !sameState(now.Before, e.Before):
		return fmt.Sprintf("the %s copy was %s, now %s", e.Store, stateText(e.Before), stateText(now.Before))
	case now.Observed != e.Observed || now.Bytes != e.Bytes:
		return fmt.Sprintf("the %s copy's invalid value changed (%d bytes, now %d)", e.Store, e.Bytes, now.Bytes)
	case e.Action == ActionWrite && !sameState(state(p), e.After):
		return fmt.Sprintf("the primary was %s, now %s", stateText(e.After), stateText(state(p)))
	}
	return ""
}

func sameState(a, b *State) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func stateText(s *State) string {
	if s == nil {
		return "absent"
	}
	return "version " + strconv.FormatInt(s.Version, 10) + " (content digest " + strconv.FormatInt(s.Digest, 10) + ")"
}
