package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/triad-dev/triad/ingest"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair/leader"
)

// leaderJob is one singleton job, run on the elected leader only.
type leaderJob struct {
	name string
	// every > 0: the runner calls run at once (after one period when
	// wait), then every period, each time first proving leadership.
	// every == 0: run is a loop of its own that returns when ctx ends.
	every time.Duration
	wait  bool
	// off: disabled by configuration.
	off bool
	run func(context.Context) error
}

// leaderJobs is the table of what the leader runs: catch-up, dataset
// garbage collection, retention of tombstones, repair log, sessions and
// spans, alert rules, stuck-sweep detection, schedules and the Redis
// data-loss watch.
func (a *App) leaderJobs(p *Pipeline, rp *repairParts) []leaderJob {
	c, log := a.cfg, a.log
	return []leaderJob{
		{name: "catch-up", run: func(ctx context.Context) error { p.RunCatchup(ctx); return nil }},
		{name: "dataset gc", every: time.Hour, wait: true, run: func(ctx context.Context) error {
			removed, err := a.manager.Collect(ctx)
			if len(removed) > 0 {
				log.Info("dataset versions removed", "versions", removed)
			}
			return err
		}},
		{name: "tombstone purge", every: time.Hour, run: func(ctx context.Context) error {
			n, err := p.Postgres.PurgeTombstones(ctx, c.Ingest.TombstoneRetention)
			if n > 0 {
				log.Info("tombstones purged", "rows", n, "retention", c.Ingest.TombstoneRetention)
			}
			return err
		}},
		// Retention 0 keeps the log.
		{name: "repair log purge", every: 24 * time.Hour, off: c.Repair.LogRetention <= 0, run: func(ctx context.Context) error {
			n, err := rp.log.Purge(ctx, time.Now().Add(-c.Repair.LogRetention))
			if n > 0 {
				log.Info("repair log purged", "rows", n, "retention", c.Repair.LogRetention)
			}
			return err
		}},
		{name: "session and audit purge", every: time.Hour, run: func(ctx context.Context) error {
			n, err := a.tokens.PurgeSessions(ctx)
			if n > 0 {
				log.Info("expired sessions purged", "sessions", n)
			}
			m, aerr := a.tokens.PurgeAudit(ctx, time.Now().Add(-c.Server.AuditRetention))
			if m > 0 {
				log.Info("audit log purged", "entries", m, "retention", c.Server.AuditRetention)
			}
			return errors.Join(err, aerr)
		}},
		{name: "span retention", every: time.Hour, run: func(ctx context.Context) error {
			cutoff := time.Now().Add(-c.Trace.Retention)
			parts, rows, err := a.traceStore.Retain(ctx, cutoff)
			if parts > 0 || rows > 0 {
				log.Info("spans dropped", "partitions", parts, "rows", rows, "retention", c.Trace.Retention)
			}
			// The records of traced writes go with the spans they name.
			w, werr := p.Postgres.PurgeWriteTraces(ctx, cutoff)
			if w > 0 {
				log.Info("write traces dropped", "batches", w, "retention", c.Trace.Retention)
			}
			return errors.Join(err, werr)
		}},
		{name: "alert rules", off: !c.Alert.Enabled, run: func(ctx context.Context) error { rp.alerts.Run(ctx, leader.Check); return nil }},
		{name: "stuck sweeps", run: func(ctx context.Context) error {
			rp.worker.WatchStuck(ctx, c.Repair.Sweep.StuckAfter/10, c.Repair.Sweep.StuckAfter)
			return nil
		}},
		{name: "sweep schedules", run: func(ctx context.Context) error { rp.scheduler.Run(ctx); return nil }},
		{name: "redis data-loss watch", every: c.Ingest.RedisWatch, off: c.Ingest.RedisWatch <= 0,
			run: redisLossWatch(redisstore.NewWatch(a.Clients.Redis, c.ProfileCache.KeyPrefix, pgstore.NewWatchBaseline(a.Clients.Postgres, "redis:"+c.ProfileCache.KeyPrefix)), c.Ingest,
				func() *ingest.Pipeline { return p.Pipeline }, rp.worker, a.losses, log)},
	}
}

// runLeaderJobs runs every job of the table that is on, until ctx ends (the
// term is over). A periodic job's error is logged and it runs again at its
// next period.
func runLeaderJobs(ctx context.Context, jobs []leaderJob, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, j := range jobs {
		if j.off {
			continue
		}
		run := func(ctx context.Context) {
			if err := j.run(ctx); err != nil && ctx.Err() == nil {
				log.Warn("leader job failed", "job", j.name, "err", err)
			}
		}
		if j.every <= 0 {
			wg.Go(func() { run(ctx) })
			continue
		}
		wg.Go(func() { periodically(ctx, j.every, j.wait, run) })
	}
	wg.Wait()
}

// periodically calls fn at once (after one period when wait), then every
// d, until ctx ends; each call first proves leadership (leader.Check), and
// the job ends when it no longer holds.
func periodically(ctx context.Context, d time.Duration, wait bool, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if wait {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		wait = true
		if leader.Check(ctx) != nil {
			return
		}
		fn(ctx)
	}
}
