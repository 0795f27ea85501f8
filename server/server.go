// Package server is triad's HTTP API and dashboard host: gin inside an
// http.Server, health and readiness endpoints, Prometheus metrics, token
// and session authentication with roles, rate limits, bounds on every
// request (bytes, count, time: limits.go), redaction for viewers, and one
// JSON envelope for every /api response, whose status comes from one table
// of errors (api.go).
package server

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzhttp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/web"
)

//go:embed openapi.yaml
var openapiDoc []byte

// Options are what a Server is built from.
type Options struct {
	Config       Config
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Gatherer     prometheus.Gatherer
	Dependencies []Dependency
	Auth         *auth.Authenticator
	Tokens       *auth.Store
	Version      string
	// Profiles takes profile writes (batch, delete); nil answers 503.
	Profiles *ingest.Pipeline
	// Lookup answers profile reads; nil answers 503.
	Lookup ProfileReader
	// Dataset runs dataset switches and rollbacks; nil answers 503.
	Dataset DatasetAdmin
	// Checks checks records by key; nil answers 503.
	Checks Checker
	// RepairLog lists repairs; nil answers 503.
	RepairLog repair.Log
	// Repairer repairs records by key; nil answers 503.
	Repairer Repairer
	// Plans makes and applies reviewed repair plans; nil answers 503.
	Plans Planner
	// Sweeps starts and controls sweeps; nil answers 503.
	Sweeps SweepAdmin
	// Traces answers trace lookups and searches; nil answers 503.
	Traces *Traces
	// Alerts manages webhooks and lists alerts; nil answers 503.
	Alerts Alerter
	// Schedules are the configured sweep schedules (listed only).
	Schedules []sweep.Schedule
	// Components are parts of triad whose state /-/ready reports beside
	// the dependencies (the read path's filter, the dataset follower).
	Components []Component
}

// Route is one registered API route and the least role it needs.
type Route struct {
	Method string
	Path   string
	Role   auth.Role
}

// Server serves the API, the dashboard, health and metrics.
type Server struct {
	cfg       Config
	log       *slog.Logger
	engine    *gin.Engine
	http      *http.Server
	ready     *readiness
	authn     *auth.Authenticator
	profiles  atomic.Pointer[ingest.Pipeline]
	lookup    ProfileReader
	dataset   DatasetAdmin
	checks    Checker
	repairLog repair.Log
	repairer  Repairer
	plans     Planner
	sweeps    SweepAdmin
	traces    *Traces
	alerts    Alerter
	schedules []sweep.Schedule
	tokens    *auth.Store
	version   string
	routes    []Route
	redact    redactor
	rate      *limiters // per principal; nil: no limit
	logins    *limiters // per client address

	budget          *budget
	auditBehind     *semaphore.Weighted
	hosts           map[string]bool
	inflightRefused *prometheus.CounterVec

	gatherer  prometheus.Gatherer
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	observers sync.Map // metricKey → routeObserver; routes and codes are bounded
}

// New builds a Server; it does not listen until Serve.
func New(o Options) *Server {
	gin.SetMode(gin.ReleaseMode)
	f := promauto.With(o.Registerer)
	s := &Server{
		cfg: o.Config, log: o.Logger.With("component", "server"), authn: o.Auth, tokens: o.Tokens, version: o.Version,
		lookup: o.Lookup, dataset: o.Dataset, checks: o.Checks, repairLog: o.RepairLog, repairer: o.Repairer, plans: o.Plans, sweeps: o.Sweeps, traces: o.Traces, alerts: o.Alerts, schedules: o.Schedules,
		ready:  newReadiness(o.Dependencies, o.Components, o.Config.ProbeInterval, o.Config.ProbeTimeout, o.Registerer),
		budget: newBudget(o.Config.MaxInflight, o.Config.MaxInflightBytes), auditBehind: semaphore.NewWeighted(maxAuditBehind),
		hosts: allowedHosts(o.Config), gatherer: o.Gatherer,
		inflightRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_http_inflight_refused_total", Help: "API requests refused with 429 because the in-flight budget (requests or body bytes) was spent.",
		}, []string{"budget"}),
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "triad_http_requests_total", Help: "HTTP requests by method, route and status code.",
		}, []string{"method", "route", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "triad_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	s.redact = newRedactor(o.Config.RedactProfileFields, o.Config.RedactSpanAttributes)
	if o.Config.RateLimit > 0 {
		s.rate = newLimiters(rate.Limit(o.Config.RateLimit), o.Config.RateBurst)
	}
	s.logins = newLimiters(rate.Limit(float64(max(o.Config.LoginRateLimit, 1))/60), max(o.Config.LoginRateLimit, 1))
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.requestID, s.recover, s.observe, s.checkHost, s.admit)
	// Unknown /api/ paths need a token too, so routes cannot be probed anonymously.
	notFound := s.wrap(func(*gin.Context) (any, error) { return nil, ErrNotFound })
	apiNoRoute := s.authenticate(auth.RoleViewer, true)
	e.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			apiNoRoute(c)
			if !c.IsAborted() {
				notFound(c)
			}
			return
		}
		c.String(http.StatusNotFound, "404 page not found")
	})

	e.GET("/-/healthy", func(c *gin.Context) { c.String(http.StatusOK, "triad is healthy.\n") })
	e.HEAD("/-/healthy", func(c *gin.Context) { c.Status(http.StatusOK) })
	e.GET("/-/ready", s.readyHandler)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{Registry: o.Registerer})))
	e.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openapiDoc) })
	web.Mount(e)

	api := e.Group("/api/v1")
	s.handle(api, http.MethodGet, "/whoami", auth.RoleViewer, s.whoami)
	s.handle(api, http.MethodGet, "/meta", auth.RoleViewer, s.getMeta)
	s.handle(api, http.MethodPost, "/session", auth.RoleNone, s.login)
	s.handle(api, http.MethodGet, "/session", auth.RoleViewer, s.session)
	s.handle(api, http.MethodDelete, "/session", auth.RoleViewer, s.logout)
	s.handle(api, http.MethodGet, "/audit", auth.RoleAdmin, s.listAudit)
	s.handle(api, http.MethodGet, "/tokens", auth.RoleAdmin, s.listTokens)
	s.handle(api, http.MethodPost, "/tokens", auth.RoleAdmin, s.createToken)
	s.handle(api, http.MethodDelete, "/tokens/:id", auth.RoleAdmin, s.revokeToken)
	// The profile reads are the serving path (tens of thousands a second
	// from one service's token): not held to the per-principal limit.
	s.serving(api, http.MethodGet, "/profiles/:id", s.getProfile)
	s.serving(api, http.MethodPost, "/profiles/lookup", s.lookupProfiles)
	s.handle(api, http.MethodPost, "/profiles/batch", auth.RoleOperator, s.profileBatch)
	s.handle(api, http.MethodDelete, "/profiles/:id", auth.RoleOperator, s.deleteProfile)
	s.handle(api, http.MethodPost, "/checks", auth.RoleViewer, s.postChecks)
	s.handle(api, http.MethodGet, "/checks/:entity/:id", auth.RoleViewer, s.getCheck)
	s.handle(api, http.MethodGet, "/repairs", auth.RoleViewer, s.listRepairs)
	s.handle(api, http.MethodPost, "/repairs", auth.RoleOperator, s.postRepairs)
	s.handle(api, http.MethodGet, "/repairs/runs", auth.RoleViewer, s.listRepairRuns)
	s.handle(api, http.MethodGet, "/repairs/stats", auth.RoleViewer, s.repairStats)
	s.handle(api, http.MethodGet, "/stats/consistent-after", auth.RoleViewer, s.getConsistentAfter)
	s.handle(api, http.MethodGet, "/plans", auth.RoleViewer, s.listPlans)
	s.handle(api, http.MethodPost, "/plans", auth.RoleOperator, s.postPlan)
	s.handle(api, http.MethodGet, "/plans/:id", auth.RoleViewer, s.getPlan)
	s.handle(api, http.MethodGet, "/plans/:id/entries", auth.RoleViewer, s.planEntries)
	s.handle(api, http.MethodPost, "/plans/:id/apply", auth.RoleOperator, s.applyPlan)
	s.handle(api, http.MethodGet, "/sweeps", auth.RoleViewer, s.listSweeps)
	s.handle(api, http.MethodPost, "/sweeps", auth.RoleOperator, s.startSweep)
	s.handle(api, http.MethodGet, "/sweeps/schedules", auth.RoleViewer, s.listSchedules)
	s.handle(api, http.MethodGet, "/sweeps/:id", auth.RoleViewer, s.getSweep)
	s.handle(api, http.MethodPost, "/sweeps/:id/pause", auth.RoleOperator, s.sweepControl(sweep.Paused))
	s.handle(api, http.MethodPost, "/sweeps/:id/resume", auth.RoleOperator, s.sweepControl(sweep.Running))
	s.handle(api, http.MethodPost, "/sweeps/:id/cancel", auth.RoleOperator, s.sweepControl(sweep.Cancelled))
	s.handle(api, http.MethodGet, "/traces", auth.RoleViewer, s.searchTraces)
	s.handle(api, http.MethodGet, "/traces/:id", auth.RoleViewer, s.getTrace)
	s.handle(api, http.MethodGet, "/traces/:id/spans/:span", auth.RoleViewer, s.getSpan)
	s.handle(api, http.MethodGet, "/traces/:id/compare/:other", auth.RoleViewer, s.compareTraces)
	s.handle(api, http.MethodGet, "/traces/:id/records", auth.RoleViewer, s.traceRecords)
	s.handle(api, http.MethodGet, "/services", auth.RoleViewer, s.listServices)
	s.handle(api, http.MethodGet, "/services/graph", auth.RoleViewer, s.serviceGraph)
	s.handle(api, http.MethodGet, "/services/:service/operations", auth.RoleViewer, s.listOperations)
	s.handle(api, http.MethodGet, "/alerts", auth.RoleViewer, s.listAlerts)
	s.handle(api, http.MethodGet, "/alerts/deliveries", auth.RoleViewer, s.listDeliveries)
	s.handle(api, http.MethodGet, "/silences", auth.RoleViewer, s.listSilences)
	s.handle(api, http.MethodPost, "/silences", auth.RoleOperator, s.postSilence)
	s.handle(api, http.MethodPost, "/silences/preview", auth.RoleViewer, s.previewSilence)
	s.handle(api, http.MethodDelete, "/silences/:id", auth.RoleOperator, s.expireSilence)
	s.handle(api, http.MethodGet, "/webhooks", auth.RoleAdmin, s.listWebhooks)
	s.handle(api, http.MethodPost, "/webhooks", auth.RoleAdmin, s.createWebhook)
	s.handle(api, http.MethodDelete, "/webhooks/:id", auth.RoleAdmin, s.deleteWebhook)
	s.handle(api, http.MethodPost, "/webhooks/:id/test", auth.RoleAdmin, s.testWebhook)
	s.handle(api, http.MethodPost, "/webhooks/:id/rotate", auth.RoleAdmin, s.rotateWebhook)
	s.handle(api, http.MethodGet, "/dataset", auth.RoleViewer, s.getDataset)
	s.handle(api, http.MethodPost, "/dataset/switch", auth.RoleOperator, s.switchDataset)
	s.handle(api, http.MethodPost, "/dataset/rollback", auth.RoleOperator, s.rollbackDataset)
	s.engine = e
	s.profiles.Store(o.Profiles)
	// Answers are gzip when the client asks (a 50k-span trace is ~16 MB of
	// JSON, ~1.5 MB gzipped); gzhttp skips small and already-encoded ones.
	gz, err := gzhttp.NewWrapper(gzhttp.MinSize(1024), gzhttp.ExceptContentTypes([]string{"text/event-stream"}))
	if err != nil {
		panic(err) // fixed options: cannot fail
	}
	s.http = &http.Server{Handler: gz(e), ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: o.Config.ReadHeaderTimeout, ReadTimeout: o.Config.ReadTimeout,
		WriteTimeout: o.Config.WriteTimeout, IdleTimeout: o.Config.IdleTimeout, MaxHeaderBytes: 64 << 10}
	return s
}

// SetProfiles installs the profile pipeline once it is built (serve builds
// it after migrations and the Elasticsearch template are in place).
func (s *Server) SetProfiles(p *ingest.Pipeline) { s.profiles.Store(p) }

// handle registers an API route behind authentication and a least role.
// Mutations are audited (audit runs first so it sees the final answer,
// refusals included); RoleNone routes (login) need no principal.
func (s *Server) handle(g *gin.RouterGroup, method, path string, role auth.Role, h handlerFunc) {
	s.routes = append(s.routes, Route{Method: method, Path: g.BasePath() + path, Role: role})
	var chain []gin.HandlerFunc
	if !safeMethod(method) {
		chain = append(chain, s.audit)
	}
	if role > auth.RoleNone {
		chain = append(chain, s.authenticate(role, true))
	}
	g.Handle(method, path, append(chain, s.wrap(h))...)
}

// serving registers a profile read for viewers, outside the rate limit.
func (s *Server) serving(g *gin.RouterGroup, method, path string, h handlerFunc) {
	s.routes = append(s.routes, Route{Method: method, Path: g.BasePath() + path, Role: auth.RoleViewer})
	g.Handle(method, path, s.authenticate(auth.RoleViewer, false), s.wrap(h))
}

// Routes lists the registered API routes.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Handler is the server's root handler (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// RunProbes probes dependencies until ctx ends.
func (s *Server) RunProbes(ctx context.Context) { s.ready.run(ctx) }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("listening", "addr", ln.Addr().String())
	if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server gracefully:
//  1. /-/ready starts answering 503 "stopping";
//  2. after DrainDelay (load balancers notice), the listener closes;
//  3. in-flight requests drain until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.ready.setStopping()
	if s.cfg.DrainDelay > 0 {
		select {
		case <-time.After(s.cfg.DrainDelay):
		case <-ctx.Done():
		}
	}
	return s.http.Shutdown(ctx)
}

func (s *Server) readyHandler(c *gin.Context) {
	rep, ok := s.ready.report()
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	c.JSON(code, rep)
}

// ---- middleware ----

const (
	requestIDKey = "triad.request_id"
	principalKey = "triad.principal"
)

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// requestID takes a sane X-Request-ID from the client or makes one.
func (s *Server) requestID(c *gin.Context) {
	id := headerValue(c.Request.Header, "X-Request-Id")
	if len(id) == 0 || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	c.Set(requestIDKey, id)
	c.Writer.Header()["X-Request-Id"] = []string{id} // canonical key: no canonicalisation per request
	c.Next()
}

func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "request_id", requestID(c), "path", c.Request.URL.Path, "panic", r)
			s.writeError(c, errors.New("panic"))
		}
	}()
	c.Next()
}

func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	took := time.Since(start)
	s.routeMetrics(c.Request.Method, route, c.Writer.Status()).observe(took)
	if route == "/-/ready" || route == "/-/healthy" || route == "/metrics" {
		return // polled constantly; metrics cover them
	}
	level := slog.LevelInfo
	if quietRoutes[route] && c.Writer.Status() < 500 {
		level = slog.LevelDebug // thousands a second; metrics cover them
	}
	if !s.log.Enabled(c.Request.Context(), level) {
		return // the arguments below would cost allocations on every read
	}
	s.log.Log(c.Request.Context(), level, "request", "request_id", requestID(c), "method", c.Request.Method, "route", route,
		"status", c.Writer.Status(), "duration_ms", took.Milliseconds(), "principal", principal(c).Name)
}

type metricKey struct {
	method, route string
	code          int
}

// routeObserver holds one route's metric children, resolved once: label
// hashing on every request costs more than the rest of a cached read.
type routeObserver struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func (o routeObserver) observe(took time.Duration) {
	o.requests.Inc()
	o.duration.Observe(took.Seconds())
}

func (s *Server) routeMetrics(method, route string, code int) routeObserver {
	k := metricKey{method, route, code}
	if o, ok := s.observers.Load(k); ok {
		return o.(routeObserver)
	}
	o := routeObserver{
		requests: s.requests.WithLabelValues(method, route, strconv.Itoa(code)),
		duration: s.duration.WithLabelValues(method, route),
	}
	s.observers.Store(k, o)
	return o
}

// quietRoutes are logged at debug level unless they fail.
var quietRoutes = map[string]bool{"/api/v1/profiles/:id": true, "/api/v1/profiles/lookup": true}

// principal returns the authenticated caller.
func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(principalKey)
	pp, _ := p.(auth.Principal)
	return pp
}

// headerValue reads a header by its canonical key without canonicalising
// it again (Header.Get does, on every call).
func headerValue(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}
