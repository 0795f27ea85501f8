package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/server/auth"
)

// browser is a client with a cookie jar, as the dashboard's page is.
type browser struct {
	t    *testing.T
	a    *app.App
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, a *app.App) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, a: a, c: &http.Client{Jar: jar}}
}

// do sends a request with the jar's cookies; withCSRF adds the session's
// CSRF header.
func (b *browser) do(method, path string, body any, withCSRF bool) resp {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		require.NoError(b.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, "http://"+b.a.Addr+path, rd)
	require.NoError(b.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if withCSRF {
		req.Header.Set(server.CSRFHeader, b.csrf)
	}
	res, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(b.t, err)
	r := resp{code: res.StatusCode, raw: string(raw), hdr: res.Header}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (b *browser) login(token string) resp {
	b.t.Helper()
	r := b.do(http.MethodPost, "/api/v1/session", map[string]string{"token": token}, false)
	if r.code == http.StatusCreated {
		b.csrf = r.body["data"].(map[string]any)["csrf_token"].(string)
	}
	return r
}

func errMessage(r resp) string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return e["message"].(string)
	}
	return r.raw
}

// TestDashboardSessions: a token opens a session (HttpOnly, SameSite=Strict
// cookie); mutations with the cookie need the CSRF token; roles still
// apply; revoking the token or logging out ends the session; every
// mutation and login attempt is in the audit log; logins and API calls
// are rate limited with 429 and Retry-After.
func TestDashboardSessions(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Server.LoginRateLimit = 30
	cfg.Server.RateLimit, cfg.Server.RateBurst = 40, 40
	a := startMigrated(t, cfg)

	ids := map[string]string{} // token name → ID
	mint := func(name, role string) string {
		r := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": name, "role": role})
		require.Equal(t, http.StatusCreated, r.code, r.raw)
		ids[name] = fmt.Sprint(r.body["data"].(map[string]any)["id"])
		return r.body["data"].(map[string]any)["secret"].(string)
	}
	operator, viewer := mint("ui-operator", "operator"), mint("ui-viewer", "viewer")
	check := map[string]any{"entity": "profile", "ids": []int{1}}

	op := newBrowser(t, a)
	t.Run("login", func(t *testing.T) {
		r := op.login("triad_not-a-token")
		require.Equal(t, http.StatusUnauthorized, r.code)
		// Login CSRF: a form of another site (text/plain, another Origin).
		for _, h := range [][2]string{{"Content-Type", "text/plain"}, {"Origin", "https://evil.example"}} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+a.Addr+"/api/v1/session", strings.NewReader(`{"token":"`+operator+`"}`))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(h[0], h[1])
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			require.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden}, res.StatusCode, h[0])
			require.Empty(t, res.Header.Get("Set-Cookie"), h[0])
		}
		require.Equal(t, http.StatusBadRequest, op.do(http.MethodPost, "/api/v1/session", map[string]string{}, false).code)

		r = op.login(operator)
		require.Equal(t, http.StatusCreated, r.code, r.raw)
		require.NotEmpty(t, op.csrf)
		ck := r.hdr.Get("Set-Cookie")
		require.Contains(t, ck, auth.SessionCookie+"=")
		require.Contains(t, ck, "HttpOnly")
		require.Contains(t, ck, "SameSite=Strict")
		require.NotContains(t, ck, operator, "the cookie is not the token")

		me := op.do(http.MethodGet, "/api/v1/session", nil, false)
		require.Equal(t, http.StatusOK, me.code, me.raw)
		d := me.body["data"].(map[string]any)
		require.Equal(t, "ui-operator", d["name"])
		require.Equal(t, "operator", d["role"])
		require.Equal(t, "session", d["via"])
		require.Equal(t, op.csrf, d["csrf_token"])

		var stored int
		require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM ui_sessions WHERE token_id IS NOT NULL`).Scan(&stored))
		require.Equal(t, 1, stored)
	})

	t.Run("mutations need the CSRF token", func(t *testing.T) {
		r := op.do(http.MethodPost, "/api/v1/checks", check, false)
		require.Equal(t, http.StatusForbidden, r.code, r.raw)
		require.Contains(t, errMessage(r), "CSRF")
		saved := op.csrf
		op.csrf = "wrong"
		require.Equal(t, http.StatusForbidden, op.do(http.MethodPost, "/api/v1/checks", check, true).code)
		op.csrf = saved
		r = op.do(http.MethodPost, "/api/v1/checks", check, true)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		// Reads need none.
		require.Equal(t, http.StatusOK, op.do(http.MethodGet, "/api/v1/repairs", nil, false).code)
		// A bearer token needs none either: browsers never attach it.
		require.Equal(t, http.StatusOK, call(t, a, http.MethodPost, "/api/v1/checks", operator, check).code)
	})

	t.Run("roles apply to sessions", func(t *testing.T) {
		v := newBrowser(t, a)
		require.Equal(t, http.StatusCreated, v.login(viewer).code)
		r := v.do(http.MethodPost, "/api/v1/repairs", map[string]any{"entity": "profile", "ids": []int{1}, "dry_run": true}, true)
		require.Equal(t, http.StatusForbidden, r.code, r.raw)
		require.Contains(t, errMessage(r), "needs the operator role")
		require.Equal(t, http.StatusForbidden, v.do(http.MethodGet, "/api/v1/tokens", nil, false).code)
	})

	t.Run("revoking the token ends its sessions", func(t *testing.T) {
		tmp := mint("ui-temp", "operator")
		b := newBrowser(t, a)
		require.Equal(t, http.StatusCreated, b.login(tmp).code)
		require.Equal(t, http.StatusOK, b.do(http.MethodGet, "/api/v1/session", nil, false).code)
		require.Equal(t, http.StatusOK, call(t, a, http.MethodDelete, "/api/v1/tokens/"+ids["ui-temp"], adminToken, nil).code)
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodGet, "/api/v1/session", nil, false).code)
	})

	t.Run("logout", func(t *testing.T) {
		b := newBrowser(t, a)
		require.Equal(t, http.StatusCreated, b.login(viewer).code)
		require.Equal(t, http.StatusForbidden, b.do(http.MethodDelete, "/api/v1/session", nil, false).code, "logout is a mutation")
		r := b.do(http.MethodDelete, "/api/v1/session", nil, true)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		require.Contains(t, r.hdr.Get("Set-Cookie"), "Max-Age=0")
		require.Equal(t, http.StatusUnauthorized, b.do(http.MethodGet, "/api/v1/session", nil, false).code)
		// The old cookie value no longer works even if a client kept it.
		u, _ := url.Parse("http://" + a.Addr)
		require.Empty(t, b.c.Jar.Cookies(u))
	})

	t.Run("audit log", func(t *testing.T) {
		r := call(t, a, http.MethodGet, "/api/v1/audit?limit=1000", adminToken, nil)
		require.Equal(t, http.StatusOK, r.code, r.raw)
		type row struct{ actor, via, method, route string }
		var rows []row
		var code403 int
		for _, e := range r.body["data"].([]any) {
			m := e.(map[string]any)
			rows = append(rows, row{m["actor"].(string), m["via"].(string), m["method"].(string), m["route"].(string)})
			if m["actor"] == "ui-operator" && m["status"].(float64) == 403 {
				code403++
			}
		}
		require.Contains(t, rows, row{"anonymous", "none", "POST", "/api/v1/session"}, "a failed login")
		require.Contains(t, rows, row{"ui-operator", "session", "POST", "/api/v1/session"})
		require.Contains(t, rows, row{"ui-operator", "session", "POST", "/api/v1/checks"})
		require.Contains(t, rows, row{"ui-operator", "token", "POST", "/api/v1/checks"})
		require.Contains(t, rows, row{"ui-viewer", "session", "POST", "/api/v1/repairs"})
		require.Contains(t, rows, row{"bootstrap-admin", "token", "DELETE", "/api/v1/tokens/:id"})
		require.Contains(t, rows, row{"ui-viewer", "session", "DELETE", "/api/v1/session"})
		require.Equal(t, 2, code403, "both refused CSRF attempts are recorded")
		for _, x := range rows {
			require.NotEqual(t, "GET", x.method, "reads are not audited")
		}
		// Keyset pages and filters.
		page := call(t, a, http.MethodGet, "/api/v1/audit?limit=2", adminToken, nil).body["data"].([]any)
		require.Len(t, page, 2)
		last := int64(page[1].(map[string]any)["id"].(float64))
		next := call(t, a, http.MethodGet, "/api/v1/audit?limit=2&before="+strconv.FormatInt(last, 10), adminToken, nil).body["data"].([]any)
		require.Less(t, int64(next[0].(map[string]any)["id"].(float64)), last)
		mine := call(t, a, http.MethodGet, "/api/v1/audit?actor=ui-viewer", adminToken, nil).body["data"].([]any)
		require.NotEmpty(t, mine)
		for _, e := range mine {
			require.Equal(t, "ui-viewer", e.(map[string]any)["actor"])
		}
		require.Equal(t, http.StatusBadRequest, call(t, a, http.MethodGet, "/api/v1/audit?before=x", adminToken, nil).code)
		require.Equal(t, http.StatusForbidden, call(t, a, http.MethodGet, "/api/v1/audit", operator, nil).code)
	})

	t.Run("rate limits", func(t *testing.T) {
		limitedCalls := 0
		var retry string
		for range 120 {
			r := call(t, a, http.MethodGet, "/api/v1/whoami", viewer, nil)
			if r.code == http.StatusTooManyRequests {
				limitedCalls++
				retry = r.hdr.Get("Retry-After")
				require.Contains(t, errMessage(r), "requests/s for ui-viewer")
			} else {
				require.Equal(t, http.StatusOK, r.code)
			}
		}
		t.Logf("120 requests in a row at 40/s (burst 40): %d answered 429", limitedCalls)
		require.Positive(t, limitedCalls)
		require.Equal(t, "1", retry)
		require.Equal(t, http.StatusOK, call(t, a, http.MethodGet, "/api/v1/whoami", operator, nil).code, "other principals are not held back")
		// The profile reads are the serving path: not limited, even for
		// the principal that is.
		for range 120 {
			require.NotEqual(t, http.StatusTooManyRequests, call(t, a, http.MethodGet, "/api/v1/profiles/1", viewer, nil).code)
		}

		b := newBrowser(t, a)
		var last resp
		for range 40 {
			if last = b.login("triad_guess"); last.code == http.StatusTooManyRequests {
				break
			}
			require.Equal(t, http.StatusUnauthorized, last.code)
		}
		require.Equal(t, http.StatusTooManyRequests, last.code, "login attempts are limited per address")
		require.NotEmpty(t, last.hdr.Get("Retry-After"))
		require.True(t, strings.Contains(errMessage(last), "login attempts"), errMessage(last))
	})
}
