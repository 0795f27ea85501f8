package app

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	alertpg "github.com/triad-dev/triad/repair/alert/postgres"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/sweep"
)

// repairParts are checks, repairs, sweeps and alerts, as one replica runs
// them.
type repairParts struct {
	log       *repairpg.Log
	checker   *repair.Checker
	repairer  *repair.Repairer
	plans     *repair.Planner
	worker    *sweep.Worker
	scheduler *sweep.Scheduler
	sweeps    sweepAdmin
	alerts    *alert.Manager
	// runs counts the worker's runs, which the "sweeps" teardown awaits.
	runs *sync.WaitGroup
}

// buildRepair builds the checker over the configured entities, the
// repairer and its log, the read-repair queue (started at once on ctx:
// every replica repairs what its read path finds), the sweep worker and
// scheduler, and the alert manager.
func (a *App) buildRepair(ctx context.Context, reg prometheus.Registerer) (*repairParts, error) {
	c, set, log := a.cfg, a.Clients, a.log
	entities, err := a.Stores.Entities(c, set)
	if err != nil {
		return nil, err
	}
	rp := &repairParts{log: repairpg.NewLog(set.Postgres), runs: &sync.WaitGroup{}}
	rp.checker = repair.NewChecker(entities...)
	rp.checker.Metrics = repair.NewMetrics(reg)
	rp.repairer = repair.NewRepairer(rp.checker, rp.log)
	rp.plans = repair.NewPlanner(rp.repairer, repairpg.NewPlans(set.Postgres))
	// Cached values the read path cannot decode are answered from Postgres
	// and repaired here, logged and guarded (every replica: the value is
	// found where it is read).
	readRepairs := repair.NewQueue(rp.repairer, "profile", 10_000, log)
	a.Reader.OnCorrupt(readRepairs.AddIDs)
	go readRepairs.Run(ctx, time.Second)

	sweepStore := repairpg.NewSweeps(set.Postgres)
	claims := leader.NewClaims(set.Etcd, c.Dataset.EtcdPrefix, a.member(), c.Dataset.SessionTTL)
	sweeper := sweep.New(rp.checker, rp.repairer)
	sweeper.Metrics = sweep.NewMetrics(reg)
	sweeper.Checkpoints = sweepStore // the index checkpoint a clean content-true sweep verified
	rp.worker = sweep.NewWorker(sweeper, sweepStore, claims, sweep.WorkerConfig{
		Owner: a.member(), Recheck: c.Repair.Sweep.Recheck, RangeSegments: c.Repair.Sweep.RangeSegments,
		Serving: func() int { return a.Follower.Versions().Serving },
	}, log)
	rp.sweeps = sweepAdmin{w: rp.worker, st: sweepStore, claims: claims}
	rp.scheduler = sweep.NewScheduler(c.Repair.Schedules, rp.worker, sweepStore, log)
	rp.scheduler.Fence = leader.Check
	// 1. stop the worker (its context), 2. revoke the lease so its claims
	// go at once rather than after the TTL.
	a.onStop("sweeps", func(context.Context) error { a.cancel(); rp.runs.Wait(); return claims.Close() })

	alertStore := alertpg.New(set.Postgres)
	rp.alerts = alert.NewManager(c.Alert, alertStore, func(ctx context.Context, now time.Time, windows []time.Duration, sweepWindow time.Duration) (alert.Facts, error) {
		f, err := alertStore.Facts(ctx, now, windows, sweepWindow)
		f.StoresDown = a.Server.DependenciesDown()
		f.StoresDegraded = map[string]alert.StoreHealth{}
		for name, d := range a.Server.DependenciesDegraded() {
			f.StoresDegraded[name] = alert.StoreHealth{Health: d.Health, Note: d.Note, Since: d.Since}
		}
		f.TraceRefused = a.traceMetrics.Refused()
		f.DataLoss = a.losses.snapshot()
		return f, err
	}, alert.NewSender(alert.NewGuard(c.Alert.AllowCIDRs, c.Alert.DenyCIDRs), c.Alert.Timeout, "triad/"+a.version), log, alert.NewMetrics(reg))
	return rp, nil
}

// runWorker starts this replica's sweep worker: it claims ranges of every
// running sweep, whoever started it.
func (rp *repairParts) runWorker(ctx context.Context) {
	rp.runs.Go(func() { rp.worker.Run(ctx) })
}
