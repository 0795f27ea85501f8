package sweep

import (
	"context"
	"log/slog"
	"time"

	"github.com/triad-dev/triad/repair"
)

// ScheduleStore remembers when each schedule last started a sweep
// (repair/postgres). Safe for concurrent use.
type ScheduleStore interface {
	// LastStart is zero when the schedule never started one.
	LastStart(ctx context.Context, name string) (time.Time, error)
	Started(ctx context.Context, name string, at time.Time, sweep int64) error
	// Active reports whether a sweep of entity is running or paused.
	Active(ctx context.Context, entity string) (bool, error)
}

// Scheduler starts the configured sweeps when they are due. It runs on
// the leader only, so one replica starts each; the sweeps themselves are
// spread over every replica's worker.
type Scheduler struct {
	schedules []Schedule
	w         *Worker
	st        ScheduleStore
	log       *slog.Logger
	// Now is the clock (tests move it).
	Now func() time.Time
	// Tick is how often due schedules are looked for (default 5s).
	Tick time.Duration
	// Fence, when set, is asked right before a sweep is started; an error
	// (leadership lost) skips the start (leader.Check).
	Fence func(context.Context) error
}

// NewScheduler returns a scheduler for the (validated) schedules.
func NewScheduler(schedules []Schedule, w *Worker, st ScheduleStore, log *slog.Logger) *Scheduler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{schedules: schedules, w: w, st: st, log: log.With("component", "repair.schedule"), Now: time.Now, Tick: 5 * time.Second}
}

// Next is when s is due after last (zero: never ran; an interval is due
// at once, a cron expression at its next time from now).
func (s Schedule) Next(last, now time.Time) time.Time {
	if s.Every > 0 {
		if last.IsZero() {
			return now
		}
		return last.Add(s.Every)
	}
	sched, err := cronParser.Parse(s.Cron)
	if err != nil {
		return time.Time{} // validated at load; never due
	}
	if last.IsZero() {
		last = now.Add(-time.Second)
	}
	return sched.Next(last.UTC())
}

// Run starts due sweeps until ctx ends (leadership lost).
func (sc *Scheduler) Run(ctx context.Context) {
	if len(sc.schedules) == 0 {
		return
	}
	t := time.NewTicker(sc.Tick)
	defer t.Stop()
	for {
		for _, s := range sc.schedules {
			if err := sc.due(ctx, s); err != nil && ctx.Err() == nil {
				sc.log.Warn("schedule", "schedule", s.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (sc *Scheduler) due(ctx context.Context, s Schedule) error {
	last, err := sc.st.LastStart(ctx, s.Name)
	if err != nil {
		return err
	}
	now := sc.Now()
	next := s.Next(last, now)
	if next.IsZero() || now.Before(next) {
		return nil
	}
	active, err := sc.st.Active(ctx, s.Entity)
	if err != nil {
		return err
	}
	if sc.Fence != nil {
		if err := sc.Fence(ctx); err != nil {
			return err
		}
	}
	if active {
		// Skip this turn rather than stack sweeps of one entity.
		sc.log.Info("schedule due but a sweep of the entity is still running: skipped", "schedule", s.Name, "entity", s.Entity)
		return sc.st.Started(ctx, s.Name, now, 0)
	}
	rec, err := sc.w.Start(ctx, Record{Entity: s.Entity, Mode: s.Mode, Repair: s.Repair, DryRun: s.DryRun, SegmentSize: s.SegmentSize,
		Rate: s.Rate, Trigger: repair.TriggerSchedule, Actor: "schedule:" + s.Name, Schedule: s.Name})
	if err != nil {
		return err
	}
	sc.log.Info("scheduled sweep started", "schedule", s.Name, "sweep", rec.ID, "entity", s.Entity, "mode", rec.Mode)
	return sc.st.Started(ctx, s.Name, now, rec.ID)
}
