package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/dataset"
	"github.com/triad-dev/triad/ingest/lookup"
)

// buildReadPath builds the stores, the profile reader and the dataset
// follower: the follower points the stores and the reader at the versions
// etcd says; the reader learns about writes from the Redis change feed.
func (a *App) buildReadPath(reg prometheus.Registerer) {
	c, log := a.cfg, a.log
	stores := NewStores(c, a.Clients, reg)
	a.Stores = stores
	reader := lookup.New(c.Lookup, stores.Postgres, stores.Redis, log, reg)
	a.Reader = reader
	a.onStop("profile read path", func(context.Context) error { reader.Close(); return nil })
	a.manager = stores.Manager(c, a.Clients, log)
	a.Follower = dataset.NewFollower(c.Dataset, a.Clients.Etcd, dataset.FollowerOptions{
		ID: MemberID(), Kind: "serve", Addr: a.Addr, Logger: log, Registerer: reg,
		Apply: func(v ingest.Versions) {
			stores.SetVersions(v)
			reader.SetServing(v.Serving)
		},
		Applied: aliasReconciler(a.manager, log),
	})
}

// runReadPath starts the reader and its change feed; called once the
// schema exists (the first feed subscription triggers the first filter
// build).
func (a *App) runReadPath(ctx context.Context) {
	go a.Reader.Run(ctx)
	go a.Stores.Redis.Follow(ctx, a.Reader, a.cfg.Lookup.FeedPingInterval)
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
