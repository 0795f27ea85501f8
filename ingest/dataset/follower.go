package dataset

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/triad-dev/triad/ingest"
)

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	ID   string // unique per process, e.g. host-pid
	Kind string // serve or ingest
	Addr string // the API address, for operators
	// Apply is called with the versions to serve and write whenever they
	// change (and once at start); it must be quick.
	Apply func(ingest.Versions)
	// Applied, if set, runs after a change was applied and reported (serve
	// uses it to reconcile the Elasticsearch alias).
	Applied    func(ctx context.Context, st State)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Follower keeps a process on the dataset state in etcd: it applies the
// versions Plan computes, within one watch round trip of a change, and
// reports what it serves under its own lease. While etcd is unreachable it
// keeps the last versions it applied, says so in Status, and resumes
// (re-reading the state) when etcd returns.
type Follower struct {
	cfg  Config
	cli  *clientv3.Client
	k    keys
	o    FollowerOptions
	log  *slog.Logger
	view atomic.Pointer[ingest.Versions]

	watchDuration prometheus.Histogram
	serving       prometheus.Gauge
	connected     prometheus.Gauge
	applies       prometheus.Counter

	mu          sync.Mutex
	since       time.Time // serving the current version since
	lastContact time.Time
	lastErr     string
	reachable   bool
	started     bool
	everReached bool
	session     *concurrency.Session
	known       chan struct{} // closed once the state was read
}

// NewFollower returns a follower; Run starts it. Until it has read the
// state, it serves and writes version 1.
func NewFollower(cfg Config, cli *clientv3.Client, o FollowerOptions) *Follower {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	f := promauto.With(o.Registerer)
	fl := &Follower{cfg: cfg, cli: cli, k: newKeys(cfg.EtcdPrefix), o: o, log: o.Logger.With("component", "ingest.dataset"),
		watchDuration: f.NewHistogram(prometheus.HistogramOpts{
			// The seed's name, kept exactly.
			Name:    "etcd_watch_duration_seconds",
			Help:    "Time from an etcd watch response arriving (bursts coalesced into one) to the dataset versions it implies being applied and reported.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		serving: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_dataset_serving_version", Help: "The dataset version this process serves.",
		}),
		connected: f.NewGauge(prometheus.GaugeOpts{
			Name: "triad_dataset_etcd_reachable", Help: "1 while the dataset follower reaches etcd; 0 while it keeps serving the last known version without it.",
		}),
		applies: f.NewCounter(prometheus.CounterOpts{
			Name: "triad_dataset_applies_total", Help: "Changes of served or written dataset versions this process applied.",
		}),
	}
	fl.known = make(chan struct{})
	fl.view.Store(ingest.DefaultVersions())
	fl.serving.Set(1)
	fl.since = time.Now()
	return fl
}

// Known is closed once the follower has read the state and applied it.
func (f *Follower) Known() <-chan struct{} { return f.known }

// Versions are the versions currently applied.
func (f *Follower) Versions() ingest.Versions { return *f.view.Load() }

// Run follows the state until ctx ends, then revokes its report.
func (f *Follower) Run(ctx context.Context) {
	defer f.closeSession()
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		st, err := f.load(ctx)
		if err != nil {
			f.unreachable(err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		f.apply(ctx, st, time.Time{})
		f.follow(ctx, st.Rev)
	}
}

// follow watches from rev+1 until the watch fails or ctx ends.
func (f *Follower) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := f.cli.Watch(wctx, f.k.root, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	tick := time.NewTicker(f.cfg.ResyncInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case resp, ok := <-wch:
			if !ok || resp.Err() != nil {
				if ok {
					f.log.Warn("dataset watch ended; re-reading", "err", resp.Err())
				}
				return
			}
			arrived := time.Now()
			relevant := f.relevant(resp)
			// Coalesce a burst: take whatever else is already queued, then
			// apply the state once.
		drain:
			for {
				select {
				case more, ok := <-wch:
					if !ok || more.Err() != nil {
						return
					}
					relevant = relevant || f.relevant(more)
				default:
					break drain
				}
			}
			if !relevant {
				continue
			}
			st, err := f.load(ctx)
			if err != nil {
				f.unreachable(err)
				continue
			}
			f.apply(ctx, st, arrived)
		case <-tick.C:
			// A re-read both proves etcd reachable and catches anything a
			// watch could have missed; a lost lease is re-granted here.
			st, err := f.load(ctx)
			if err != nil {
				f.unreachable(err)
				continue
			}
			f.apply(ctx, st, time.Time{})
		}
	}
}

func (f *Follower) relevant(resp clientv3.WatchResponse) bool {
	for _, ev := range resp.Events {
		if f.k.relevant(ev.Kv.Key) {
			return true
		}
	}
	return false
}

func (f *Follower) load(ctx context.Context) (State, error) {
	lctx, cancel := context.WithTimeout(ctx, f.cfg.ResyncInterval)
	defer cancel()
	st, err := load(lctx, f.cli, f.k)
	if err == nil {
		f.mu.Lock()
		if !f.reachable && f.started {
			f.log.Info("etcd reachable again; following the dataset state")
		}
		f.reachable, f.lastErr, f.lastContact, f.everReached = true, "", time.Now(), true
		f.mu.Unlock()
		f.connected.Set(1)
	}
	return st, err
}

func (f *Follower) unreachable(err error) {
	f.mu.Lock()
	if f.reachable || !f.started {
		f.log.Warn("etcd unreachable; keeping the last known dataset versions", "err", err, "serving", f.view.Load().Serving)
	}
	f.reachable, f.lastErr, f.started = false, err.Error(), true
	f.mu.Unlock()
	f.connected.Set(0)
}

// apply applies st's plan when it differs, and (re)reports under the lease.
func (f *Follower) apply(ctx context.Context, st State, arrived time.Time) {
	v := Plan(st)
	cur := f.view.Load()
	changed := v.Serving != cur.Serving || !slices.Equal(v.Writing, cur.Writing)
	f.mu.Lock()
	first := !f.started
	f.started = true
	if changed && v.Serving != cur.Serving {
		f.since = time.Now()
	}
	f.mu.Unlock()
	if changed || first {
		f.view.Store(&v)
		if f.o.Apply != nil {
			f.o.Apply(v)
		}
		f.serving.Set(float64(v.Serving))
		if changed {
			f.applies.Inc()
			f.log.Info("dataset versions applied", "serving", v.Serving, "writing", v.Writing)
		}
	}
	f.report(ctx, v, changed || first)
	if first {
		close(f.known)
	}
	if !arrived.IsZero() {
		f.watchDuration.Observe(time.Since(arrived).Seconds())
	}
	if f.o.Applied != nil {
		f.o.Applied(ctx, st)
	}
}

// report puts this member's report under its session's lease: when the
// versions changed, or when the session was (re)created.
func (f *Follower) report(ctx context.Context, v ingest.Versions, changed bool) {
	f.mu.Lock()
	s := f.session
	if s != nil {
		select {
		case <-s.Done():
			s, f.session = nil, nil // the lease expired (etcd was away longer than its TTL)
		default:
		}
	}
	since := f.since
	f.mu.Unlock()
	if s == nil {
		var err error
		s, err = concurrency.NewSession(f.cli, concurrency.WithTTL(int(f.cfg.SessionTTL.Seconds())), concurrency.WithContext(context.WithoutCancel(ctx)))
		if err != nil {
			f.log.Warn("etcd session for the member report", "err", err)
			return
		}
		f.mu.Lock()
		f.session = s
		f.mu.Unlock()
		changed = true
	}
	if !changed {
		return
	}
	m := Member{ID: f.o.ID, Kind: f.o.Kind, Addr: f.o.Addr, Serving: v.Serving, Writing: v.Writing, Since: since}
	pctx, cancel := context.WithTimeout(ctx, f.cfg.ResyncInterval)
	defer cancel()
	if _, err := f.cli.Put(pctx, f.k.member(f.o.ID), mustJSON(m), clientv3.WithLease(s.Lease())); err != nil {
		f.log.Warn("member report", "err", err)
		f.mu.Lock()
		f.session = nil // re-create and re-report on the next pass
		f.mu.Unlock()
		if ctx.Err() != nil {
			// Stopping: the put may have landed before the cancel; revoke
			// the lease so the report goes now (closeSession no longer
			// sees this session).
			_ = s.Close()
		} else {
			s.Orphan()
		}
	}
}

func (f *Follower) closeSession() {
	f.mu.Lock()
	s := f.session
	f.session = nil
	f.mu.Unlock()
	if s != nil {
		_ = s.Close() // revokes the lease: the report disappears now, not after the TTL
	}
}

// FollowerStatus is what /-/ready shows about dataset versions.
type FollowerStatus struct {
	Serving     int       `json:"serving"`
	Writing     []int     `json:"writing"`
	Since       time.Time `json:"serving_since"`
	Etcd        string    `json:"etcd"` // reachable, or unreachable: serving the last known version
	LastContact time.Time `json:"etcd_last_contact,omitzero"`
	Error       string    `json:"etcd_error,omitempty"`
}

// Status reports what the follower serves and whether it reaches etcd. It
// is ready once it has read the state once: a follower that cannot reach
// etcd later stays ready, serving the last known version, but one that
// never read the state does not know what to serve.
func (f *Follower) Status() (FollowerStatus, bool) {
	v := f.view.Load()
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FollowerStatus{Serving: v.Serving, Writing: v.Writing, Since: f.since, LastContact: f.lastContact, Error: f.lastErr, Etcd: "reachable"}
	if !f.reachable {
		st.Etcd = "unreachable: serving the last known version"
		if !f.everReached {
			st.Etcd = "not reached yet: the dataset state is unknown"
		}
	}
	return st, f.everReached
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
