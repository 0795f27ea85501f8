package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/internal/secret"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/server/auth"
)

const adminToken = "test-admin-token-0123456789"

// start runs the whole app in-process on a free port against cfg.
func start(t *testing.T, cfg config.Config) *app.App {
	t.Helper()
	cfg.Auth.AdminToken = secret.Value(adminToken)
	cfg.Server.ProbeInterval = 200 * time.Millisecond
	cfg.Server.ProbeTimeout = 500 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a, err := app.Start(t.Context(), app.Options{Config: cfg, Logger: stacktest.Logger(t), Listener: ln, Migrate: true, Version: "test"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		require.NoError(t, a.Stop(ctx))
	})
	return a
}

type resp struct {
	code int
	body map[string]any
	raw  string
	hdr  http.Header
}

func call(t *testing.T, a *app.App, method, path, token string, body any) resp {
	t.Helper()
	var rd io.Reader
	if raw, ok := body.([]byte); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+a.Addr+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	r := resp{code: res.StatusCode, raw: string(raw), hdr: res.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// startMigrated starts the app, waits until it is ready and its
// migrations (run in the background at start) are applied.
func startMigrated(t *testing.T, cfg config.Config) *app.App {
	t.Helper()
	a := start(t, cfg)
	waitReady(t, a, http.StatusOK, 30*time.Second)
	require.Eventually(t, func() bool {
		return call(t, a, http.MethodGet, "/api/v1/webhooks", adminToken, nil).code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "migrations not applied")
	return a
}

// waitReady polls /-/ready until it answers want, failing after deadline.
func waitReady(t *testing.T, a *app.App, want int, deadline time.Duration) (resp, time.Duration) {
	t.Helper()
	began := time.Now()
	var last resp
	for time.Since(began) < deadline {
		last = call(t, a, http.MethodGet, "/-/ready", "", nil)
		if last.code == want {
			return last, time.Since(began)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/-/ready did not answer %d within %s; last: %d %s", want, deadline, last.code, last.raw)
	return last, 0
}

func TestServeAgainstRealStores(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := start(t, configtest.For(t, ns))

	rep, took := waitReady(t, a, http.StatusOK, 30*time.Second)
	t.Logf("ready after %s", took)
	deps := rep.body["dependencies"].(map[string]any)
	for _, name := range []string{"postgres", "redis", "elasticsearch", "etcd"} {
		d := deps[name].(map[string]any)
		require.Equal(t, "up", d["status"], name)
		require.NotEmpty(t, d["version"], name)
		require.Contains(t, d, "latency_ms", name)
	}

	require.Equal(t, http.StatusOK, call(t, a, http.MethodGet, "/-/healthy", "", nil).code)
	m := call(t, a, http.MethodGet, "/metrics", "", nil)
	require.Equal(t, http.StatusOK, m.code)
	require.Contains(t, m.raw, `triad_dependency_up{dependency="etcd"} 1`)
	require.Contains(t, m.raw, "triad_http_requests_total")

	doc := call(t, a, http.MethodGet, "/openapi.yaml", "", nil)
	require.Equal(t, http.StatusOK, doc.code)
	require.Contains(t, doc.raw, "openapi: 3")

	dash := call(t, a, http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, dash.code)
	require.Contains(t, dash.raw, `<script src="/ui/app.js">`)
	require.Contains(t, dash.hdr.Get("Content-Security-Policy"), "default-src 'self'")
	js := call(t, a, http.MethodGet, "/ui/app.js", "", nil)
	require.Equal(t, http.StatusOK, js.code)
	require.Contains(t, js.raw, "/-/ready")

	// Migrations run in the background at start; wait for the token table.
	require.Eventually(t, func() bool {
		return call(t, a, http.MethodGet, "/api/v1/tokens", adminToken, nil).code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond)

	t.Run("no token is 401", func(t *testing.T) {
		r := call(t, a, http.MethodGet, "/api/v1/whoami", "", nil)
		require.Equal(t, http.StatusUnauthorized, r.code)
		require.Equal(t, "error", r.body["status"])
		require.Contains(t, r.hdr.Get("WWW-Authenticate"), "Bearer")
		require.Equal(t, http.StatusUnauthorized, call(t, a, http.MethodGet, "/api/v1/whoami", "triad_wrong", nil).code)
		require.Equal(t, http.StatusUnauthorized, call(t, a, http.MethodGet, "/api/v1/no-such-route", "", nil).code)
	})

	var viewer, operator, viewerID string
	t.Run("admin creates tokens", func(t *testing.T) {
		r := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "ci-viewer", "role": "viewer"})
		require.Equal(t, http.StatusCreated, r.code, r.raw)
		viewer = r.body["data"].(map[string]any)["secret"].(string)
		viewerID = fmt.Sprint(r.body["data"].(map[string]any)["id"])
		require.True(t, strings.HasPrefix(viewer, auth.TokenPrefix))
		r = call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "ci-operator", "role": "operator", "ttl": "1h"})
		require.Equal(t, http.StatusCreated, r.code, r.raw)
		operator = r.body["data"].(map[string]any)["secret"].(string)

		r = call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "ci-viewer", "role": "viewer"})
		require.Equal(t, http.StatusConflict, r.code, "name taken")
		r = call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "x", "role": "root"})
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Contains(t, r.body["error"].(map[string]any)["message"], "want viewer, operator or admin")

		var stored int
		require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM api_tokens WHERE hash = $1`, auth.Hash(viewer)).Scan(&stored))
		require.Equal(t, 1, stored, "the hash is stored")
		require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM api_tokens WHERE position($1 in encode(hash, 'escape')) > 0 OR prefix = $1`, viewer).Scan(&stored))
		require.Zero(t, stored, "the secret itself is not stored")
	})

	t.Run("roles", func(t *testing.T) {
		r := call(t, a, http.MethodGet, "/api/v1/whoami", viewer, nil)
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, "viewer", r.body["data"].(map[string]any)["role"])
		// Every route above viewer refuses a viewer token with 403.
		for _, rt := range a.Server.Routes() {
			if rt.Role <= auth.RoleViewer {
				continue
			}
			path := strings.ReplaceAll(rt.Path, ":id", "1")
			r := call(t, a, rt.Method, path, viewer, map[string]string{})
			require.Equal(t, http.StatusForbidden, r.code, "%s %s with a viewer token", rt.Method, rt.Path)
			require.Contains(t, r.body["error"].(map[string]any)["message"], "needs the "+rt.Role.String()+" role")
		}
		require.Equal(t, http.StatusForbidden, call(t, a, http.MethodPost, "/api/v1/tokens", operator, map[string]string{"name": "y", "role": "admin"}).code)
	})

	t.Run("revoke", func(t *testing.T) {
		require.Equal(t, http.StatusBadRequest, call(t, a, http.MethodDelete, "/api/v1/tokens/ci-viewer", adminToken, nil).code, "by ID only")
		r := call(t, a, http.MethodDelete, "/api/v1/tokens/"+viewerID, adminToken, nil)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		require.Equal(t, http.StatusUnauthorized, call(t, a, http.MethodGet, "/api/v1/whoami", viewer, nil).code)
		require.Equal(t, http.StatusNotFound, call(t, a, http.MethodDelete, "/api/v1/tokens/"+viewerID, adminToken, nil).code)
		list := call(t, a, http.MethodGet, "/api/v1/tokens", adminToken, nil)
		require.Len(t, list.body["data"], 1, "revoked tokens are hidden by default")
		list = call(t, a, http.MethodGet, "/api/v1/tokens?all=true", adminToken, nil)
		require.Len(t, list.body["data"], 2)
	})

	t.Run("oversized body is 413", func(t *testing.T) {
		big := strings.Repeat("x", int(configtest.For(t, ns).Server.MaxBodyBytes)+1)
		r := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": big, "role": "viewer"})
		require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
	})
}

// TestReadyFollowsADependency stops a private Redis under a running triad:
// /-/ready turns 503 naming redis, and recovers by itself when Redis returns.
func TestReadyFollowsADependency(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	priv := stacktest.StartPrivate(t, "redis")
	cfg := configtest.For(t, ns)
	cfg.Redis.Addr = priv.Endpoints().RedisAddr
	a := start(t, cfg)
	waitReady(t, a, http.StatusOK, 30*time.Second)

	priv.Stop(t)
	r, took := waitReady(t, a, http.StatusServiceUnavailable, 50*time.Second)
	t.Logf("measured: /-/ready turned 503 %s after redis stopped (promise: 5s)", took)
	require.Equal(t, "not_ready", r.body["status"])
	deps := r.body["dependencies"].(map[string]any)
	require.Equal(t, "down", deps["redis"].(map[string]any)["status"])
	require.Contains(t, deps["redis"].(map[string]any)["error"], "connection refused", "the cause, not a bare timeout")
	require.Equal(t, "up", deps["postgres"].(map[string]any)["status"])

	priv.Start(t)
	_, took = waitReady(t, a, http.StatusOK, 50*time.Second)
	t.Logf("measured: /-/ready recovered %s after redis restarted", took)
}
