package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/maypok86/otter/v2"
	"golang.org/x/time/rate"

	"github.com/triad-dev/triad/server/auth"
)

// CSRFHeader carries a session's anti-CSRF token on every mutation made
// with the session cookie. Bearer-token requests need none: a browser
// never attaches a bearer token by itself.
const CSRFHeader = "X-Csrf-Token"

const sessionKey = "triad.session"

// limiters holds token buckets by key (a principal, a client address),
// forgetting those unused for ten minutes, so memory stays bounded.
type limiters struct {
	every rate.Limit
	burst int
	m     *otter.Cache[string, *rate.Limiter]
}

func newLimiters(every rate.Limit, burst int) *limiters {
	return &limiters{every: every, burst: burst, m: otter.Must(&otter.Options[string, *rate.Limiter]{
		MaximumSize: 100_000, ExpiryCalculator: otter.ExpiryAccessing[string, *rate.Limiter](10 * time.Minute),
	})}
}

// allow takes one token for key; when none is left it returns how long
// until one is.
func (l *limiters) allow(key string) (bool, time.Duration) {
	lim, _ := l.m.Compute(key, func(old *rate.Limiter, found bool) (*rate.Limiter, otter.ComputeOp) {
		if found {
			return old, otter.CancelOp
		}
		return rate.NewLimiter(l.every, l.burst), otter.WriteOp
	})
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// retryAfter is an error answered with a Retry-After header.
type retryAfter struct {
	err  error
	wait time.Duration
}

func (e retryAfter) Error() string { return e.err.Error() }
func (e retryAfter) Unwrap() error { return e.err }

// rateLimited is the 429 for a spent rate limit, retried after wait.
func rateLimited(wait time.Duration, what string) error {
	return retryAfter{err: fmt.Errorf("%w: %s; retry in %s", ErrRateLimited, what, wait.Round(time.Millisecond)), wait: wait}
}

// retryAfterSeconds renders a wait as Retry-After's whole seconds (≥1).
func retryAfterSeconds(wait time.Duration) string {
	return strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds()))))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate requires a bearer token or a session cookie whose role is
// at least min; with the cookie, a mutation must also carry the
// session's CSRF token. With limit, each principal is held to the API
// rate limit.
func (s *Server) authenticate(min auth.Role, limit bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := s.identify(c)
		switch {
		case errors.Is(err, auth.ErrInvalidToken), errors.Is(err, auth.ErrNoToken):
			s.writeError(c, err)
			return
		case err != nil:
			s.log.Warn("token lookup failed", "request_id", requestID(c), "err", err)
			s.writeError(c, fmt.Errorf("%w: token store unavailable", ErrUnavailable))
			return
		}
		c.Set(principalKey, p)
		if p.Via == auth.ViaSession && !safeMethod(c.Request.Method) {
			sess, _ := c.Get(sessionKey)
			want := sess.(auth.Session).CSRF
			if got := headerValue(c.Request.Header, CSRFHeader); subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
				s.writeError(c, fmt.Errorf("%w: a change made with the dashboard session needs its CSRF token in the %s header", ErrForbidden, CSRFHeader))
				return
			}
		}
		if limit && s.rate != nil {
			key := "n:" + p.Name
			if p.TokenID != 0 {
				key = "t:" + strconv.FormatInt(p.TokenID, 10)
			}
			if ok, wait := s.rate.allow(key); !ok {
				s.writeError(c, rateLimited(wait, fmt.Sprintf("over %g requests/s for %s", float64(s.rate.every), p.Name)))
				return
			}
		}
		if p.Role < min {
			s.writeError(c, fmt.Errorf("%w: this needs the %s role; the token has %s", ErrForbidden, min, p.Role))
			return
		}
		c.Next()
	}
}

// identify resolves the request's bearer token, or else its session
// cookie.
func (s *Server) identify(c *gin.Context) (auth.Principal, error) {
	if h := headerValue(c.Request.Header, "Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return auth.Principal{}, auth.ErrNoToken
		}
		return s.authn.Authenticate(c.Request.Context(), strings.TrimSpace(token))
	}
	ck, err := c.Request.Cookie(auth.SessionCookie)
	if err != nil {
		return auth.Principal{}, auth.ErrNoToken
	}
	sess, err := s.authn.Session(c.Request.Context(), ck.Value)
	if err != nil {
		return auth.Principal{}, err
	}
	c.Set(sessionKey, sess)
	return sess.Principal, nil
}

type loginRequest struct {
	Token string `json:"token"`
}

// login opens a dashboard session with a token: the answer sets the
// HttpOnly, SameSite=Strict session cookie and carries the CSRF token
// the page must send back on mutations.
func (s *Server) login(c *gin.Context) (any, error) {
	if ok, wait := s.logins.allow(c.RemoteIP()); !ok {
		return nil, rateLimited(wait, fmt.Sprintf("over %d login attempts a minute from %s", s.cfg.LoginRateLimit, c.RemoteIP()))
	}
	// Login CSRF (a page of another site logging the browser in with the
	// attacker's token): HTML forms cannot send application/json without
	// a CORS preflight, which triad never answers, and a browser's Origin
	// must be this server.
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != "application/json" {
		return nil, fmt.Errorf("%w: login needs Content-Type: application/json", ErrBadRequest)
	}
	if o := c.GetHeader("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || u.Host != c.Request.Host {
			return nil, fmt.Errorf("%w: login from origin %q refused: the dashboard logs in from %s", ErrForbidden, o, c.Request.Host)
		}
	}
	var req loginRequest
	if err := decodeJSON(c, &req, `{"token": "triad_…"}`); err != nil {
		return nil, err
	}
	if req.Token == "" {
		return nil, fmt.Errorf(`%w: body must be {"token": "triad_…"}`, ErrBadRequest)
	}
	secret, sess, err := s.authn.Login(c.Request.Context(), req.Token, s.cfg.SessionTTL)
	if err != nil {
		return nil, err
	}
	c.Set(principalKey, sess.Principal)
	http.SetCookie(c.Writer, &http.Cookie{
		Name: auth.SessionCookie, Value: secret, Path: "/", MaxAge: int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.cfg.CookieSecure || c.Request.TLS != nil,
	})
	s.log.Info("dashboard login", "name", sess.Name, "role", sess.Role.String(), "remote", c.RemoteIP())
	created(c)
	return sess, nil
}

// session answers who the caller is; with the session cookie, also the
// session's CSRF token and expiry (a reloaded page asks for them).
func (s *Server) session(c *gin.Context) (any, error) {
	if v, ok := c.Get(sessionKey); ok {
		return v, nil
	}
	return gin.H{"name": principal(c).Name, "role": principal(c).Role, "via": principal(c).Via, "token_id": principal(c).TokenID}, nil
}

// logout ends the cookie's session.
func (s *Server) logout(c *gin.Context) (any, error) {
	ck, err := c.Request.Cookie(auth.SessionCookie)
	if err != nil || principal(c).Via != auth.ViaSession {
		return nil, fmt.Errorf("%w: no dashboard session to end (bearer tokens are revoked with DELETE /api/v1/tokens/{id})", ErrBadRequest)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.authn.Logout(lctx, ck.Value); err != nil {
		return nil, fmt.Errorf("%w: session store (postgres): %w", ErrUnavailable, err)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.cfg.CookieSecure || c.Request.TLS != nil})
	return gin.H{"ended": true}, nil
}

// audit records every mutating request that reached a principal (and
// every login attempt) in the audit log, after the answer.
// auditWait and maxAuditBehind bound what a slow audit store costs a
// mutation (see audit).
const (
	auditWait      = 250 * time.Millisecond
	maxAuditBehind = 256
)

func (s *Server) audit(c *gin.Context) {
	c.Next()
	p := principal(c)
	route := c.FullPath()
	if p.Name == "" && route != "/api/v1/session" || s.tokens == nil {
		return
	}
	e := auth.AuditEntry{Actor: p.Name, TokenID: p.TokenID, Role: p.Role.String(), Via: p.Via, Method: c.Request.Method,
		Route: route, Path: c.Request.URL.Path, Status: c.Writer.Status(), RequestID: requestID(c), Remote: c.RemoteIP()}
	if p.Name == "" {
		e.Actor, e.Via = "anonymous", "none"
	}
	// The entry is written under its own deadline, even if the request's
	// context ended. The answer waits for it up to auditWait: a hung audit
	// store must not hold every mutation; past that the write goes on in
	// the background (at most maxAuditBehind at once; beyond, the entry is
	// logged as lost).
	if !s.auditBehind.TryAcquire(1) {
		s.log.Error("audit entry not written: too many audit writes behind", "request_id", requestID(c), "route", route, "actor", e.Actor)
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer s.auditBehind.Release(1)
		actx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
		defer cancel()
		if err := s.tokens.Audit(actx, e); err != nil {
			s.log.Warn("audit entry not written", "request_id", e.RequestID, "route", e.Route, "err", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(auditWait):
	}
}

func (s *Server) listAudit(c *gin.Context) (any, error) {
	f := auth.AuditFilter{Actor: c.Query("actor"), Method: c.Query("method")}
	var err error
	if v := c.Query("before"); v != "" {
		if f.Before, err = strconv.ParseInt(v, 10, 64); err != nil || f.Before <= 0 {
			return nil, fmt.Errorf("%w: before must be a positive audit entry id, got %q", ErrBadRequest, v)
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
		return pagedExport(format, "triad-audit", auditColumns, auditCells, keyset(f.Limit, func(before int64) ([]auth.AuditEntry, error) {
			if before > 0 { // the first page starts where the caller's before says
				f.Before = before
			}
			es, err := s.tokens.ListAudit(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("%w: audit log (postgres): %w", ErrUnavailable, err)
			}
			return es, nil
		}, func(e auth.AuditEntry) int64 { return e.ID })), nil
	}
	entries, err := s.tokens.ListAudit(c.Request.Context(), f)
	if err != nil {
		return nil, fmt.Errorf("%w: audit log (postgres): %w", ErrUnavailable, err)
	}
	if entries == nil {
		entries = []auth.AuditEntry{}
	}
	return entries, nil
}

var auditColumns = []string{"id", "at", "actor", "token_id", "role", "via", "method", "route", "path", "status", "request_id", "remote"}

func auditCells(e auth.AuditEntry) []string {
	return []string{itoa(e.ID), timeCell(&e.At), e.Actor, itoa(e.TokenID), e.Role, e.Via, e.Method, e.Route, e.Path, strconv.Itoa(e.Status), e.RequestID, e.Remote}
}
