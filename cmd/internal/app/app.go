// Package app wires triad's parts together for `triad serve` and runs them
// under one lifecycle: each part registers a named teardown, and Stop runs
// them in reverse order under a timeout, joining their errors. The wiring
// is split by job: lifecycle (app.go), the read path (readpath.go), repair
// (repair.go), OTLP (otlp.go) and the leader's singleton jobs (leader.go).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest/dataset"
	"github.com/triad-dev/triad/ingest/lookup"
	"github.com/triad-dev/triad/migrations"
	"github.com/triad-dev/triad/repair/leader"
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

	log          *slog.Logger
	cfg          config.Config
	version      string
	manager      *dataset.Manager
	tokens       *auth.Store
	traceStore   *tracepg.Store
	traceMetrics *trace.Metrics
	losses       *dataLosses
	teardowns    []teardown
	group        run.Group
	done         chan error
	cancel       context.CancelFunc
}

type teardown struct {
	name string
	fn   func(context.Context) error
}

func (a *App) onStop(name string, fn func(context.Context) error) {
	a.teardowns = append(a.teardowns, teardown{name, fn})
}

// Start builds every part and starts serving. Stop it with Stop. A start
// that fails part-way stops what it had started.
//
// The parts, by job (one file each):
//   - lifecycle (this file): clients, the listener, the HTTP server, the
//     run group and the teardowns;
//   - the read path (readpath.go): the stores, the profile reader and the
//     dataset follower;
//   - repair (repair.go): checks, repairs, sweeps and alerts;
//   - OTLP (otlp.go): the receivers, their batcher and triad's own spans;
//   - leader jobs (leader.go): one table of singleton jobs run on the
//     elected leader by one periodic runner.
func Start(ctx context.Context, o Options) (*App, error) {
	a, err := start(ctx, o)
	if err != nil {
		if a != nil {
			if a.cancel != nil {
				a.cancel()
			}
			_ = a.stopAll(ctx)
		}
		return nil, err
	}
	return a, nil
}

func start(ctx context.Context, o Options) (*App, error) {
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	c := o.Config
	a := &App{log: o.Logger, cfg: c, version: o.Version, done: make(chan error, 1), losses: &dataLosses{}}

	set, err := clients.Build(c.Postgres, c.Redis, c.Elasticsearch, c.Etcd)
	if err != nil {
		return nil, err
	}
	a.Clients = set
	a.onStop("clients", func(context.Context) error { return set.Close() })

	ln := o.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.Server.Listen); err != nil {
			return a, fmt.Errorf("listen %s: %w", c.Server.Listen, err)
		}
	}
	a.Addr = ln.Addr().String()
	// Start owns the listener from here: a start that fails closes it (the
	// HTTP server closes it itself on a normal stop, so errors are moot).
	a.onStop("listener", func(context.Context) error { _ = ln.Close(); return nil })

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.buildReadPath(reg)
	a.Elector = leader.New(set.Etcd, c.Dataset.EtcdPrefix, a.member(), c.Dataset.SessionTTL, a.log, reg)
	a.tokens = auth.NewStore(set.Postgres)
	a.traceStore = tracepg.New(set.Postgres)
	// The receivers' metrics, made here so the alert rules read their
	// count of refused spans from the object, not the registry by name.
	a.traceMetrics = trace.NewMetrics(reg)
	rp, err := a.buildRepair(runCtx, reg)
	if err != nil {
		return a, err
	}
	a.Server = a.newServer(reg, rp)

	a.group.Add(func() error { a.Server.RunProbes(runCtx); return nil }, func(error) { cancel() })
	a.group.Add(func() error { a.Follower.Run(runCtx); return nil }, func(error) { cancel() })
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
			migrateWhenReachable(runCtx, set, c.Postgres, a.log)
		}
		p := buildWhenReachable(runCtx, c, a.Stores, a.log, reg)
		if p == nil {
			return nil
		}
		pipe.Store(p)
		a.Server.SetProfiles(p.Pipeline)
		// The read path starts once the schema exists: the first feed
		// subscription triggers the first filter build.
		a.runReadPath(runCtx)
		rp.runWorker(runCtx)
		a.Elector.Run(runCtx, func(ctx context.Context) { runLeaderJobs(ctx, a.leaderJobs(p, rp), a.log) })
		return nil
	}, func(error) { cancel() })
	a.group.Add(func() error { return a.Server.Serve(ln) }, func(error) {
		// Shutdown under the configured timeout, detached from the caller's
		// cancelled context so in-flight requests may drain.
		sctx, scancel := context.WithTimeout(context.Background(), c.Server.ShutdownTimeout)
		defer scancel()
		if err := a.Server.Shutdown(sctx); err != nil {
			a.log.Warn("http shutdown", "err", err)
		}
	})
	if err := a.startTraces(ctx); err != nil {
		return a, err
	}
	a.group.Add(func() error { <-runCtx.Done(); return nil }, func(error) { cancel() })
	go func() { a.done <- a.group.Run() }()
	a.log.Info("triad serving", "addr", a.Addr, "version", o.Version)
	return a, nil
}

// member is this replica's identity in etcd: its member ID and address.
func (a *App) member() string { return MemberID() + "@" + a.Addr }

// newServer builds the HTTP API and dashboard over the built parts.
func (a *App) newServer(reg *prometheus.Registry, rp *repairParts) *server.Server {
	c := a.cfg
	return server.New(server.Options{
		Config: c.Server, Logger: a.log, Registerer: reg, Gatherer: reg,
		Dependencies: dependencies(a.Clients),
		Components: []server.Component{
			{Name: "profile_read_path", Status: func() (any, bool) { return a.Reader.Status() }},
			{Name: "dataset", Status: func() (any, bool) { return a.Follower.Status() }},
			{Name: "leader", Status: func() (any, bool) { return a.Elector.Status() }},
		},
		Auth:   auth.NewAuthenticator(a.tokens, c.Auth.AdminToken.Reveal()),
		Tokens: a.tokens, Version: a.version, Lookup: a.Reader, Dataset: a.manager,
		Checks:    rp.checker,
		RepairLog: rp.log,
		Repairer:  rp.repairer,
		Plans:     rp.plans,
		Sweeps:    rp.sweeps,
		Traces: &server.Traces{Store: a.traceStore, MaxSpans: c.Trace.MaxTraceSpans, DetailSpans: c.Trace.MaxDetailSpans,
			Languages: c.Trace.Languages, Writes: a.Stores.Postgres},
		Alerts:    rp.alerts,
		Schedules: c.Repair.Schedules,
	})
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

func dependencies(set *clients.Set) []server.Dependency {
	var deps []server.Dependency
	for _, p := range set.Probes() {
		check := func(ctx context.Context) (server.Probed, error) {
			got, err := p.Check(ctx)
			return server.Probed{Version: got.Version, Health: got.Health, Note: got.Note}, err
		}
		deps = append(deps, server.Dependency{Name: p.Name, Check: check, Optional: p.Name == "etcd"})
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
