package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Dependency is a store the server needs; Check returns its version when it
// answers. Check must honour ctx and be safe to call concurrently.
type Dependency struct {
	Name  string
	Check func(ctx context.Context) (version string, err error)
	// Optional dependencies are reported but do not make the server
	// unready when down (etcd: replicas keep serving the last known
	// dataset version).
	Optional bool
}

// Component is a part of triad whose state /-/ready reports: Status
// returns a JSON-able detail and whether the part is ready. It must be
// cheap and safe to call concurrently.
type Component struct {
	Name   string
	Status func() (detail any, ready bool)
}

// DependencyState is one dependency's last probe, as /-/ready reports it.
type DependencyState struct {
	Status    string    `json:"status"` // up or down
	Version   string    `json:"version,omitempty"`
	LatencyMS float64   `json:"latency_ms"`
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
	// Since is when the dependency entered its current status.
	Since time.Time `json:"since"`
	// Optional: being down does not make the server unready.
	Optional bool `json:"optional,omitempty"`
}

// readiness probes dependencies on an interval and remembers the last result.
type readiness struct {
	deps     []Dependency
	parts    []Component
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	up      *prometheus.GaugeVec
	latency *prometheus.HistogramVec

	mu       sync.RWMutex
	state    map[string]DependencyState
	probed   bool // at least one full round has completed
	stopping bool
}

func newReadiness(deps []Dependency, parts []Component, interval, timeout time.Duration, reg prometheus.Registerer) *readiness {
	f := promauto.With(reg)
	return &readiness{
		deps: deps, parts: parts, interval: interval, timeout: timeout, now: time.Now,
		state: map[string]DependencyState{},
		up: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triad_dependency_up", Help: "Whether the dependency answered its last readiness probe (1) or not (0).",
		}, []string{"dependency"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "triad_dependency_probe_duration_seconds", Help: "Duration of readiness probes per dependency.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"dependency"}),
	}
}

// run probes until ctx ends.
func (r *readiness) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.probeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *readiness) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range r.deps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.probe(ctx, d)
		}()
	}
	wg.Wait()
	r.mu.Lock()
	r.probed = true
	r.mu.Unlock()
}

func (r *readiness) probe(ctx context.Context, d Dependency) {
	pctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	start := r.now()
	version, err := d.Check(pctx)
	took := r.now().Sub(start)
	if ctx.Err() != nil {
		return // shutting down: do not record a spurious failure
	}
	st := DependencyState{Status: "up", Version: version, LatencyMS: float64(took.Microseconds()) / 1000, CheckedAt: r.now()}
	if err != nil {
		st.Status, st.Error = "down", err.Error()
	}
	r.latency.WithLabelValues(d.Name).Observe(took.Seconds())
	if st.Status == "up" {
		r.up.WithLabelValues(d.Name).Set(1)
	} else {
		r.up.WithLabelValues(d.Name).Set(0)
	}
	r.mu.Lock()
	prev, ok := r.state[d.Name]
	st.Since = st.CheckedAt
	if ok && prev.Status == st.Status {
		st.Since = prev.Since
		if st.Version == "" {
			st.Version = prev.Version // keep the last known version while down
		}
	} else if ok && st.Version == "" {
		st.Version = prev.Version
	}
	r.state[d.Name] = st
	r.mu.Unlock()
}

// ReadyReport is the body of /-/ready.
type ReadyReport struct {
	Status       string                     `json:"status"` // ready, not_ready, starting or stopping
	Dependencies map[string]DependencyState `json:"dependencies"`
	Components   map[string]ComponentState  `json:"components,omitempty"`
}

// ComponentState is one component's state in /-/ready.
type ComponentState struct {
	Ready  bool `json:"ready"`
	Detail any  `json:"detail"`
}

func (r *readiness) report() (ReadyReport, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	rep := ReadyReport{Dependencies: make(map[string]DependencyState, len(r.state))}
	ok := r.probed && !r.stopping
	for _, d := range r.deps {
		st, seen := r.state[d.Name]
		if !seen {
			st = DependencyState{Status: "unknown"}
		}
		if d.Optional {
			st.Optional = true
		}
		rep.Dependencies[d.Name] = st
		if st.Status != "up" && !d.Optional {
			ok = false
		}
	}
	if len(r.parts) > 0 {
		rep.Components = make(map[string]ComponentState, len(r.parts))
		for _, p := range r.parts {
			detail, ready := p.Status()
			rep.Components[p.Name] = ComponentState{Ready: ready, Detail: detail}
			ok = ok && ready
		}
	}
	switch {
	case r.stopping:
		rep.Status = "stopping"
	case !r.probed:
		rep.Status = "starting"
	case ok:
		rep.Status = "ready"
	default:
		rep.Status = "not_ready"
	}
	return rep, ok
}

func (r *readiness) setStopping() {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
}

// DependenciesDown returns the dependencies whose last probe failed, with
// since when (the alert rules' store_unreachable facts).
func (s *Server) DependenciesDown() map[string]time.Time {
	s.ready.mu.RLock()
	defer s.ready.mu.RUnlock()
	out := map[string]time.Time{}
	for name, st := range s.ready.state {
		if st.Status == "down" {
			out[name] = st.Since
		}
	}
	return out
}
