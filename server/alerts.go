package server

import (
	"context"
	"fmt"
	"strconv"
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
	rules := []ruleView{}
	for _, r := range a.Config().Rules {
		v := ruleView{Name: r.Name, Kind: r.Kind, Threshold: r.Threshold, Severity: r.Severity}
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
	ds, err := a.Store().Deliveries(c.Request.Context(), f)
	if ds == nil {
		ds = []alert.Delivery{}
	}
	return ds, unavailable("alert store (postgres)", err)
}
