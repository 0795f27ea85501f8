// Package leader elects one triad replica through etcd
// (concurrency.Election) to run the singleton jobs (the catch-up replay,
// purges, dataset gc, the sweep scheduler, alert evaluation) and holds
// sweep range claims under leases. Leadership is fenced: the leader's jobs
// stop at a local deadline that falls before etcd can expire its lease,
// so two replicas never act as leader at once; Check tells a job before
// each act whether its leadership still holds.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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
	fenced   prometheus.Counter
}

// ErrNotLeader is Check's answer when the caller's leadership has ended
// or can no longer be proven.
var ErrNotLeader = errors.New("not the leader")

// fence is one term's proof of leadership: a deadline before which etcd
// cannot have expired the term's lease. It is moved forward by each lease
// check, from the time the check was sent: the lease lives at least its
// remaining TTL from then, whatever the network did since.
type fence struct {
	deadline atomic.Int64 // unix nanoseconds
}

func (f *fence) valid() bool { return time.Now().UnixNano() < f.deadline.Load() }

type fenceKey struct{}

// Check returns ErrNotLeader unless ctx is a leader job's context whose
// term's lease certainly still holds. A singleton job calls it right
// before each act (a write, a delivery, a scheduled start).
func Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	}
	f, _ := ctx.Value(fenceKey{}).(*fence)
	if f == nil || !f.valid() {
		return ErrNotLeader
	}
	return nil
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
		fenced: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_leader_fenced_total", Help: "Terms ended by the fence: the lease could not be proven alive before its deadline, so the jobs stopped before etcd could expire it.",
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

// term is one session: campaign, then lead until the session ends, the
// fence's deadline passes unrenewed, or ctx ends.
//
// The fence: after winning, and every TTL/4 while leading, the lease's
// remaining TTL is read from etcd; the deadline becomes the time that
// request was sent plus the remaining TTL, less a margin. The jobs'
// context ends at the deadline unless a later read moves it, which is
// before etcd can expire the lease and another replica can win.
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
	f := &fence{}
	// A campaign can return after etcd came back with the session's lease
	// already expired: never start a term without proving the lease.
	if err := e.renew(ctx, s, f); err != nil {
		e.resign(ctx, el)
		return fmt.Errorf("won the election but could not prove the lease: %w", err)
	}
	jctx, cancel := context.WithCancel(context.WithValue(ctx, fenceKey{}, f))
	go e.guard(jctx, cancel, s, f)
	e.mu.Lock()
	e.since, e.lastErr, e.leader = time.Now(), "", e.id
	e.mu.Unlock()
	e.leading.Store(true)
	e.isLeader.Set(1)
	e.changes.Inc()
	e.log.Info("leading: running the singleton jobs")
	jobs(jctx)
	cancel()
	e.leading.Store(false)
	e.isLeader.Set(0)
	e.resign(ctx, el)
	e.log.Info("no longer leading")
	return nil
}

// renew reads the lease's remaining TTL and moves the fence's deadline to
// the read's send time plus that TTL, less a tenth of the TTL (at least
// 200 ms) for clock-rate differences.
func (e *Elector) renew(ctx context.Context, s *concurrency.Session, f *fence) error {
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, max(e.ttl/4, 500*time.Millisecond))
	defer cancel()
	res, err := e.cli.TimeToLive(rctx, s.Lease())
	if err != nil {
		return err
	}
	if res.TTL <= 0 {
		return errors.New("the lease has expired")
	}
	margin := max(e.ttl/10, 200*time.Millisecond)
	f.deadline.Store(sent.Add(time.Duration(res.TTL)*time.Second - margin).UnixNano())
	return nil
}

// guard ends the term (cancel) when the session ends or the fence's
// deadline passes; it renews the fence every TTL/4 until then.
func (e *Elector) guard(ctx context.Context, cancel context.CancelFunc, s *concurrency.Session, f *fence) {
	defer cancel()
	every := max(e.ttl/4, 250*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		wait := time.Until(time.Unix(0, f.deadline.Load()))
		if wait <= 0 {
			e.fenced.Inc()
			e.log.Warn("leadership lost: the lease could not be renewed before its deadline; the singleton jobs stop")
			return
		}
		dl := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			dl.Stop()
			return
		case <-s.Done():
			dl.Stop()
			e.log.Warn("leadership lost: the lease expired")
			return
		case <-dl.C:
		case <-tick.C:
			dl.Stop()
			if err := e.renew(ctx, s, f); err != nil && ctx.Err() == nil {
				e.log.Warn("lease check failed; leading until the fence's deadline", "err", err,
					"deadline", time.Unix(0, f.deadline.Load()).UTC().Format(time.RFC3339Nano))
			}
		}
	}
}

// resign gives leadership up at once (another replica's campaign wins
// without waiting for the lease); after an etcd outage the lease may be
// gone already, which is no error.
func (e *Elector) resign(ctx context.Context, el *concurrency.Election) {
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	if err := el.Resign(rctx); err != nil && ctx.Err() == nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		e.log.Warn("resign", "err", err)
	}
}

// observe keeps the leader's ID as /-/ready shows it, asking etcd every
// TTL/2: "none" while the election has no leader (a leader that died
// drops out once its lease expires).
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	t := time.NewTicker(max(e.ttl/2, 250*time.Millisecond))
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, max(e.ttl/2, 250*time.Millisecond))
		res, err := el.Leader(qctx)
		cancel()
		switch {
		case err == nil && len(res.Kvs) > 0:
			e.setLeader(string(res.Kvs[0].Value))
		case errors.Is(err, concurrency.ErrElectionNoLeader):
			e.setLeader("")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Elector) setLeader(id string) {
	e.mu.Lock()
	e.leader = id
	e.mu.Unlock()
}

// Leading reports whether this replica leads now.
func (e *Elector) Leading() bool { return e.leading.Load() }

// Status is what /-/ready shows about leadership.
type Status struct {
	ID      string    `json:"id"`
	Leading bool      `json:"leading"`
	Leader  string    `json:"leader"` // the leader's id as last observed; "" while none
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
