// Package leader elects one triad replica through etcd
// (concurrency.Election) to run the singleton jobs: the catch-up replay,
// retention purges, dataset gc and, later, the sweep scheduler and alert
// evaluation. Leadership is bound to the leader's lease: a replica that
// dies or loses etcd for longer than the lease TTL loses it, its jobs'
// context is cancelled, and another replica's campaign wins.
package leader

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Elector campaigns for leadership and runs the jobs while it leads.
type Elector struct {
	cli *clientv3.Client
	key string
	id  string
	ttl time.Duration
	log *slog.Logger

	leading atomic.Bool
	mu      sync.Mutex
	leader  string    // the current leader's id, as last observed
	since   time.Time // when this replica began leading
	lastErr string

	isLeader prometheus.Gauge
	changes  prometheus.Counter
}

// New returns an elector for id under <etcdPrefix>leader; reg receives
// its metrics.
func New(cli *clientv3.Client, etcdPrefix, id string, ttl time.Duration, log *slog.Logger, reg prometheus.Registerer) *Elector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Elector{cli: cli, key: etcdPrefix + "leader", id: id, ttl: ttl, log: log.With("component", "repair.leader"),
		isLeader: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_leader", Help: "1 while this replica is the elected leader running the singleton jobs.",
		}),
		changes: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_leader_terms_total", Help: "Terms this replica began as the leader.",
		}),
	}
}

// Run campaigns until ctx ends. Each time this replica wins, jobs runs
// with a context that ends when leadership is lost (lease expired, etcd
// gone past the TTL) or ctx ends; jobs must return then. Leadership is
// resigned on the way out so another replica takes over at once.
func (e *Elector) Run(ctx context.Context, jobs func(ctx context.Context)) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := e.term(ctx, jobs)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			e.mu.Lock()
			e.lastErr = err.Error()
			e.mu.Unlock()
			e.log.Warn("leader election", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		if err == nil {
			backoff = 200 * time.Millisecond
		}
	}
}

// term is one session: campaign, lead until the session or ctx ends.
func (e *Elector) term(ctx context.Context, jobs func(ctx context.Context)) error {
	s, err := concurrency.NewSession(e.cli, concurrency.WithTTL(int(e.ttl.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer s.Close()
	el := concurrency.NewElection(s, e.key)
	octx, stopObserving := context.WithCancel(ctx)
	defer stopObserving()
	go e.observe(octx, el)
	if err := el.Campaign(ctx, e.id); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	jctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-s.Done():
			e.log.Warn("leadership lost: the lease expired")
		case <-jctx.Done():
		}
		cancel()
	}()
	e.mu.Lock()
	e.since, e.lastErr = time.Now(), ""
	e.mu.Unlock()
	e.leading.Store(true)
	e.isLeader.Set(1)
	e.changes.Inc()
	e.log.Info("leading: running the singleton jobs")
	jobs(jctx)
	cancel()
	e.leading.Store(false)
	e.isLeader.Set(0)
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	if err := el.Resign(rctx); err != nil && ctx.Err() == nil {
		e.log.Warn("resign", "err", err)
	}
	e.log.Info("no longer leading")
	return nil
}

func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) > 0 {
			e.mu.Lock()
			e.leader = string(resp.Kvs[0].Value)
			e.mu.Unlock()
		}
	}
}

// Leading reports whether this replica leads now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Status is what /-/ready shows about leadership.
type Status struct {
	ID      string    `json:"id"`
	Leading bool      `json:"leading"`
	Leader  string    `json:"leader,omitempty"` // the leader's id as last observed
	Since   time.Time `json:"leading_since,omitzero"`
	Error   string    `json:"error,omitempty"`
}

// Status reports leadership; it never makes a replica unready (followers
// serve as well as the leader).
func (e *Elector) Status() (Status, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{ID: e.id, Leading: e.leading.Load(), Leader: e.leader, Error: e.lastErr}
	if st.Leading {
		st.Since = e.since
	}
	return st, true
}
