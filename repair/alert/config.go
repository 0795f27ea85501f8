package alert

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"time"
)

// Rule kinds: what a rule watches.
const (
	// KindDriftRate fires per entity when the last finished sweep's
	// findings / records exceed Threshold.
	KindDriftRate = "drift_rate"
	// KindRepairFailures fires per entity when more than Threshold repairs
	// failed within Window.
	KindRepairFailures = "repair_failures"
	// KindSweepFailed fires per sweep that failed within Window.
	KindSweepFailed = "sweep_failed"
	// KindSweepStuck fires per running sweep flagged stuck.
	KindSweepStuck = "sweep_stuck"
	// KindSweepRangeFailing fires per running sweep one of whose ranges
	// failed for a store reason and is backing off (the sweep's error),
	// until a range makes progress again or the sweep ends.
	KindSweepRangeFailing = "sweep_range_failing"
	// KindStoreUnreachable fires per store its probes find down.
	KindStoreUnreachable = "store_unreachable"
	// KindTraceRejecting fires when more than Threshold spans were
	// rejected or refused by the OTLP receivers within Window.
	KindTraceRejecting = "trace_ingest_rejecting"
	// KindCatchupBacklog fires per store when more than Threshold writes
	// wait in the catch-up log.
	KindCatchupBacklog = "catchup_backlog"
	// KindStoreDataLoss fires per store that lost data (Redis restarted,
	// or its keyspace shrank) within Window.
	KindStoreDataLoss = "store_data_loss"
	// KindStoreDegraded fires per store that answers but reports itself
	// not healthy (Elasticsearch yellow: a replica shard unassigned, so
	// one more node lost could lose data). Red is store_unreachable.
	KindStoreDegraded = "store_degraded"
)

var kinds = []string{KindDriftRate, KindRepairFailures, KindSweepFailed, KindSweepStuck, KindSweepRangeFailing, KindStoreUnreachable, KindTraceRejecting, KindCatchupBacklog, KindStoreDataLoss, KindStoreDegraded}

// Rule is one configured alert rule.
type Rule struct {
	Name      string        `yaml:"name"`
	Kind      string        `yaml:"kind"`
	Threshold float64       `yaml:"threshold"`
	Window    time.Duration `yaml:"window"`
	// For is how long the condition must hold before the alert fires
	// (pending until then; a pending alert is never sent).
	For      time.Duration `yaml:"for"`
	Severity string        `yaml:"severity"`
	// RunbookURL is the page an operator follows when it fires; it is
	// carried in every notification (annotation runbook_url) and shown in
	// the UI.
	RunbookURL string `yaml:"runbook_url"`
}

// Config is the alerting configuration (key `alert`).
type Config struct {
	// Enabled runs rule evaluation and deliveries (on the leader).
	Enabled bool `yaml:"enabled"`
	// Interval is how often rules are evaluated and due deliveries sent.
	Interval time.Duration `yaml:"interval"`
	// RepeatInterval re-sends a group that is still firing.
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// MaxAge is how long a delivery is retried (exponential back-off from
	// one second up to MaxBackoff) before it is given up as expired.
	MaxAge     time.Duration `yaml:"max_age"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// ExternalURL is how receivers reach triad (the payload's
	// externalURL and generatorURL).
	ExternalURL string `yaml:"external_url"`
	// AllowCIDRs are address ranges webhooks may reach even though they
	// are refused by default (link-local, cloud metadata, unspecified,
	// multicast); DenyCIDRs are refused besides those.
	AllowCIDRs []string `yaml:"allow_cidrs"`
	DenyCIDRs  []string `yaml:"deny_cidrs"`
	// Retention is how long resolved alerts and finished deliveries are
	// kept (purged hourly by the leader).
	Retention time.Duration `yaml:"retention"`
	// Rules are the alert rules (defaults: one of each kind).
	Rules []Rule `yaml:"rules"`
	// ClassRunbooks are runbook URLs per drift class (missing, stale,
	// corrupt, …), shown beside each repair-log entry and check of that
	// class.
	ClassRunbooks map[string]string `yaml:"class_runbooks"`
}

// DefaultRules is one rule of each kind with thresholds an operator of
// a profile platform would start from.
func DefaultRules() []Rule {
	return []Rule{
		{Name: "DriftRateHigh", Kind: KindDriftRate, Threshold: 0.001, Severity: "warning"},
		{Name: "RepairsFailing", Kind: KindRepairFailures, Threshold: 0, Window: 15 * time.Minute, Severity: "critical"},
		{Name: "SweepFailed", Kind: KindSweepFailed, Window: time.Hour, Severity: "warning"},
		{Name: "SweepStuck", Kind: KindSweepStuck, Severity: "warning"},
		{Name: "SweepRangeFailing", Kind: KindSweepRangeFailing, Severity: "warning"},
		{Name: "StoreUnreachable", Kind: KindStoreUnreachable, For: 30 * time.Second, Severity: "critical"},
		{Name: "TraceIngestRejecting", Kind: KindTraceRejecting, Threshold: 0, Window: 5 * time.Minute, Severity: "warning"},
		{Name: "CatchupBacklogGrowing", Kind: KindCatchupBacklog, Threshold: 10000, For: 5 * time.Minute, Severity: "warning"},
		{Name: "StoreDataLoss", Kind: KindStoreDataLoss, Window: 30 * time.Minute, Severity: "critical"},
		{Name: "StoreDegraded", Kind: KindStoreDegraded, For: 5 * time.Minute, Severity: "warning"},
	}
}

// DefaultConfig returns the alerting defaults.
func DefaultConfig() Config {
	return Config{
		Enabled: true, Interval: 15 * time.Second, RepeatInterval: 4 * time.Hour,
		MaxAge: time.Hour, MaxBackoff: 5 * time.Minute, Timeout: 10 * time.Second,
		ExternalURL: "http://127.0.0.1:8383", Retention: 30 * 24 * time.Hour, Rules: DefaultRules(),
	}
}

var ruleName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate names the first bad key.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("alert.interval: must be at least 100ms, got %s", c.Interval))
	}
	if c.RepeatInterval < time.Minute {
		errs = append(errs, fmt.Errorf("alert.repeat_interval: must be at least 1m, got %s", c.RepeatInterval))
	}
	if c.MaxAge < time.Second || c.MaxBackoff < time.Second || c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("alert.max_age, max_backoff: at least 1s, timeout: positive (got %s, %s, %s)", c.MaxAge, c.MaxBackoff, c.Timeout))
	}
	if c.Retention < time.Hour {
		errs = append(errs, fmt.Errorf("alert.retention: must be at least 1h, got %s", c.Retention))
	}
	for i, cidrs := range [][]string{c.AllowCIDRs, c.DenyCIDRs} {
		key := []string{"allow_cidrs", "deny_cidrs"}[i]
		for j, s := range cidrs {
			if _, err := netip.ParsePrefix(s); err != nil {
				errs = append(errs, fmt.Errorf("alert.%s[%d]: %w", key, j, err))
			}
		}
	}
	runbook := func(where, u string) {
		if u == "" {
			return
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: an http(s) URL, got %q", where, u))
		}
	}
	for class, u := range c.ClassRunbooks {
		if !ruleName.MatchString(class) {
			errs = append(errs, fmt.Errorf("alert.class_runbooks: %q is not a class name", class))
		}
		runbook("alert.class_runbooks."+class, u)
	}
	seen := map[string]bool{}
	for i, r := range c.Rules {
		runbook(fmt.Sprintf("alert.rules[%d].runbook_url", i), r.RunbookURL)
		switch {
		case !ruleName.MatchString(r.Name):
			errs = append(errs, fmt.Errorf("alert.rules[%d]: name %q must be a label value of letters, digits and _", i, r.Name))
		case seen[r.Name]:
			errs = append(errs, fmt.Errorf("alert.rules[%d]: name %q used twice", i, r.Name))
		}
		seen[r.Name] = true
		known := false
		for _, k := range kinds {
			known = known || k == r.Kind
		}
		if !known {
			errs = append(errs, fmt.Errorf("alert.rules[%d]: kind %q: want one of %v", i, r.Kind, kinds))
		}
		if r.Threshold < 0 || r.Window < 0 || r.For < 0 {
			errs = append(errs, fmt.Errorf("alert.rules[%d]: threshold, window and for must not be negative", i))
		}
		if (r.Kind == KindRepairFailures || r.Kind == KindTraceRejecting || r.Kind == KindSweepFailed || r.Kind == KindStoreDataLoss) && r.Window <= 0 {
			errs = append(errs, fmt.Errorf("alert.rules[%d]: kind %s needs a window", i, r.Kind))
		}
	}
	return errors.Join(errs...)
}

// Rule returns the rule named name.
func (c Config) Rule(name string) (Rule, bool) {
	for _, r := range c.Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}
