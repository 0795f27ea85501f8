package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Errors of this package.
var (
	ErrInvalid  = errors.New("invalid webhook")
	ErrNotFound = errors.New("webhook not found")
	ErrNameUsed = errors.New("a webhook with this name exists")
)

// Payload formats.
const (
	FormatAlertmanager = "alertmanager"
	FormatJSON         = "json"
)

// State is an alert instance as stored.
type State struct {
	ID          int64             `json:"id"`
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Value       float64           `json:"value"`
	ActiveSince time.Time         `json:"active_since"`
	FiredAt     *time.Time        `json:"fired_at,omitempty"`    // nil: pending
	ResolvedAt  *time.Time        `json:"resolved_at,omitempty"` // nil: active
	// SilencedBy names the active silences that mute it (lists only).
	SilencedBy []int64 `json:"silenced_by,omitempty"`
}

// Status is firing, pending or resolved.
func (s State) Status() string {
	switch {
	case s.ResolvedAt != nil:
		return "resolved"
	case s.FiredAt == nil:
		return "pending"
	}
	return "firing"
}

// Webhook is a notification endpoint.
type Webhook struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	URL    string `json:"url"`
	Format string `json:"format"`
	Secret string `json:"-"`
	// PreviousSecret still signs (a second signature) until PreviousUntil:
	// the secret before the last rotation.
	PreviousSecret string     `json:"-"`
	PreviousUntil  *time.Time `json:"previous_secret_until,omitempty"`
	Rules          []string   `json:"rules"` // empty: every rule
	SendResolved   bool       `json:"send_resolved"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by"`
}

func (w Webhook) wants(rule string) bool { return len(w.Rules) == 0 || slices.Contains(w.Rules, rule) }

// Delivery is one notification to one webhook: queued, retried, and kept
// as the delivery log.
type Delivery struct {
	ID          int64      `json:"id"`
	WebhookID   int64      `json:"webhook_id"`
	Webhook     string     `json:"webhook"`
	GroupKey    string     `json:"group_key"`
	Status      string     `json:"status"` // firing or resolved
	FiringHash  string     `json:"-"`
	DedupeKey   string     `json:"-"`
	Payload     []byte     `json:"-"`
	State       string     `json:"state"` // pending, delivered, expired
	Attempts    int        `json:"attempts"`
	NextAt      time.Time  `json:"next_at"`
	LastStatus  *int       `json:"last_status,omitempty"`
	LastError   *string    `json:"last_error,omitempty"`
	Test        bool       `json:"test"`
	CreatedAt   time.Time  `json:"created_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// Attempt is the outcome of one delivery attempt.
type Attempt struct {
	Status    int    // HTTP status; 0 when no answer came
	Err       string // empty on a 2xx answer
	Delivered bool
	Expired   bool      // given up: too old to retry
	NextAt    time.Time // when to retry (not delivered, not expired)
}

// DeliveryFilter selects deliveries for the log, newest first; Before
// is a keyset cursor (an id).
type DeliveryFilter struct {
	WebhookID int64
	State     string
	Before    int64
	Limit     int
}

// Store keeps webhooks, alert states and deliveries. Implementations are
// safe for concurrent use; Enqueue is idempotent by DedupeKey.
type Store interface {
	Webhooks(ctx context.Context) ([]Webhook, error)
	Webhook(ctx context.Context, idOrName string) (Webhook, error)
	CreateWebhook(ctx context.Context, w Webhook) (Webhook, error)
	// RotateSecret makes secret the webhook's and keeps the one it had
	// signing until previousUntil; ErrNotFound when there is no such webhook.
	RotateSecret(ctx context.Context, idOrName, secret string, previousUntil time.Time) (Webhook, error)
	DeleteWebhook(ctx context.Context, idOrName string) (Webhook, error)

	// ActiveAlerts returns the instances not resolved.
	ActiveAlerts(ctx context.Context) ([]State, error)
	// Alerts returns the newest instances (active and resolved).
	Alerts(ctx context.Context, limit int) ([]State, error)
	// ResolvedSince returns rule's instances that had fired and resolved
	// after t.
	ResolvedSince(ctx context.Context, rule string, t time.Time) ([]State, error)
	InsertAlert(ctx context.Context, s State) (State, error)
	UpdateAlert(ctx context.Context, s State) error
	DeleteAlert(ctx context.Context, id int64) error

	// Enqueue queues d unless a delivery with its DedupeKey exists; ok
	// reports whether it was queued.
	Enqueue(ctx context.Context, d Delivery) (Delivery, bool, error)
	// LastDelivery is the newest delivery of a group to a webhook (tests
	// excluded); ok is false when there is none.
	LastDelivery(ctx context.Context, webhookID int64, groupKey string) (d Delivery, ok bool, err error)
	// Due returns up to limit pending deliveries whose time has come,
	// with their webhooks.
	Due(ctx context.Context, now time.Time, limit int) ([]Delivery, map[int64]Webhook, error)
	Attempted(ctx context.Context, id int64, a Attempt) error
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// Purge deletes alerts resolved, deliveries finished (delivered or
	// expired) and silences expired before cutoff; it returns how many
	// rows went.
	Purge(ctx context.Context, cutoff time.Time) (int64, error)

	SilenceStore
}

// Gatherer collects the facts rules are evaluated over; windows are the
// repair-failure windows the rules ask for, sweepWindow the longest
// sweep_failed window.
type Gatherer func(ctx context.Context, now time.Time, windows []time.Duration, sweepWindow time.Duration) (Facts, error)

// Manager evaluates the rules and sends what they fire. Run it on the
// leader only. Safe for concurrent use by the API (Test, the lists).
type Manager struct {
	cfg      Config
	store    Store
	silences SilenceStore
	gather   Gatherer
	eval     *Evaluator
	sender   *Sender
	log      *slog.Logger
	now      func() time.Time
	m        *Metrics
}

// NewManager returns a manager over store.
func NewManager(cfg Config, store Store, gather Gatherer, sender *Sender, log *slog.Logger, m *Metrics) *Manager {
	return &Manager{cfg: cfg, store: store, silences: store, gather: gather, eval: NewEvaluator(cfg.Rules), sender: sender,
		log: log.With("component", "repair.alert"), now: time.Now, m: m}
}

// Config returns the configuration (rules included) the manager runs.
func (m *Manager) Config() Config { return m.cfg }

// Store returns the manager's store.
func (m *Manager) Store() Store { return m.store }

// Run evaluates the rules every Interval, sends due deliveries every
// second (or every Interval, if shorter) so back-off delays of a second
// or two are kept, and purges what is older than Retention hourly, until
// ctx ends.
//
// With fence set (leader.Check), each round of evaluation, delivery and
// purge first proves the caller still leads, and is skipped if not.
func (m *Manager) Run(ctx context.Context, fence func(context.Context) error) {
	if fence == nil {
		fence = func(context.Context) error { return nil }
	}
	every := func(ctx context.Context, d time.Duration, fn func()) {
		every(ctx, d, func() {
			if fence(ctx) == nil {
				fn()
			}
		})
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		every(ctx, m.cfg.Interval, func() {
			if err := m.Evaluate(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("alert evaluation", "err", err)
			}
		})
	})
	wg.Go(func() {
		every(ctx, time.Hour, func() {
			if n, err := m.store.Purge(ctx, m.now().Add(-m.cfg.Retention)); err != nil && ctx.Err() == nil {
				m.log.Warn("alert purge", "err", err)
			} else if n > 0 {
				m.log.Info("alerts and deliveries purged", "rows", n, "retention", m.cfg.Retention)
			}
		})
	})
	wg.Go(func() {
		every(ctx, min(m.cfg.Interval, time.Second), func() {
			if _, err := m.Deliver(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("alert delivery", "err", err)
			}
		})
	})
	wg.Wait()
}

// every runs fn at once, then every d, until ctx ends.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Evaluate runs one round: gather, evaluate, record state transitions,
// queue the notifications they call for.
func (m *Manager) Evaluate(ctx context.Context) error {
	now := m.now()
	facts, err := m.gather(ctx, now, m.eval.Windows(), m.eval.SweepWindow())
	if err != nil {
		return fmt.Errorf("gather: %w", err)
	}
	facts.Now = now
	active := m.eval.Evaluate(facts)
	stored, err := m.store.ActiveAlerts(ctx)
	if err != nil {
		return err
	}
	byFP := map[string]State{}
	for _, s := range stored {
		byFP[s.Fingerprint] = s
	}
	seen := map[string]bool{}
	for _, a := range active {
		fp := Fingerprint(a.Labels)
		seen[fp] = true
		r, _ := m.cfg.Rule(a.Rule)
		s, ok := byFP[fp]
		if !ok {
			s = State{Fingerprint: fp, Rule: a.Rule, Labels: a.Labels, Annotations: a.Annotations, Value: a.Value, ActiveSince: now}
			if r.For <= 0 {
				s.FiredAt = &now
			}
			if _, err := m.store.InsertAlert(ctx, s); err != nil {
				return err
			}
			continue
		}
		s.Value, s.Annotations = a.Value, a.Annotations
		if s.FiredAt == nil && now.Sub(s.ActiveSince) >= r.For {
			s.FiredAt = &now
		}
		if err := m.store.UpdateAlert(ctx, s); err != nil {
			return err
		}
	}
	for fp, s := range byFP {
		if seen[fp] {
			continue
		}
		if s.FiredAt == nil { // pending only: it never fired, nothing to resolve
			if err := m.store.DeleteAlert(ctx, s.ID); err != nil {
				return err
			}
			continue
		}
		s.ResolvedAt = &now
		if err := m.store.UpdateAlert(ctx, s); err != nil {
			return err
		}
	}
	if m.m != nil {
		m.m.evaluations.Inc()
	}
	// A silence that ran out is noticed once: logged and counted (the
	// alerts it muted are notified below, if they still fire).
	expired, err := m.silences.NoticeExpired(ctx, now)
	if err != nil {
		return err
	}
	for _, s := range expired {
		m.log.Info("silence expired", "silence", s.ID, "matchers", fmt.Sprint(s.Matchers), "created_by", s.CreatedBy, "comment", s.Comment, "ended", s.EndsAt)
		if m.m != nil {
			m.m.silencesExpired.Inc()
		}
	}
	return m.notify(ctx, now)
}

// notify queues, per rule group and webhook, a notification when the
// group's firing set differs from the one last sent, when alerts
// resolved since the last one, or when a firing group is due a repeat.
// It is derived from stored state only, so a new leader carries on where
// the old one stopped, and the dedupe key makes a notification computed
// twice one delivery.
func (m *Manager) notify(ctx context.Context, now time.Time) error {
	hooks, err := m.store.Webhooks(ctx)
	if err != nil || len(hooks) == 0 {
		return err
	}
	active, err := m.store.ActiveAlerts(ctx)
	if err != nil {
		return err
	}
	// Silences active now mute firing alerts; a resolved alert is not
	// notified if a silence muted it when it resolved.
	silences, err := m.silences.Silences(ctx, now.Add(-m.cfg.Retention))
	if err != nil {
		return err
	}
	firing := map[string][]State{}
	for _, s := range active {
		if s.FiredAt != nil && len(silencedBy(silences, s, now)) == 0 {
			firing[s.Rule] = append(firing[s.Rule], s)
		}
	}
	for _, r := range m.cfg.Rules {
		fs := firing[r.Name]
		slices.SortFunc(fs, func(a, b State) int { return int(a.ID - b.ID) })
		hash := firingHash(fs)
		gk := groupKey(r.Name)
		for _, w := range hooks {
			if !w.wants(r.Name) {
				continue
			}
			last, ok, err := m.store.LastDelivery(ctx, w.ID, gk)
			if err != nil {
				return err
			}
			var since time.Time
			if ok {
				since = last.CreatedAt
			}
			var resolved []State
			if ok && w.SendResolved {
				all, err := m.store.ResolvedSince(ctx, r.Name, since)
				if err != nil {
					return err
				}
				for _, s := range all {
					if len(silencedBy(silences, s, *s.ResolvedAt)) == 0 {
						resolved = append(resolved, s)
					}
				}
			}
			key := ""
			switch {
			case len(fs) == 0 && len(resolved) == 0:
				continue
			case !ok || hash != last.FiringHash || len(resolved) > 0:
				key = fmt.Sprintf("%d|%s|%s|%s", w.ID, gk, hash, idsOf(resolved))
			case len(fs) > 0 && now.Sub(last.CreatedAt) >= m.cfg.RepeatInterval:
				key = fmt.Sprintf("%d|%s|%s|repeat@%d", w.ID, gk, hash, now.Unix()/int64(m.cfg.RepeatInterval.Seconds()))
			default:
				continue
			}
			d, err := m.build(w, r, gk, fs, resolved, now)
			if err != nil {
				return err
			}
			d.FiringHash, d.DedupeKey = hash, key
			if _, queued, err := m.store.Enqueue(ctx, d); err != nil {
				return err
			} else if queued {
				m.log.Info("alert notification queued", "webhook", w.Name, "group", gk, "status", d.Status, "firing", len(fs), "resolved", len(resolved))
			}
		}
	}
	return nil
}

func firingHash(fs []State) string {
	if len(fs) == 0 {
		return "none"
	}
	h := sha256.New()
	for _, s := range fs {
		fmt.Fprintf(h, "%s@%d;", s.Fingerprint, s.FiredAt.UnixMicro())
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func idsOf(ss []State) string {
	ids := make([]string, len(ss))
	for i, s := range ss {
		ids[i] = strconv.FormatInt(s.ID, 10)
	}
	return "resolved:" + fmt.Sprint(ids)
}

// build renders the notification of a group to w.
func (m *Manager) build(w Webhook, r Rule, gk string, firing, resolved []State, now time.Time) (Delivery, error) {
	status := "firing"
	if len(firing) == 0 {
		status = "resolved"
	}
	body, err := Render(w.Format, Notification{
		Receiver: w.Name, Status: status, GroupKey: gk, GroupLabels: map[string]string{"alertname": r.Name},
		Alerts: append(slices.Clone(firing), resolved...), ExternalURL: m.cfg.ExternalURL,
	})
	if err != nil {
		return Delivery{}, err
	}
	return Delivery{WebhookID: w.ID, Webhook: w.Name, GroupKey: gk, Status: status, Payload: body, NextAt: now}, nil
}

// Deliver sends the deliveries that are due, once each; it returns how
// many it attempted.
func (m *Manager) Deliver(ctx context.Context) (int, error) {
	n := 0
	for {
		now := m.now()
		due, hooks, err := m.store.Due(ctx, now, 20)
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, d := range due {
			a := m.attempt(ctx, hooks[d.WebhookID], d)
			if err := m.store.Attempted(ctx, d.ID, a); err != nil {
				return n, err
			}
			n++
		}
		if len(due) < 20 {
			return n, nil
		}
	}
}

// attempt sends d once and decides what comes next: delivered on 2xx;
// otherwise retried after an exponential back-off (1s, 2s, 4s … up to
// MaxBackoff, ±20% jitter) until MaxAge has passed since it was queued.
func (m *Manager) attempt(ctx context.Context, w Webhook, d Delivery) Attempt {
	start := m.now()
	code, err := m.sender.Send(ctx, w, d)
	a := Attempt{Status: code, Delivered: err == nil}
	outcome := "delivered"
	if err != nil {
		a.Err = err.Error()
		wait := backoff(d.Attempts+1, m.cfg.MaxBackoff, m.sender.jitter())
		a.NextAt = m.now().Add(wait)
		if a.NextAt.Sub(d.CreatedAt) > m.cfg.MaxAge {
			a.Expired = true
			outcome = "expired"
		} else {
			outcome = "retry"
		}
		m.log.Warn("alert delivery failed", "webhook", w.Name, "delivery", d.ID, "attempt", d.Attempts+1, "status", code, "err", err, "next", outcome)
	}
	if m.m != nil {
		m.m.deliveries.WithLabelValues(w.Name, outcome).Inc()
		m.m.latency.Observe(m.now().Sub(start).Seconds())
	}
	return a
}

func backoff(attempt int, ceiling time.Duration, jitter float64) time.Duration {
	d := time.Second << min(attempt-1, 20)
	return time.Duration(float64(min(d, ceiling)) * jitter)
}

// Test queues a test notification to webhook idOrName and attempts it
// at once, from this replica (an operator is waiting for the answer); a
// failed attempt is retried by the leader like any delivery.
func (m *Manager) Test(ctx context.Context, idOrName, actor string) (Delivery, error) {
	w, err := m.store.Webhook(ctx, idOrName)
	if err != nil {
		return Delivery{}, err
	}
	now := m.now()
	labels := map[string]string{"alertname": "TriadTest", "kind": "test", "severity": "info"}
	st := State{Fingerprint: Fingerprint(labels), Rule: "TriadTest", Labels: labels,
		Annotations: map[string]string{"summary": "test notification sent by " + actor}, ActiveSince: now, FiredAt: &now}
	body, err := Render(w.Format, Notification{Receiver: w.Name, Status: "firing", GroupKey: groupKey("TriadTest"),
		GroupLabels: map[string]string{"alertname": "TriadTest"}, Alerts: []State{st}, ExternalURL: m.cfg.ExternalURL})
	if err != nil {
		return Delivery{}, err
	}
	d, _, err := m.store.Enqueue(ctx, Delivery{WebhookID: w.ID, Webhook: w.Name, GroupKey: groupKey("TriadTest"), Status: "firing",
		FiringHash: "test", DedupeKey: fmt.Sprintf("test|%d|%d", w.ID, now.UnixNano()), Payload: body, Test: true, NextAt: now.Add(m.cfg.Timeout * 2)})
	if err != nil {
		return Delivery{}, err
	}
	a := m.attempt(ctx, w, d)
	if err := m.store.Attempted(ctx, d.ID, a); err != nil {
		return Delivery{}, err
	}
	d.Attempts++
	if a.Status != 0 {
		d.LastStatus = &a.Status
	}
	switch {
	case a.Delivered:
		d.State, d.DeliveredAt = "delivered", &now
	case a.Expired:
		d.State = "expired"
	default:
		d.State, d.NextAt = "pending", a.NextAt
	}
	if a.Err != "" {
		d.LastError = &a.Err
	}
	return d, nil
}

var webhookName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// CreateWebhook validates w (name, format, URL and the addresses it
// resolves to, rule names), generates its secret when none is given,
// and stores it. The secret is in the answer only.
func (m *Manager) CreateWebhook(ctx context.Context, w Webhook) (Webhook, error) {
	if !webhookName.MatchString(w.Name) {
		return Webhook{}, fmt.Errorf("%w: name must be 1-64 letters, digits, '.', '_' or '-', got %q", ErrInvalid, w.Name)
	}
	if w.Format == "" {
		w.Format = FormatAlertmanager
	}
	if w.Format != FormatAlertmanager && w.Format != FormatJSON {
		return Webhook{}, fmt.Errorf("%w: format must be alertmanager or json, got %q", ErrInvalid, w.Format)
	}
	for _, r := range w.Rules {
		if _, ok := m.cfg.Rule(r); !ok {
			return Webhook{}, fmt.Errorf("%w: no rule named %q (GET /api/v1/alerts lists them)", ErrInvalid, r)
		}
	}
	if err := m.sender.guard.CheckURL(ctx, w.URL); err != nil {
		return Webhook{}, err
	}
	if w.Secret == "" {
		w.Secret = NewSecret()
	} else if len(w.Secret) < 16 {
		return Webhook{}, fmt.Errorf("%w: secret must be at least 16 characters (leave it out to have one generated)", ErrInvalid)
	}
	return m.store.CreateWebhook(ctx, w)
}

// RotateWebhook gives a webhook a new generated secret; the one it had
// keeps signing beside it (two signatures per delivery) for grace, so
// receivers can switch without refusing a delivery.
func (m *Manager) RotateWebhook(ctx context.Context, idOrName string, grace time.Duration) (Webhook, error) {
	if grace < 0 || grace > 30*24*time.Hour {
		return Webhook{}, fmt.Errorf("%w: grace must be 0 to 720h, got %s", ErrInvalid, grace)
	}
	return m.store.RotateSecret(ctx, idOrName, NewSecret(), time.Now().Add(grace))
}
