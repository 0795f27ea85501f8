package server

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Dependency is a store the server needs; Check returns what it found when
// the store answers. Check must honour ctx and be safe to call
// concurrently.
type Dependency struct {
	Name  string
	Check func(ctx context.Context) (Probed, error)
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

// Probed is what a dependency's probe found: its version and, for a
// store that reports one (Elasticsearch's cluster health), its health
// (green, yellow, red) with a note saying why when it is not green.
type Probed struct {
	Version, Health, Note string
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
	// Health is the store's own health where it reports one
	// (Elasticsearch: green, yellow, red), HealthNote why when not green,
	// HealthSince when it entered it. Yellow is ready but degraded; red is
	// down.
	Health      string    `json:"health,omitempty"`
	HealthNote  string    `json:"health_note,omitempty"`
	HealthSince time.Time `json:"health_since,omitzero"`
}

// readiness probes dependencies on an interval and remembers the last result.
type readiness struct {
	deps     []Dependency
	parts    []Component
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time

	up      *prometheus.GaugeVec
	health  *prometheus.GaugeVec
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
		health: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "triad_dependency_health", Help: "The health a dependency reports of itself (1 for its current status: green, yellow or red; Elasticsearch only).",
		}, []string{"dependency", "status"}),
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
	found, err := d.Check(pctx)
	took := r.now().Sub(start)
	if ctx.Err() != nil {
		return // shutting down: do not record a spurious failure
	}
	st := DependencyState{Status: "up", Version: found.Version, LatencyMS: float64(took.Microseconds()) / 1000, CheckedAt: r.now(),
		Health: found.Health, HealthNote: found.Note}
	if found.Health != "" {
		for _, h := range []string{"green", "yellow", "red"} {
			v := 0.0
			if h == found.Health {
				v = 1
			}
			r.health.WithLabelValues(d.Name, h).Set(v)
		}
	}
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
	if st.Health != "" {
		st.HealthSince = st.CheckedAt
		if ok && prev.Health == st.Health {
			st.HealthSince = prev.HealthSince
		}
	}
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

// Degraded is a store that answers but reports itself not healthy.
type Degraded struct {
	Health, Note string
	Since        time.Time
}

// DependenciesDegraded returns the dependencies that answer but report a
// health other than green (Elasticsearch yellow: a replica unassigned),
// the alert rules' store_degraded facts.
func (s *Server) DependenciesDegraded() map[string]Degraded {
	s.ready.mu.RLock()
	defer s.ready.mu.RUnlock()
	out := map[string]Degraded{}
	for name, st := range s.ready.state {
		if st.Status == "up" && st.Health != "" && st.Health != "green" {
			out[name] = Degraded{Health: st.Health, Note: st.HealthNote, Since: st.HealthSince}
		}
	}
	return out
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
