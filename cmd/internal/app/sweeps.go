package app

import (
	"context"
	"strconv"
	"time"

	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/sweep"
)

// sweepAdmin implements server.SweepAdmin over this replica's sweep
// worker and the sweep store every replica shares.
type sweepAdmin struct {
	w      *sweep.Worker
	st     *repairpg.Sweeps
	claims *leader.Claims
}

// StartSweep implements server.SweepAdmin.
func (a sweepAdmin) StartSweep(ctx context.Context, rec sweep.Record) (sweep.Record, error) {
	return a.w.Start(ctx, rec)
}

// GetSweep implements server.SweepAdmin.
func (a sweepAdmin) GetSweep(ctx context.Context, id int64) (sweep.Record, error) {
	return a.st.GetSweep(ctx, id)
}

// SweepRanges implements server.SweepAdmin. Running ranges say which
// replica's claim holds them now, so a range whose owner died shows no
// holder at once rather than "running" until another replica takes it
// (best effort: without etcd within a second, holders are left out).
func (a sweepAdmin) SweepRanges(ctx context.Context, id int64) ([]sweep.Range, error) {
	rgs, err := a.st.Ranges(ctx, id)
	if err != nil || a.claims == nil {
		return rgs, err
	}
	hctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	holders, herr := a.claims.Holders(hctx, "sweeps/"+strconv.FormatInt(id, 10)+"/ranges/")
	if herr != nil {
		return rgs, nil
	}
	for i := range rgs {
		if rgs[i].State == sweep.RangeRunning {
			h := holders[sweep.RangeKey(rgs[i])]
			rgs[i].Holder = &h
		}
	}
	return rgs, nil
}

// ListSweeps implements server.SweepAdmin.
func (a sweepAdmin) ListSweeps(ctx context.Context, limit int) ([]sweep.Record, error) {
	return a.st.ListSweeps(ctx, limit)
}

// SetSweepState implements server.SweepAdmin.
func (a sweepAdmin) SetSweepState(ctx context.Context, id int64, to string) (sweep.Record, error) {
	rec, err := a.st.SetState(ctx, id, to)
	if err == nil && to == sweep.Running {
		a.w.Wake()
	}
	return rec, err
}

// SweepFindings implements server.SweepAdmin.
func (a sweepAdmin) SweepFindings(ctx context.Context, id int64, limit int) ([]sweep.Finding, error) {
	return a.st.Findings(ctx, id, limit)
}
