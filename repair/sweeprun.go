package repair

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sweep states.
const (
	SweepRunning   = "running"
	SweepPaused    = "paused"
	SweepCancelled = "cancelled"
	SweepDone      = "done"
	SweepFailed    = "failed"
)

// ErrSweepState is a pause, resume or cancel the sweep's state does not allow.
var ErrSweepState = errors.New("sweep state does not allow this")

// SweepRecord is a persisted sweep.
type SweepRecord struct {
	ID          int64      `json:"id"`
	Entity      string     `json:"entity"`
	Mode        string     `json:"mode"`
	State       string     `json:"state"`
	Repair      bool       `json:"repair"`
	DryRun      bool       `json:"dry_run"`
	SegmentSize int        `json:"segment_size"`
	Trigger     string     `json:"trigger"`
	Actor       string     `json:"actor"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Cursor      int64      `json:"cursor"` // the upper key of the last finished segment
	Segments    int        `json:"segments"`
	Records     int64      `json:"records"`
	Suspects    int        `json:"suspects"`
	InFlight    int        `json:"in_flight"`
	Findings    int        `json:"findings"`
	Repaired    int        `json:"repaired"`
	RepairRun   *int64     `json:"repair_run,omitempty"`
	Owner       string     `json:"owner"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	Error       string     `json:"error,omitempty"`
}

// SweepStore persists sweeps (repair/postgres). Safe for concurrent use.
type SweepStore interface {
	CreateSweep(ctx context.Context, r *SweepRecord) error
	GetSweep(ctx context.Context, id int64) (SweepRecord, error)
	ListSweeps(ctx context.Context, limit int) ([]SweepRecord, error)
	// SaveSegment records a finished segment (cursor, counts, its
	// suspects) and a heartbeat from owner, and returns the sweep's
	// state (an operator may have paused or cancelled it).
	SaveSegment(ctx context.Context, id int64, owner string, cursor int64, records int, suspects map[int64]Head) (string, error)
	// Heartbeat records that owner still runs the sweep and returns its state.
	Heartbeat(ctx context.Context, id int64, owner string) (string, error)
	// SetState moves a sweep between running and paused, or to cancelled.
	SetState(ctx context.Context, id int64, to string) (SweepRecord, error)
	Suspects(ctx context.Context, id int64) (map[int64]Head, error)
	// Finish records the end: state, counts, findings, error.
	Finish(ctx context.Context, r *SweepRecord, findings []Finding) error
	Findings(ctx context.Context, id int64, limit int) ([]Finding, error)
	// TakeOver gives owner the running or paused sweeps whose owner has
	// not sent a heartbeat for staleAfter (it died).
	TakeOver(ctx context.Context, owner string, staleAfter time.Duration) ([]SweepRecord, error)
}

// Run runs (or resumes, from its cursor) a persisted sweep as owner:
// segments are compared and saved one by one, so a pause or cancel takes
// effect after the current segment, and a sweep whose runner dies is taken
// over where it stopped (TakeOver). While paused, Run waits, sending
// heartbeats. It returns the sweep as it ended.
func (s *Sweeper) Run(ctx context.Context, st SweepStore, rec SweepRecord, owner string, recheck time.Duration) (SweepRecord, error) {
	start := time.Now()
	o := SweepOptions{Entity: rec.Entity, SegmentSize: rec.SegmentSize, Recheck: recheck, Repair: rec.Repair, DryRun: rec.DryRun,
		Trigger: rec.Trigger, Actor: rec.Actor}
	o.defaults()
	end := func(state string, rep *SweepReport, cause error) (SweepRecord, error) {
		if ctx.Err() != nil {
			// This runner is stopping (shutdown, or killed): the sweep stays
			// as saved, and a live replica takes it over from its cursor.
			return rec, ctx.Err()
		}
		rec.State = state
		if cause != nil {
			rec.Error = cause.Error()
		}
		var findings []Finding
		if rep != nil {
			rec.InFlight, findings = rep.InFlight, rep.Findings
			rec.Findings = len(rep.Findings)
			if rep.Repair != nil {
				rec.Repaired = rep.Repair.Repaired
				id := rep.Repair.ID
				rec.RepairRun = &id
			}
		}
		if err := st.Finish(context.WithoutCancel(ctx), &rec, findings); err != nil {
			return rec, errors.Join(cause, fmt.Errorf("save sweep %d: %w", rec.ID, err))
		}
		return rec, cause
	}
	r, err := s.ranged(rec.Entity)
	if err != nil {
		return end(SweepFailed, nil, err)
	}
	// waitWhile holds the runner while the sweep is paused; it returns the
	// state that ended the wait.
	waitWhile := func(state string) (string, error) {
		for state == SweepPaused {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			var err error
			if state, err = st.Heartbeat(ctx, rec.ID, owner); err != nil {
				return "", err
			}
		}
		return state, nil
	}
	if err := prepare(ctx, r); err != nil {
		return end(SweepFailed, nil, err)
	}
	for done := rec.Cursor == -1; !done; {
		state, err := st.Heartbeat(ctx, rec.ID, owner)
		if err == nil {
			state, err = waitWhile(state)
		}
		if err != nil {
			return rec, err // the store or ctx failed: the sweep stays as saved; TakeOver resumes it
		}
		if state == SweepCancelled {
			return end(SweepCancelled, nil, nil)
		}
		seg, err := s.segment(ctx, r, rec.Cursor, o.SegmentSize)
		if err != nil {
			return end(SweepFailed, nil, err)
		}
		cursor := seg.hi
		if seg.last {
			cursor = -1 // every segment done
		}
		if _, err := st.SaveSegment(ctx, rec.ID, owner, cursor, seg.records, seg.suspects); err != nil {
			return rec, err
		}
		rec.Cursor, rec.Segments, rec.Records = cursor, rec.Segments+1, rec.Records+int64(seg.records)
		s.checker.Metrics.segment(rec.Entity, seg.records)
		done = seg.last
	}
	suspects, err := st.Suspects(ctx, rec.ID)
	if err != nil {
		return rec, err
	}
	if err := s.scanOrphans(ctx, r, suspects); err != nil {
		return end(SweepFailed, nil, err)
	}
	rec.Suspects = len(suspects)
	rep := SweepReport{Entity: rec.Entity}
	if err := s.finish(ctx, r, o, suspects, &rep); err != nil {
		return end(SweepFailed, &rep, err)
	}
	rep.Took = time.Since(start)
	// After a take-over, Took covers this runner's part only.
	s.checker.Metrics.swept(rec.Entity, rec.Records, &rep)
	return end(SweepDone, &rep, nil)
}
