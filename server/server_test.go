package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/server/auth"
)

func TestMain(m *testing.M) {
	// otter runs one clean-up goroutine per cache with expiry; it ends when
	// the cache is garbage-collected, not when a test ends.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/maypok86/otter/v2.periodicCleanUp[...]"))
}

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("%w: x", ErrBadRequest), 400},
		{auth.ErrInvalidInput, 400},
		{auth.ErrNoToken, 401},
		{auth.ErrInvalidToken, 401},
		{fmt.Errorf("%w: needs admin", ErrForbidden), 403},
		{auth.ErrNotFound, 404},
		{auth.ErrNameTaken, 409},
		{&http.MaxBytesError{Limit: 1}, 413},
		{ErrUnavailable, 503},
		{errors.New("boom"), 500},
		// Each package's own conditions, wrapped as a store-backed part
		// reports them: they keep their status.
		{unavailable("sweeps (postgres)", fmt.Errorf("get sweep 7: %w", sweep.ErrNoSweep)), 404},
		{unavailable("sweeps (postgres)", sweep.ErrState), 409},
		{unavailable("sweeps (postgres)", sweep.ErrBadOption), 400},
		{unavailable("alert store (postgres)", alert.ErrNameUsed), 409},
		{unavailable("alert store (postgres)", alert.ErrNotFound), 404},
		{unavailable("", repair.ErrBadKey), 400},
		{unavailable("", &http.MaxBytesError{Limit: 1}), 413},
		{unavailable("repair log (postgres)", errors.New("connection refused")), 503},
		{unavailable("sweeps (postgres)", context.DeadlineExceeded), 503},
	} {
		code, _ := statusOf(tc.err)
		require.Equal(t, tc.code, code, tc.err.Error())
	}
	require.NoError(t, unavailable("x", nil))
	require.EqualError(t, unavailable("sweeps (postgres)", errors.New("connection refused")),
		"unavailable: sweeps (postgres): connection refused")
	require.EqualError(t, unavailable("", sweep.ErrNoSweep), "no such sweep", "a mapped condition is not rewrapped")
	// A server-side condition is named: which part ran out of time.
	require.EqualError(t, unavailable("sweeps (postgres)", context.DeadlineExceeded), "unavailable: sweeps (postgres): context deadline exceeded")
}

// TestReadinessLifecycle runs the probe loop against scripted dependencies:
// 503 before the first round, 200 when all are up, 503 naming the one that
// fails, 200 again when it recovers, 503 "stopping" during shutdown.
func TestReadinessLifecycle(t *testing.T) {
	var redisUp atomic.Bool
	redisUp.Store(true)
	var esHealth atomic.Value
	esHealth.Store("green")
	deps := []Dependency{
		{Name: "postgres", Check: func(context.Context) (Probed, error) { return Probed{Version: "15.0"}, nil }},
		{Name: "redis", Check: func(context.Context) (Probed, error) {
			if redisUp.Load() {
				return Probed{Version: "7.0"}, nil
			}
			return Probed{}, errors.New("connection refused")
		}},
		{Name: "elasticsearch", Check: func(context.Context) (Probed, error) {
			switch h := esHealth.Load().(string); h {
			case "red":
				return Probed{Health: h, Note: "1 primary unassigned"}, errors.New("cluster health is red: 1 primary unassigned")
			case "yellow":
				return Probed{Version: "8.19.4", Health: h, Note: "2 shards unassigned"}, nil
			default:
				return Probed{Version: "8.19.4", Health: h}, nil
			}
		}},
	}
	cfg := testConfig()
	cfg.ProbeInterval, cfg.ProbeTimeout = 100*time.Millisecond, 100*time.Millisecond
	reg := prometheus.NewRegistry()
	s := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Dependencies: deps, Auth: auth.NewAuthenticator(nil, "")})
	h := s.Handler()
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get()
	require.Equal(t, 503, code)
	require.Contains(t, body, `"status":"starting"`)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.RunProbes(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	wait := func(want int, contains string) {
		t.Helper()
		require.Eventually(t, func() bool {
			code, body := get()
			return code == want && strings.Contains(body, contains)
		}, 5*time.Second, 20*time.Millisecond)
	}
	wait(200, `"status":"ready"`)
	redisUp.Store(false)
	wait(503, `"redis":{"status":"down","version":"7.0"`)
	_, body = get()
	require.Contains(t, body, "connection refused")
	redisUp.Store(true)
	wait(200, `"status":"ready"`)

	// Yellow is ready but degraded, with the reason; red is down.
	esHealth.Store("yellow")
	wait(200, `"health":"yellow","health_note":"2 shards unassigned"`)
	require.Equal(t, "yellow", s.DependenciesDegraded()["elasticsearch"].Health)
	require.Equal(t, 1.0, testutil.ToFloat64(s.ready.health.WithLabelValues("elasticsearch", "yellow")))
	require.Equal(t, 0.0, testutil.ToFloat64(s.ready.health.WithLabelValues("elasticsearch", "green")))
	esHealth.Store("red")
	wait(503, `"elasticsearch":{"status":"down"`)
	_, body = get()
	require.Contains(t, body, `"health":"red"`)
	require.Contains(t, s.DependenciesDown(), "elasticsearch")
	require.Empty(t, s.DependenciesDegraded())
	esHealth.Store("green")
	wait(200, `"health":"green"`)
	require.Empty(t, s.DependenciesDegraded())

	require.NoError(t, s.Shutdown(t.Context()))
	code, body = get()
	require.Equal(t, 503, code)
	require.Contains(t, body, `"status":"stopping"`)
}

func TestAPINeedsToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(nil, "bootstrap-token-0123456789")})
	for _, rt := range s.Routes() {
		if rt.Role == auth.RoleNone {
			continue // login
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(rt.Method, strings.ReplaceAll(rt.Path, ":id", "1"), nil))
		require.Equal(t, 401, rec.Code, "%s %s", rt.Method, rt.Path)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer bootstrap-token-0123456789")
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), `"role":"admin"`)
}

// testConfig is the defaults plus httptest's Host (example.com).
func testConfig() Config {
	c := DefaultConfig()
	c.AllowedHosts = []string{"example.com"}
	return c
}

// TestHostIsChecked: a request naming a host triad is not configured for
// (a DNS-rebinding page's own name) gets 421, health and metrics
// included; localhost names and configured ones pass.
func TestHostIsChecked(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.AllowedHosts = []string{"triad.internal.example"}
	s := New(Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(nil, "bootstrap-token-0123456789")})
	for host, want := range map[string]int{
		"attacker.example":            http.StatusMisdirectedRequest,
		"attacker.example:8383":       http.StatusMisdirectedRequest,
		"127.0.0.1:8383":              http.StatusOK,
		"localhost":                   http.StatusOK,
		"[::1]:8383":                  http.StatusOK,
		"TRIAD.internal.example.":     http.StatusOK,
		"triad.internal.example:443":  http.StatusOK,
		"triad.internal.example.evil": http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/-/healthy", "/metrics"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.Host = host
			s.Handler().ServeHTTP(rec, req)
			require.Equal(t, want, rec.Code, "%s %s", host, path)
		}
	}
}
