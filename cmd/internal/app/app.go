// Package app wires triad's parts together for `triad serve` and runs them
// under one lifecycle: each part registers a named teardown, and Stop runs
// them in reverse order under a timeout, joining their errors.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/dataset"
	"github.com/triad-dev/triad/ingest/lookup"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/migrations"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	alertpg "github.com/triad-dev/triad/repair/alert/postgres"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/trace"
	tracepg "github.com/triad-dev/triad/trace/postgres"
)

// Options configure Run.
type Options struct {
	Config  config.Config
	Logger  *slog.Logger
	Version string
	// Listener, when set, is used instead of listening on Config.Server.Listen
	// (tests pass a 127.0.0.1:0 listener).
	Listener net.Listener
	// Migrate applies pending migrations at start, retrying while Postgres is down.
	Migrate bool
	// Registry defaults to a fresh registry with Go and process collectors.
	Registry *prometheus.Registry
}

// App is a running triad server.
type App struct {
	Addr     string
	Clients  *clients.Set
	Server   *server.Server
	Stores   *Stores
	Reader   *lookup.Reader
	Follower *dataset.Follower
	Elector  *leader.Elector
	// OTLPHTTPAddr and OTLPGRPCAddr are where the OTLP receivers listen
	// ("" when off).
	OTLPHTTPAddr, OTLPGRPCAddr string

	log       *slog.Logger
	teardowns []teardown
	group     run.Group
	done      chan error
	cancel    context.CancelFunc
}

type teardown struct {
	name string
	fn   func(context.Context) error
}

func (a *App) onStop(name string, fn func(context.Context) error) {
	a.teardowns = append(a.teardowns, teardown{name, fn})
}

// Start builds every part and starts serving. Stop it with Stop.
func Start(ctx context.Context, o Options) (*App, error) {
	log := o.Logger
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a := &App{log: log, done: make(chan error, 1)}

	c := o.Config
	set, err := clients.Build(c.Postgres, c.Redis, c.Elasticsearch, c.Etcd)
	if err != nil {
		return nil, err
	}
	a.Clients = set
	a.onStop("clients", func(context.Context) error { return set.Close() })

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", o.Config.Server.Listen); err != nil {
			a.stopAll(ctx)
			return nil, fmt.Errorf("listen %s: %w", o.Config.Server.Listen, err)
		}
	}
	a.Addr = ln.Addr().String()
	// Start owns the listener from here: a start that fails closes it (the
	// HTTP server closes it itself on a normal stop, so errors are moot).
	a.onStop("listener", func(context.Context) error { _ = ln.Close(); return nil })

	// The read path and the dataset follower: the follower points the
	// stores and the reader at the versions etcd says; the reader learns
	// about writes from the Redis change feed.
	stores := NewStores(c, set, reg)
	a.Stores = stores
	reader := lookup.New(c.Lookup, stores.Postgres, stores.Redis, log, reg)
	a.Reader = reader
	a.onStop("profile read path", func(context.Context) error { reader.Close(); return nil })
	manager := stores.Manager(c, set, log)
	aliasCheck := aliasReconciler(manager, log)
	follower := dataset.NewFollower(c.Dataset, set.Etcd, dataset.FollowerOptions{
		ID: MemberID(), Kind: "serve", Addr: a.Addr, Logger: log, Registerer: reg,
		Apply: func(v ingest.Versions) {
			stores.SetVersions(v)
			reader.SetServing(v.Serving)
		},
		Applied: aliasCheck,
	})
	a.Follower = follower
	elector := leader.New(set.Etcd, c.Dataset.EtcdPrefix, MemberID()+"@"+a.Addr, c.Dataset.SessionTTL, log, reg)
	a.Elector = elector

	tokens := auth.NewStore(set.Postgres)
	repairLog := repairpg.NewLog(set.Postgres)
	entities, err := stores.Entities(c, set)
	if err != nil {
		a.stopAll(ctx)
		return nil, err
	}
	checker := repair.NewChecker(entities...)
	checker.Metrics = repair.NewMetrics(reg)
	repairer := repair.NewRepairer(checker, repairLog)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	// Cached values the read path cannot decode are answered from Postgres
	// and repaired here, logged and guarded (every replica: the value is
	// found where it is read).
	readRepairs := repair.NewQueue(repairer, "profile", 10_000, log)
	reader.OnCorrupt(readRepairs.AddIDs)
	go readRepairs.Run(runCtx, time.Second)
	sweepStore := repairpg.NewSweeps(set.Postgres)
	claims := leader.NewClaims(set.Etcd, c.Dataset.EtcdPrefix, MemberID()+"@"+a.Addr, c.Dataset.SessionTTL)
	sweeper := sweep.New(checker, repairer)
	sweeper.Metrics = sweep.NewMetrics(reg)
	sweeper.Checkpoints = sweepStore // the index checkpoint a clean content-true sweep verified
	worker := sweep.NewWorker(sweeper, sweepStore, claims, sweep.WorkerConfig{
		Owner: MemberID() + "@" + a.Addr, Recheck: c.Repair.Sweep.Recheck, RangeSegments: c.Repair.Sweep.RangeSegments,
		Serving: func() int { return follower.Versions().Serving },
	}, log)
	sweeps := sweepAdmin{w: worker, st: sweepStore, claims: claims}
	scheduler := sweep.NewScheduler(c.Repair.Schedules, worker, sweepStore, log)
	scheduler.Fence = leader.Check
	// 1. stop the worker (its context), 2. revoke the lease so its claims
	// go at once rather than after the TTL.
	var workerRuns sync.WaitGroup
	a.onStop("sweeps", func(context.Context) error { cancel(); workerRuns.Wait(); return claims.Close() })
	traceStore := tracepg.New(set.Postgres)
	alertStore := alertpg.New(set.Postgres)
	var srv *server.Server
	losses := &dataLosses{}
	// The receivers' metrics, made here so the alert rules read their
	// count of refused spans from the object, not the registry by name.
	traceMetrics := trace.NewMetrics(reg)
	alerts := alert.NewManager(c.Alert, alertStore, func(ctx context.Context, now time.Time, windows []time.Duration, sweepWindow time.Duration) (alert.Facts, error) {
		f, err := alertStore.Facts(ctx, now, windows, sweepWindow)
		f.StoresDown = srv.DependenciesDown()
		f.TraceRefused = traceMetrics.Refused()
		f.DataLoss = losses.snapshot()
		return f, err
	}, alert.NewSender(alert.NewGuard(c.Alert.AllowCIDRs, c.Alert.DenyCIDRs), c.Alert.Timeout, "triad/"+o.Version), log, alert.NewMetrics(reg))
	srv = server.New(server.Options{
		Config: o.Config.Server, Logger: log, Registerer: reg, Gatherer: reg,
		Dependencies: dependencies(set),
		Components: []server.Component{
			{Name: "profile_read_path", Status: func() (any, bool) { return reader.Status() }},
			{Name: "dataset", Status: func() (any, bool) { return follower.Status() }},
			{Name: "leader", Status: func() (any, bool) { return elector.Status() }},
		},
		Auth:   auth.NewAuthenticator(tokens, o.Config.Auth.AdminToken.Reveal()),
		Tokens: tokens, Version: o.Version, Lookup: reader, Dataset: manager,
		Checks:    checker,
		RepairLog: repairLog,
		Repairer:  repairer,
		Sweeps:    sweeps,
		Traces:    &server.Traces{Store: traceStore, MaxSpans: c.Trace.MaxTraceSpans, Languages: c.Trace.Languages},
		Alerts:    alerts,
		Schedules: c.Repair.Schedules,
	})
	a.Server = srv

	a.group.Add(func() error { srv.RunProbes(runCtx); return nil }, func(error) { cancel() })
	a.group.Add(func() error { follower.Run(runCtx); return nil }, func(error) { cancel() })
	// The profile pipeline needs the schema and the index template: it is
	// built once they are in place; until then its routes answer 503.
	var pipe atomic.Pointer[Pipeline]
	a.onStop("profile pipeline", func(context.Context) error {
		if p := pipe.Load(); p != nil {
			return p.Close()
		}
		return nil
	})
	a.group.Add(func() error {
		if o.Migrate {
			migrateWhenReachable(runCtx, set, c.Postgres, log)
		}
		p := buildWhenReachable(runCtx, o.Config, stores, log, reg)
		if p == nil {
			return nil
		}
		pipe.Store(p)
		srv.SetProfiles(p.Pipeline)
		// The read path starts once the schema exists: the first feed
		// subscription triggers the first filter build.
		go reader.Run(runCtx)
		go stores.Redis.Follow(runCtx, reader, c.Lookup.FeedPingInterval)
		workerRuns.Go(func() { worker.Run(runCtx) })
		// Singleton jobs run on the elected leader only.
		elector.Run(runCtx, func(ctx context.Context) {
			var wg sync.WaitGroup
			wg.Go(func() { p.RunCatchup(ctx) })
			wg.Go(func() { collectVersions(ctx, manager, log) })
			wg.Go(func() { purgeTombstones(ctx, p, o.Config.Ingest.TombstoneRetention, log) })
			wg.Go(func() { purgeRepairLog(ctx, repairLog, c.Repair.LogRetention, log) })
			wg.Go(func() { purgeSessions(ctx, tokens, o.Config.Server.AuditRetention, log) })
			if c.Alert.Enabled {
				wg.Go(func() { alerts.Run(ctx, leader.Check) })
			}
			wg.Go(func() { worker.WatchStuck(ctx, c.Repair.Sweep.StuckAfter/10, c.Repair.Sweep.StuckAfter) })
			wg.Go(func() { scheduler.Run(ctx) })
			wg.Go(func() { retainSpans(ctx, traceStore, c.Trace.Retention, log) })
			wg.Go(func() {
				watchRedis(ctx, redisstore.NewWatch(set.Redis, c.Ingest.RedisDropRatio), c.Ingest,
					func() *ingest.Pipeline { return p.Pipeline }, worker, losses, log)
			})
			wg.Wait()
		})
		return nil
	}, func(error) { cancel() })
	a.group.Add(func() error { return srv.Serve(ln) }, func(error) {
		// Shutdown under the configured timeout, detached from the caller's
		// cancelled context so in-flight requests may drain.
		sctx, scancel := context.WithTimeout(context.Background(), o.Config.Server.ShutdownTimeout)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("http shutdown", "err", err)
		}
	})
	if c.Trace.Enabled {
		if err := a.startOTLP(c.Trace, o.Config.Auth.OTLPToken.Reveal(), traceStore, log, traceMetrics); err != nil {
			a.stopAll(ctx)
			return nil, err
		}
	}
	if ep := c.Trace.Self.Endpoint; ep != "" {
		if ep == "self" {
			ep = "http://" + a.OTLPHTTPAddr + "/v1/traces"
		}
		// Stopped before the receivers' batcher (teardowns run in reverse),
		// though after the receivers themselves: spans still buffered then
		// are dropped.
		shutdown, err := trace.StartSelf(ctx, ep, c.Trace.Self.SampleRatio, "triad", o.Version)
		if err != nil {
			a.stopAll(ctx)
			return nil, err
		}
		a.onStop("own spans", shutdown)
		log.Info("own spans exported", "endpoint", ep)
	}
	a.group.Add(func() error { <-runCtx.Done(); return nil }, func(error) { cancel() })
	go func() { a.done <- a.group.Run() }()
	log.Info("triad serving", "addr", a.Addr, "version", o.Version)
	return a, nil
}

// migrateWhenReachable applies migrations, retrying while Postgres is down
// (or the schema is missing: the log says so and how to fix it).
func migrateWhenReachable(ctx context.Context, set *clients.Set, pg clients.Postgres, log *slog.Logger) {
	backoff := 500 * time.Millisecond
	for {
		err := migrations.EnsureSchema(ctx, set.Postgres, pg.Schema, pg.CreateSchema)
		var m *migrations.Migrator
		if err == nil {
			m, err = migrations.New(set.Postgres, "", log)
		}
		if err == nil {
			_, err = m.Up(ctx)
			m.Close()
		}
		if err == nil {
			log.Info("migrations applied")
			return
		}
		log.Warn("migrations not applied yet; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// buildWhenReachable builds the pipeline, retrying while a store is down;
// nil when ctx ends first.
func buildWhenReachable(ctx context.Context, c config.Config, st *Stores, log *slog.Logger, reg prometheus.Registerer) *Pipeline {
	backoff := 500 * time.Millisecond
	for {
		p, err := BuildPipeline(ctx, c, st, log, reg)
		if err == nil {
			log.Info("profile pipeline started", "shards", c.Ingest.Shards)
			return p
		}
		log.Warn("profile pipeline not started yet; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// startOTLP starts the OTLP receivers (HTTP and gRPC) and the batcher
// behind them. Shutdown order:
//  1. the run group stops the receivers (HTTP drains, gRPC stops
//     gracefully, both under the server's shutdown timeout);
//  2. the "otlp batcher" teardown then writes what they accepted.
func (a *App) startOTLP(c trace.Config, otlpToken string, store trace.Store, log *slog.Logger, m *trace.Metrics) error {
	batcher := trace.NewBatcher(store, c, log, m)
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { defer close(bdone); _ = batcher.Run(bctx) }()
	a.onStop("otlp batcher", func(ctx context.Context) error {
		bcancel()
		select {
		case <-bdone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	rcv := trace.NewReceiver(batcher, c, otlpToken, log, m)
	if c.HTTPAddr != "" {
		ln, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			return fmt.Errorf("otlp http: listen %s: %w", c.HTTPAddr, err)
		}
		a.OTLPHTTPAddr = ln.Addr().String()
		// The receiver bounds each body by trace.body_timeout itself; the
		// server's own timeouts end connections that send nothing more.
		hs := &http.Server{Handler: rcv.Handler(), ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * c.BodyTimeout, WriteTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		a.group.Add(func() error {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("otlp http: %w", err)
			}
			return nil
		}, func(error) {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		})
	}
	if c.GRPCAddr != "" {
		ln, err := net.Listen("tcp", c.GRPCAddr)
		if err != nil {
			return fmt.Errorf("otlp grpc: listen %s: %w", c.GRPCAddr, err)
		}
		a.OTLPGRPCAddr = ln.Addr().String()
		gs := grpc.NewServer(rcv.GRPCServerOptions()...)
		rcv.RegisterGRPC(gs)
		a.group.Add(func() error { return gs.Serve(ln) }, func(error) {
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				gs.Stop()
			}
		})
	}
	log.Info("otlp receivers listening", "http", a.OTLPHTTPAddr, "grpc", a.OTLPGRPCAddr)
	return nil
}

// retainSpans drops spans older than retention hourly (on the leader).
func retainSpans(ctx context.Context, st trace.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if parts, rows, err := st.Retain(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("span retention", "err", err)
		} else if parts > 0 || rows > 0 {
			log.Info("spans dropped", "partitions", parts, "rows", rows, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purgeTombstones deletes expired tombstones hourly until ctx ends.
func purgeTombstones(ctx context.Context, p *Pipeline, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := p.Postgres.PurgeTombstones(ctx, retention); err != nil && ctx.Err() == nil {
			log.Warn("tombstone purge", "err", err)
		} else if n > 0 {
			log.Info("tombstones purged", "rows", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// aliasReconciler returns the follower's after-apply hook: when the
// Elasticsearch alias does not point at the served version (a switch died
// between writing the active key and moving the alias), point it there
// under the lock. It checks after every change and then every 30s while
// it last found the alias wrong or could not check.
func aliasReconciler(m *dataset.Manager, log *slog.Logger) func(context.Context, dataset.State) {
	var mu sync.Mutex
	var last time.Time
	var lastServing int
	dirty := true
	return func(ctx context.Context, st dataset.State) {
		mu.Lock()
		defer mu.Unlock()
		due := st.Serving() != lastServing || (dirty && time.Since(last) > 2*time.Second) || time.Since(last) > 30*time.Second
		if !due {
			return
		}
		last, lastServing = time.Now(), st.Serving()
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		at, err := m.AliasVersion(cctx)
		if err != nil {
			dirty = true
			log.Debug("alias check", "err", err)
			return
		}
		if at == 0 || at == st.Serving() {
			dirty = false // 0: no alias yet; the pipeline's setup creates it
			return
		}
		fixed, err := m.ReconcileAlias(cctx)
		dirty = err != nil || !fixed
		if err != nil {
			log.Warn("alias reconcile", "err", err)
		}
	}
}

// purgeRepairLog deletes repair log entries and runs older than retention,
// daily (on the leader); retention 0 keeps them.
func purgeRepairLog(ctx context.Context, l repair.Log, retention time.Duration, log *slog.Logger) {
	if retention <= 0 {
		return
	}
	periodically(ctx, 24*time.Hour, func(ctx context.Context) {
		if n, err := l.Purge(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("repair log purge", "err", err)
		} else if n > 0 {
			log.Info("repair log purged", "rows", n, "retention", retention)
		}
	})
}

// purgeSessions deletes expired dashboard sessions hourly and audit
// entries older than retention (on the leader).
func purgeSessions(ctx context.Context, tokens *auth.Store, retention time.Duration, log *slog.Logger) {
	periodically(ctx, time.Hour, func(ctx context.Context) {
		if n, err := tokens.PurgeSessions(ctx); err != nil && ctx.Err() == nil {
			log.Warn("session purge", "err", err)
		} else if n > 0 {
			log.Info("expired sessions purged", "sessions", n)
		}
		if n, err := tokens.PurgeAudit(ctx, time.Now().Add(-retention)); err != nil && ctx.Err() == nil {
			log.Warn("audit log purge", "err", err)
		} else if n > 0 {
			log.Info("audit log purged", "entries", n, "retention", retention)
		}
	})
}

// periodically runs the leader job fn at once, then every d, until ctx
// ends; each run first proves leadership (leader.Check), and the job ends
// when it no longer holds.
func periodically(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if leader.Check(ctx) != nil {
			return
		}
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// collectVersions removes retired dataset versions hourly (on the leader).
func collectVersions(ctx context.Context, m *dataset.Manager, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if removed, err := m.Collect(ctx); err != nil && ctx.Err() == nil {
			log.Warn("dataset gc", "err", err)
		} else if len(removed) > 0 {
			log.Info("dataset versions removed", "versions", removed)
		}
	}
}

func dependencies(set *clients.Set) []server.Dependency {
	var deps []server.Dependency
	for _, p := range set.Probes() {
		deps = append(deps, server.Dependency{Name: p.Name, Check: p.Check, Optional: p.Name == "etcd"})
	}
	return deps
}

// Wait blocks until the app stops by itself (a part failed) or ctx ends.
func (a *App) Wait(ctx context.Context) error {
	select {
	case err := <-a.done:
		a.done <- err
		return err
	case <-ctx.Done():
		return nil
	}
}

// Stop shuts the app down:
//  1. the run group is interrupted: readiness turns "stopping", the HTTP
//     server drains under server.shutdown_timeout, probes and migrations stop;
//  2. teardowns run in reverse registration order (clients last-built first).
func (a *App) Stop(ctx context.Context) error {
	a.cancel()
	var errs []error
	select {
	case err := <-a.done:
		a.done <- err
		errs = append(errs, err)
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("stop: %w", ctx.Err()))
	}
	errs = append(errs, a.stopAll(ctx))
	return errors.Join(errs...)
}

func (a *App) stopAll(ctx context.Context) error {
	var errs []error
	for i := len(a.teardowns) - 1; i >= 0; i-- {
		t := a.teardowns[i]
		if err := t.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", t.name, err))
		}
	}
	a.teardowns = nil
	return errors.Join(errs...)
}

// Run starts the app and serves until ctx ends, then stops it.
func Run(ctx context.Context, o Options) error {
	a, err := Start(ctx, o)
	if err != nil {
		return err
	}
	werr := a.Wait(ctx)
	o.Logger.Info("stopping")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Config.Server.ShutdownTimeout+5*time.Second)
	defer cancel()
	return errors.Join(werr, a.Stop(sctx))
}
