package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/server"
)

// sweepRunner runs sweeps on this replica: the ones started through its
// API, and (on the leader) the ones whose runner died.
type sweepRunner struct {
	sw      *repair.Sweeper
	checker *repair.Checker
	st      *repairpg.Sweeps
	owner   string
	log     *slog.Logger
	ctx     context.Context // the app's run context: runners stop with it
	recheck time.Duration
	wg      sync.WaitGroup
}

// staleAfter is how long a sweep may go without a heartbeat before the
// leader takes it over (runners beat every segment and every 500 ms while
// paused).
const staleAfter = 15 * time.Second

func (r *sweepRunner) run(rec repair.SweepRecord) {
	r.wg.Go(func() {
		end, err := r.sw.Run(r.ctx, r.st, rec, r.owner, r.recheck)
		if err != nil && r.ctx.Err() == nil {
			r.log.Warn("sweep ended with an error", "sweep", rec.ID, "err", err)
			return
		}
		if r.ctx.Err() == nil {
			r.log.Info("sweep finished", "sweep", end.ID, "state", end.State, "records", end.Records,
				"findings", end.Findings, "repaired", end.Repaired)
		}
	})
}

// StartSweep implements server.SweepAdmin.
func (r *sweepRunner) StartSweep(ctx context.Context, rec repair.SweepRecord) (repair.SweepRecord, error) {
	if _, err := r.checker.Entity(rec.Entity); err != nil {
		return rec, err
	}
	rec.Owner = r.owner
	if err := r.st.CreateSweep(ctx, &rec); err != nil {
		return rec, err
	}
	r.run(rec)
	return rec, nil
}

func noSweep(err error) error {
	if errors.Is(err, repairpg.ErrNoSweep) {
		return fmt.Errorf("%w: %w", server.ErrNoSweep, err)
	}
	return err
}

// GetSweep implements server.SweepAdmin.
func (r *sweepRunner) GetSweep(ctx context.Context, id int64) (repair.SweepRecord, error) {
	rec, err := r.st.GetSweep(ctx, id)
	return rec, noSweep(err)
}

// ListSweeps implements server.SweepAdmin.
func (r *sweepRunner) ListSweeps(ctx context.Context, limit int) ([]repair.SweepRecord, error) {
	return r.st.ListSweeps(ctx, limit)
}

// SetSweepState implements server.SweepAdmin.
func (r *sweepRunner) SetSweepState(ctx context.Context, id int64, to string) (repair.SweepRecord, error) {
	rec, err := r.st.SetState(ctx, id, to)
	return rec, noSweep(err)
}

// SweepFindings implements server.SweepAdmin.
func (r *sweepRunner) SweepFindings(ctx context.Context, id int64, limit int) ([]repair.Finding, error) {
	return r.st.Findings(ctx, id, limit)
}

// takeOver runs on the leader: every 5 s it takes over sweeps whose runner
// stopped sending heartbeats (its replica died) and resumes them here.
func (r *sweepRunner) takeOver(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		recs, err := r.st.TakeOver(ctx, r.owner, staleAfter)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("sweep take-over", "err", err)
		}
		for _, rec := range recs {
			r.log.Warn("taking over a sweep whose runner stopped", "sweep", rec.ID, "cursor", rec.Cursor, "segments_done", rec.Segments)
			r.run(rec)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
