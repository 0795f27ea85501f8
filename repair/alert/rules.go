// Package alert evaluates alert rules over triad's state and delivers
// notifications to webhooks: Alertmanager's webhook format (or plain
// JSON), signed with HMAC-SHA256 over a timestamp and the body, grouped
// per rule, de-duplicated across replicas through Postgres, retried with
// exponential back-off up to a maximum age, resolved notifications
// included. Evaluation and deliveries run on the elected leader only.
// Webhook targets are operator-supplied URLs: the HTTP client refuses
// link-local and cloud-metadata addresses at dial time (after DNS, so a
// name cannot be re-pointed) unless allow-listed.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SweepFact is a sweep as the rules see it.
type SweepFact struct {
	ID         int64
	Entity     string
	State      string // running, paused, done, failed, cancelled, superseded
	Stuck      bool
	Records    int64
	Findings   int64
	Error      string
	FinishedAt time.Time
}

// Facts are what rules are evaluated over, gathered once per round.
type Facts struct {
	Now time.Time
	// LastSweeps is the last finished (done) content-true sweep of each
	// entity (a label-only sweep cannot see drift that left labels alone).
	LastSweeps []SweepFact
	// Sweeps are the running or paused sweeps and those that failed
	// within the longest sweep_failed window.
	Sweeps []SweepFact
	// RepairFailures counts failed repair log entries per entity within
	// each window asked for (by window).
	RepairFailures map[time.Duration]map[string]int64
	// StoresDown names the stores probes find down, with since when.
	StoresDown map[string]time.Time
	// TraceRefused is the cumulative count of spans the OTLP receivers
	// rejected or refused (a counter: rules look at its increase).
	TraceRefused float64
	// Catchup is the number of writes waiting in the catch-up log per
	// store.
	Catchup map[string]int64
	// DataLoss is each store's last detected loss of data (a restart
	// without its keys, a keyspace drop).
	DataLoss map[string]DataLoss
	// StoresDegraded names the stores that answer but report a health
	// other than green (Elasticsearch yellow).
	StoresDegraded map[string]StoreHealth
}

// StoreHealth is a store's own report of its health.
type StoreHealth struct {
	Health, Note string
	Since        time.Time
}

// DataLoss is a store's detected loss of data and what was done about it.
type DataLoss struct {
	At     time.Time
	Detail string
}

// Active is one alert instance the rules find true now.
type Active struct {
	Rule        string
	Labels      map[string]string
	Annotations map[string]string
	Value       float64
}

// Fingerprint identifies an alert instance: its rule and labels.
func Fingerprint(labels map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// counterPoint is one observation of a counter, for its increase over a
// window.
type counterPoint struct {
	at time.Time
	v  float64
}

// Evaluator turns Facts into active alerts. It keeps a short history of
// counters (the trace receivers' refusals) to compute their increase
// over a window. Not safe for concurrent use.
type Evaluator struct {
	rules   []Rule
	refused []counterPoint
}

// NewEvaluator returns an evaluator of rules.
func NewEvaluator(rules []Rule) *Evaluator { return &Evaluator{rules: rules} }

// Windows are the repair-failure windows the rules ask Facts for.
func (e *Evaluator) Windows() []time.Duration {
	var out []time.Duration
	for _, r := range e.rules {
		if r.Kind == KindRepairFailures && !slices.Contains(out, r.Window) {
			out = append(out, r.Window)
		}
	}
	return out
}

// SweepWindow is the longest sweep_failed window (0: none asked for).
func (e *Evaluator) SweepWindow() time.Duration {
	var w time.Duration
	for _, r := range e.rules {
		if r.Kind == KindSweepFailed {
			w = max(w, r.Window)
		}
	}
	return w
}

// increase is how much the refusal counter grew within w (a restart of
// the counter counts from zero, as Prometheus' increase does).
func (e *Evaluator) increase(w time.Duration, now time.Time) float64 {
	var inc float64
	var prev *counterPoint
	for i := range e.refused {
		p := &e.refused[i]
		if p.at.Before(now.Add(-w)) {
			prev = p
			continue
		}
		if prev != nil {
			if d := p.v - prev.v; d >= 0 {
				inc += d
			} else {
				inc += p.v
			}
		}
		prev = p
	}
	return inc
}

// Evaluate returns every alert instance true for f.
func (e *Evaluator) Evaluate(f Facts) []Active {
	e.refused = append(e.refused, counterPoint{f.Now, f.TraceRefused})
	var longest time.Duration
	for _, r := range e.rules {
		if r.Kind == KindTraceRejecting {
			longest = max(longest, r.Window)
		}
	}
	for len(e.refused) > 1 && e.refused[1].at.Before(f.Now.Add(-longest)) {
		e.refused = e.refused[1:] // keep one point before the window
	}
	var out []Active
	add := func(r Rule, v float64, summary string, labels ...string) {
		l := map[string]string{"alertname": r.Name, "kind": r.Kind, "severity": r.Severity}
		for i := 0; i+1 < len(labels); i += 2 {
			l[labels[i]] = labels[i+1]
		}
		if l["severity"] == "" {
			l["severity"] = "warning"
		}
		ann := map[string]string{"summary": summary}
		if r.RunbookURL != "" {
			ann["runbook_url"] = r.RunbookURL
		}
		out = append(out, Active{Rule: r.Name, Labels: l, Value: v, Annotations: ann})
	}
	for _, r := range e.rules {
		switch r.Kind {
		case KindDriftRate:
			for _, s := range f.LastSweeps {
				if s.Records == 0 {
					continue
				}
				if rate := float64(s.Findings) / float64(s.Records); rate > r.Threshold {
					add(r, rate, fmt.Sprintf("sweep %d of %s found %d drifted records in %d (%.4f%%, threshold %.4f%%)",
						s.ID, s.Entity, s.Findings, s.Records, 100*rate, 100*r.Threshold), "entity", s.Entity)
				}
			}
		case KindRepairFailures:
			for _, entity := range slices.Sorted(maps.Keys(f.RepairFailures[r.Window])) {
				if n := f.RepairFailures[r.Window][entity]; float64(n) > r.Threshold {
					add(r, float64(n), fmt.Sprintf("%d repairs of %s failed in the last %s", n, entity, r.Window), "entity", entity)
				}
			}
		case KindSweepFailed:
			for _, s := range f.Sweeps {
				if s.State == "failed" && !s.FinishedAt.Before(f.Now.Add(-r.Window)) {
					add(r, 1, fmt.Sprintf("sweep %d of %s failed: %s", s.ID, s.Entity, s.Error), "entity", s.Entity, "sweep", strconv.FormatInt(s.ID, 10))
				}
			}
		case KindSweepStuck:
			for _, s := range f.Sweeps {
				if s.Stuck && (s.State == "running" || s.State == "paused") {
					add(r, 1, fmt.Sprintf("sweep %d of %s makes no progress", s.ID, s.Entity), "entity", s.Entity, "sweep", strconv.FormatInt(s.ID, 10))
				}
			}
		case KindSweepRangeFailing:
			for _, s := range f.Sweeps {
				if s.Error != "" && s.State == "running" {
					add(r, 1, fmt.Sprintf("sweep %d of %s: a range is failing and backing off: %s", s.ID, s.Entity, s.Error), "entity", s.Entity, "sweep", strconv.FormatInt(s.ID, 10))
				}
			}
		case KindStoreUnreachable:
			for _, store := range slices.Sorted(maps.Keys(f.StoresDown)) {
				since := f.StoresDown[store]
				add(r, f.Now.Sub(since).Seconds(), fmt.Sprintf("%s has not answered triad's probes since %s", store, since.UTC().Format(time.RFC3339)), "store", store)
			}
		case KindTraceRejecting:
			if inc := e.increase(r.Window, f.Now); inc > r.Threshold {
				add(r, inc, fmt.Sprintf("the OTLP receivers rejected or refused %.0f spans in the last %s", inc, r.Window))
			}
		case KindStoreDataLoss:
			for _, store := range slices.Sorted(maps.Keys(f.DataLoss)) {
				if l := f.DataLoss[store]; f.Now.Sub(l.At) <= r.Window {
					add(r, 1, fmt.Sprintf("%s lost data at %s: %s", store, l.At.UTC().Format(time.RFC3339), l.Detail), "store", store)
				}
			}
		case KindStoreDegraded:
			for _, store := range slices.Sorted(maps.Keys(f.StoresDegraded)) {
				h := f.StoresDegraded[store]
				add(r, f.Now.Sub(h.Since).Seconds(), fmt.Sprintf("%s reports %s health since %s: %s", store, h.Health, h.Since.UTC().Format(time.RFC3339), h.Note),
					"store", store, "health", h.Health)
			}
		case KindCatchupBacklog:
			for _, store := range slices.Sorted(maps.Keys(f.Catchup)) {
				if n := f.Catchup[store]; float64(n) > r.Threshold {
					add(r, float64(n), fmt.Sprintf("%d writes to %s wait in the catch-up log (threshold %.0f)", n, store, r.Threshold), "store", store)
				}
			}
		}
	}
	return out
}

// groupKey is the Alertmanager-style key of a rule's group.
func groupKey(rule string) string {
	return `{}:{alertname="` + strings.ReplaceAll(rule, `"`, `\"`) + `"}`
}
