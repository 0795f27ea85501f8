package repair

import (
	"context"
	"time"
)

// Triggers of a repair run.
const (
	TriggerSchedule = "schedule"
	TriggerAPI      = "api"
	TriggerUI       = "ui"
	TriggerCLI      = "cli"
)

// Outcomes of one repair entry.
const (
	OutcomePlanned  = "planned"  // a dry run: what a real run would do
	OutcomeRepaired = "repaired" // the store now holds the primary's record (or none)
	OutcomeNoop     = "noop"     // nothing to do when the repair ran (already consistent)
	OutcomeConflict = "conflict" // the record changed since it was read; the newer write was kept
	OutcomeFailed   = "failed"   // the write failed; Error says why
	OutcomeSkipped  = "skipped"  // not attempted (budget spent, primary unreachable)
)

// Run is one repair run.
type Run struct {
	ID         int64      `json:"id"`
	Trigger    string     `json:"trigger"`
	Actor      string     `json:"actor"`
	Entity     string     `json:"entity"`
	DryRun     bool       `json:"dry_run"`
	Budget     *int       `json:"budget,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Planned    int        `json:"planned"`
	Repaired   int        `json:"repaired"`
	Noop       int        `json:"noop"`
	Conflicts  int        `json:"conflicts"`
	Failed     int        `json:"failed"`
	Skipped    int        `json:"skipped"`
	Error      string     `json:"error,omitempty"`
}

// Count adds one entry's outcome to the run's totals.
func (r *Run) Count(outcome string) {
	switch outcome {
	case OutcomePlanned:
		r.Planned++
	case OutcomeRepaired:
		r.Repaired++
	case OutcomeNoop:
		r.Noop++
	case OutcomeConflict:
		r.Conflicts++
	case OutcomeFailed:
		r.Failed++
	case OutcomeSkipped:
		r.Skipped++
	}
}

// State is a record's version and digest in a store (nil: absent).
type State struct {
	Version int64 `json:"version"`
	// Digest is a string in JSON: 64-bit values lose digits as
	// JavaScript numbers.
	Digest int64 `json:"digest,string"`
}

// Entry is one repair of one record in one store.
type Entry struct {
	ID       int64  `json:"id"`
	RunID    int64  `json:"run_id"`
	Entity   string `json:"entity"`
	Key      string `json:"key"`
	Store    string `json:"store"`
	Class    Class  `json:"class"`
	Action   string `json:"action"`   // write, delete or none
	Priority string `json:"priority"` // high, medium, low
	Before   *State `json:"before,omitempty"`
	// After is what the repair wrote (or, planned, would write); empty
	// when nothing was written.
	After *State `json:"after,omitempty"`
	// Fields name what differed from the primary (field_mismatch);
	// Observed says why a corrupt copy is not a valid record.
	Fields   []string `json:"fields,omitempty"`
	Observed string   `json:"observed,omitempty"`
	Outcome  string   `json:"outcome"`
	Error    string   `json:"error,omitempty"`
	// WriteTrace is the trace of the primary's last write through triad
	// when the entry was made (Record.WriteTrace): the write whose copy
	// the derived store should have held.
	WriteTrace string `json:"write_trace,omitempty"`
	// Bytes is a corrupt copy's size (plans compare it; not in the log).
	Bytes    int       `json:"bytes,omitempty"`
	Attempts int       `json:"attempts"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
}

// LogFilter selects entries; zero fields match everything. Entries come
// newest first: by ID, or with Since or Until by last touch (last_at,
// then ID). After continues below a previous page's last entry.
type LogFilter struct {
	Entity, Key, Store, Class, Outcome string
	RunID                              int64
	Since, Until                       time.Time
	After                              int64
	Limit                              int
}

// Log is the repair log (repair/postgres). Safe for concurrent use.
type Log interface {
	StartRun(ctx context.Context, r *Run) error
	// Record writes entries of a run; an entry repeating an earlier one
	// (same record, store, class, action, before and after, dry or not)
	// updates it: attempts, outcome, error, run and last_at.
	Record(ctx context.Context, entries []Entry) error
	FinishRun(ctx context.Context, r *Run) error
	// List returns entries newest first, and the After of the next page
	// (0: no more).
	List(ctx context.Context, f LogFilter) ([]Entry, int64, error)
	Runs(ctx context.Context, limit int, before int64) ([]Run, error)
	// Purge deletes runs (with their entries) that finished before cutoff,
	// and entries last touched before it.
	Purge(ctx context.Context, cutoff time.Time) (int64, error)
	// Stats counts entries last touched since `since` per hour, entity,
	// store, class and outcome (the dashboard's drift and repair rates).
	// Buckets are step long, from since (an hour or a minute).
	Stats(ctx context.Context, since time.Time, step time.Duration) ([]StatBucket, error)
}

// StatBucket is one bucket's count of repair log entries of one kind.
type StatBucket struct {
	// Start is the bucket's start (Log.Stats' step long).
	Start   time.Time `json:"start"`
	Entity  string    `json:"entity"`
	Store   string    `json:"store"`
	Class   Class     `json:"class"`
	Outcome string    `json:"outcome"`
	Count   int64     `json:"count"`
}
