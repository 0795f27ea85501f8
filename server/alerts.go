package server

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair/alert"
)

// Alerter is what the alert routes need: the rules, the store, webhook
// creation with its checks, and test-fire.
type Alerter interface {
	Config() alert.Config
	Store() alert.Store
	CreateWebhook(ctx context.Context, w alert.Webhook) (alert.Webhook, error)
	RotateWebhook(ctx context.Context, idOrName string, grace time.Duration) (alert.Webhook, error)
	Test(ctx context.Context, idOrName, actor string) (alert.Delivery, error)
	CreateSilence(ctx context.Context, si alert.Silence) (alert.Silence, error)
	ExpireSilence(ctx context.Context, id int64, by string) (alert.Silence, error)
	Silences(ctx context.Context) ([]alert.Silence, error)
	Preview(ctx context.Context, matchers []alert.Matcher) ([]alert.State, error)
	SilencedAlerts(ctx context.Context, alerts []alert.State) error
}

func (s *Server) alerter() (Alerter, error) {
	if s.alerts == nil {
		return nil, fmt.Errorf("%w: alerting is not configured", ErrUnavailable)
	}
	return s.alerts, nil
}

type alertsResponse struct {
	Rules  []ruleView    `json:"rules"`
	Alerts []alert.State `json:"alerts"`
}

// ruleView is a configured rule as the API shows it (durations as Go
// duration strings, "" when unset).
type ruleView struct {
	Name      string  `json:"name"`
	Kind      string  `json:"kind"`
	Threshold float64 `json:"threshold"`
	Window    string  `json:"window,omitempty"`
	For       string  `json:"for,omitempty"`
	Severity  string  `json:"severity"`
	Runbook   string  `json:"runbook_url,omitempty"`
}

func (s *Server) listAlerts(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	states, err := a.Store().Alerts(c.Request.Context(), 200)
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	if states == nil {
		states = []alert.State{}
	}
	if err := a.SilencedAlerts(c.Request.Context(), states); err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	// Filters: state (firing, pending, resolved) and rule.
	if st, rule := c.Query("state"), c.Query("rule"); st != "" || rule != "" {
		if st != "" && st != "firing" && st != "pending" && st != "resolved" {
			return nil, fmt.Errorf("%w: state must be firing, pending or resolved, got %q", ErrBadRequest, st)
		}
		kept := states[:0]
		for _, x := range states {
			if (st == "" || x.Status() == st) && (rule == "" || x.Rule == rule) {
				kept = append(kept, x)
			}
		}
		states = kept
	}
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	if format != "" {
		return pagedExport(format, "triad-alerts", alertColumns, alertCells, onePage(states, nil)), nil
	}
	rules := []ruleView{}
	for _, r := range a.Config().Rules {
		v := ruleView{Name: r.Name, Kind: r.Kind, Threshold: r.Threshold, Severity: r.Severity, Runbook: r.RunbookURL}
		if r.Window > 0 {
			v.Window = r.Window.String()
		}
		if r.For > 0 {
			v.For = r.For.String()
		}
		if v.Severity == "" {
			v.Severity = "warning"
		}
		rules = append(rules, v)
	}
	return alertsResponse{Rules: rules, Alerts: states}, nil
}

func (s *Server) listWebhooks(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	hooks, err := a.Store().Webhooks(c.Request.Context())
	if hooks == nil {
		hooks = []alert.Webhook{}
	}
	return hooks, unavailable("alert store (postgres)", err)
}

type createWebhookRequest struct {
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Format string   `json:"format"`
	Secret string   `json:"secret"`
	Rules  []string `json:"rules"`
	// SendResolved defaults to true.
	SendResolved *bool `json:"send_resolved"`
}

type createWebhookResponse struct {
	alert.Webhook
	// Secret is the HMAC key receivers verify X-Triad-Signature with;
	// StandardSecret the same key as Standard Webhooks libraries take it
	// (webhook-signature). Shown once.
	Secret         string `json:"secret"`
	StandardSecret string `json:"standard_webhooks_secret"`
}

func secretResponse(w alert.Webhook) createWebhookResponse {
	return createWebhookResponse{Webhook: w, Secret: w.Secret, StandardSecret: alert.StandardSecret(w.Secret)}
}

func (s *Server) createWebhook(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	var req createWebhookRequest
	if err := decodeJSON(c, &req, `{"name", "url", "format": "alertmanager"|"json", "secret", "rules": [...], "send_resolved"}`); err != nil {
		return nil, err
	}
	w := alert.Webhook{Name: req.Name, URL: req.URL, Format: req.Format, Secret: req.Secret, Rules: req.Rules,
		SendResolved: req.SendResolved == nil || *req.SendResolved, CreatedBy: principal(c).Name}
	w, err = a.CreateWebhook(c.Request.Context(), w)
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	s.log.Info("webhook created", "webhook", w.Name, "format", w.Format, "by", principal(c).Name)
	created(c)
	return secretResponse(w), nil
}

// rotateWebhook gives a webhook a new secret, shown once; the old one
// keeps signing beside it for ?grace (default 24h, at most 720h).
func (s *Server) rotateWebhook(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	grace := 24 * time.Hour
	if v := c.Query("grace"); v != "" {
		if grace, err = time.ParseDuration(v); err != nil {
			return nil, fmt.Errorf("%w: grace is a duration such as 24h, got %q", ErrBadRequest, v)
		}
	}
	w, err := a.RotateWebhook(c.Request.Context(), c.Param("id"), grace)
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	s.log.Info("webhook secret rotated", "webhook", w.Name, "previous_until", w.PreviousUntil, "by", principal(c).Name)
	return secretResponse(w), nil
}

func (s *Server) deleteWebhook(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	w, err := a.Store().DeleteWebhook(c.Request.Context(), c.Param("id"))
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	s.log.Info("webhook deleted", "webhook", w.Name, "by", principal(c).Name)
	return w, nil
}

func (s *Server) testWebhook(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	d, err := a.Test(context.WithoutCancel(c.Request.Context()), c.Param("id"), principal(c).Name)
	return d, unavailable("alert store (postgres)", err)
}

func (s *Server) listDeliveries(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	f := alert.DeliveryFilter{State: c.Query("state")}
	if f.State != "" && f.State != "pending" && f.State != "delivered" && f.State != "expired" {
		return nil, fmt.Errorf("%w: state must be pending, delivered or expired, got %q", ErrBadRequest, f.State)
	}
	for key, dst := range map[string]*int64{"webhook": &f.WebhookID, "before": &f.Before} {
		if v := c.Query(key); v != "" {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil || *dst <= 0 {
				return nil, fmt.Errorf("%w: %s must be a positive id, got %q", ErrBadRequest, key, v)
			}
		}
	}
	if v := c.Query("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil || f.Limit <= 0 || f.Limit > 1000 {
			return nil, fmt.Errorf("%w: limit must be 1..1000, got %q", ErrBadRequest, v)
		}
	}
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	if format != "" {
		ctx := c.Request.Context()
		f.Limit = 1000
		return pagedExport(format, "triad-deliveries", deliveryColumns, deliveryCells, keyset(f.Limit, func(before int64) ([]alert.Delivery, error) {
			if before > 0 { // the first page starts where the caller's before says
				f.Before = before
			}
			ds, err := a.Store().Deliveries(ctx, f)
			return ds, unavailable("alert store (postgres)", err)
		}, func(d alert.Delivery) int64 { return d.ID })), nil
	}
	ds, err := a.Store().Deliveries(c.Request.Context(), f)
	if ds == nil {
		ds = []alert.Delivery{}
	}
	return ds, unavailable("alert store (postgres)", err)
}

var deliveryColumns = []string{"id", "webhook_id", "webhook", "group_key", "status", "state", "attempts", "last_status", "last_error", "test", "created_at", "delivered_at"}

func deliveryCells(d alert.Delivery) []string {
	status, errText := "", ""
	if d.LastStatus != nil {
		status = strconv.Itoa(*d.LastStatus)
	}
	if d.LastError != nil {
		errText = *d.LastError
	}
	return []string{itoa(d.ID), itoa(d.WebhookID), d.Webhook, d.GroupKey, d.Status, d.State, strconv.Itoa(d.Attempts), status, errText,
		strconv.FormatBool(d.Test), timeCell(&d.CreatedAt), timeCell(d.DeliveredAt)}
}

var alertColumns = []string{"id", "rule", "status", "labels", "summary", "value", "active_since", "fired_at", "resolved_at", "silenced_by", "runbook_url"}

func alertCells(a alert.State) []string {
	labels := make([]string, 0, len(a.Labels))
	for k, v := range a.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	silenced := make([]string, len(a.SilencedBy))
	for i, id := range a.SilencedBy {
		silenced[i] = itoa(id)
	}
	return []string{itoa(a.ID), a.Rule, a.Status(), strings.Join(labels, " "), a.Annotations["summary"], strconv.FormatFloat(a.Value, 'g', -1, 64),
		timeCell(&a.ActiveSince), timeCell(a.FiredAt), timeCell(a.ResolvedAt), strings.Join(silenced, " "), a.Annotations["runbook_url"]}
}

// silenceView is a silence with its state now.
type silenceView struct {
	alert.Silence
	State string `json:"state"` // pending, active or expired
}

// listSilences lists the silences not expired and those expired within
// alert.retention, newest first.
func (s *Server) listSilences(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	ss, err := a.Silences(c.Request.Context())
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	now := time.Now()
	out := make([]silenceView, len(ss))
	for i, si := range ss {
		out[i] = silenceView{Silence: si, State: si.State(now)}
	}
	return out, nil
}

type silenceRequest struct {
	Matchers []alert.Matcher `json:"matchers"`
	Comment  string          `json:"comment"`
	StartsAt time.Time       `json:"starts_at"`
	EndsAt   time.Time       `json:"ends_at"`
	// Duration, when EndsAt is not given: "2h".
	Duration string `json:"duration"`
}

const silenceShape = `{"matchers": [{"name": "alertname", "value": "DriftRateHigh"}, {"name": "entity", "value": "order"}], "comment": "why", "duration": "2h"}`

// postSilence creates a silence: matchers on alert labels (alertname,
// entity, store, kind, severity, …; regex true for a regular expression),
// a comment, and an end (ends_at, or duration from the start).
func (s *Server) postSilence(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	var req silenceRequest
	if err := decodeJSON(c, &req, silenceShape); err != nil {
		return nil, err
	}
	si := alert.Silence{Matchers: req.Matchers, Comment: req.Comment, CreatedBy: principal(c).Name, StartsAt: req.StartsAt, EndsAt: req.EndsAt}
	if si.StartsAt.IsZero() {
		si.StartsAt = time.Now()
	}
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 || !req.EndsAt.IsZero() {
			return nil, fmt.Errorf("%w: duration is a positive Go duration (2h, 30m), instead of ends_at: %s", ErrBadRequest, silenceShape)
		}
		si.EndsAt = si.StartsAt.Add(d)
	}
	out, err := a.CreateSilence(c.Request.Context(), si)
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	s.log.Info("silence created", "silence", out.ID, "matchers", fmt.Sprint(out.Matchers), "ends", out.EndsAt, "by", out.CreatedBy)
	c.Set(createdKey, true)
	return silenceView{Silence: out, State: out.State(time.Now())}, nil
}

// previewSilence lists the active alerts a silence of these matchers
// would mute, before it is made.
func (s *Server) previewSilence(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	var req silenceRequest
	if err := decodeJSON(c, &req, silenceShape); err != nil {
		return nil, err
	}
	states, err := a.Preview(c.Request.Context(), req.Matchers)
	return states, unavailable("alert store (postgres)", err)
}

// expireSilence ends a silence now; it stays listed, as expired.
func (s *Server) expireSilence(c *gin.Context) (any, error) {
	a, err := s.alerter()
	if err != nil {
		return nil, err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: a silence ID is an integer, got %q", ErrBadRequest, c.Param("id"))
	}
	out, err := a.ExpireSilence(c.Request.Context(), id, principal(c).Name)
	if err != nil {
		return nil, unavailable("alert store (postgres)", err)
	}
	s.log.Info("silence expired early", "silence", id, "by", principal(c).Name)
	return silenceView{Silence: out, State: out.State(time.Now())}, nil
}
