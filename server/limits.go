package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"
)

// allowedHosts is the set of Host names the server answers to.
func allowedHosts(c Config) map[string]bool {
	m := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	if h, _, err := net.SplitHostPort(c.Listen); err == nil && h != "" {
		m[strings.ToLower(h)] = true
	}
	for _, h := range c.AllowedHosts {
		m[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	return m
}

// checkHost answers 421 to a request whose Host header names a host not
// in server.allowed_hosts.
func (s *Server) checkHost(c *gin.Context) {
	if s.hosts["*"] {
		c.Next()
		return
	}
	host := c.Request.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if !s.hosts[host] {
		c.AbortWithStatusJSON(http.StatusMisdirectedRequest, envelope{Status: "error", RequestID: requestID(c),
			Error: &apiError{Code: "misdirected", Message: fmt.Sprintf("host %.80q is not one of server.allowed_hosts", host)}})
		return
	}
	c.Next()
}

// budget is the server's global in-flight budget: a count of requests
// and the bytes their bodies may hold. A request beyond either is refused
// at once with 429 rather than queued, so no mix of callers can hold more
// memory than the budget allows.
type budget struct {
	count *semaphore.Weighted
	bytes *semaphore.Weighted
	max   int64
}

func newBudget(count int, bytes int64) *budget {
	return &budget{count: semaphore.NewWeighted(int64(count)), bytes: semaphore.NewWeighted(bytes), max: bytes}
}

// bodyCap is the most a request to route may send: the batch endpoint
// takes MaxBodyBytes, every other route MaxRequestBytes.
func (s *Server) bodyCap(route string) int64 {
	if route == "/api/v1/profiles/batch" {
		return s.cfg.MaxBodyBytes
	}
	return s.cfg.MaxRequestBytes
}

// admit holds an /api request to the in-flight budget, its body to the
// route's cap, its query to the filter bounds and its handling to
// RequestTimeout. Health, metrics and the dashboard's static files stay
// outside the budget, so an overloaded server can still say so.
func (s *Server) admit(c *gin.Context) {
	if !strings.HasPrefix(c.Request.URL.Path, "/api/") {
		c.Next()
		return
	}
	if err := checkQuery(c.Request); err != nil {
		s.writeError(c, err)
		return
	}
	limit := s.bodyCap(c.FullPath())
	if c.Request.ContentLength > limit {
		s.writeError(c, fmt.Errorf("%w: this endpoint takes at most %d bytes, the request declares %d", ErrTooLarge, limit, c.Request.ContentLength))
		return
	}
	// A body of unknown length (chunked) is charged the route's cap.
	weight := int64(0)
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		weight = limit
		if c.Request.ContentLength >= 0 {
			weight = c.Request.ContentLength
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	if !s.budget.count.TryAcquire(1) {
		s.inflightRefused.WithLabelValues("requests").Inc()
		s.writeError(c, rateLimited(time.Second, "the server is at its in-flight request budget"))
		return
	}
	defer s.budget.count.Release(1)
	if weight > 0 {
		if !s.budget.bytes.TryAcquire(weight) {
			s.inflightRefused.WithLabelValues("bytes").Inc()
			s.writeError(c, rateLimited(time.Second, "the server is at its in-flight body budget"))
			return
		}
		defer s.budget.bytes.Release(weight)
	}
	timeout := s.cfg.RequestTimeout
	if c.FullPath() == "/api/v1/profiles/batch" {
		timeout = s.cfg.BatchTimeout
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// Query bounds: every filter of every list endpoint.
const (
	maxQueryParams = 64
	maxQueryValue  = 1024
)

// checkQuery refuses a query with too many parameters, a value too long,
// or bytes no store takes (invalid UTF-8, NUL and other control
// characters), before any handler or store sees it.
func checkQuery(r *http.Request) error {
	if len(r.URL.RawQuery) == 0 {
		return nil
	}
	q := r.URL.Query()
	n := 0
	for k, vs := range q {
		for _, v := range append([]string{k}, vs...) {
			n++
			if n > maxQueryParams+len(q) {
				return fmt.Errorf("%w: at most %d query parameters", ErrBadRequest, maxQueryParams)
			}
			if len(v) > maxQueryValue {
				return fmt.Errorf("%w: query parameter %.40q is longer than %d bytes", ErrBadRequest, k, maxQueryValue)
			}
			if !printable(v) {
				return fmt.Errorf("%w: query parameter %.40q holds invalid UTF-8 or control characters", ErrBadRequest, k)
			}
		}
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// decodeJSON decodes a request body of exactly one JSON value into v,
// refusing unknown fields. An oversized body is ErrTooLarge (413); any
// other fault is ErrBadRequest with shape, the body the endpoint takes.
func decodeJSON(c *gin.Context, v any, shape string) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err == nil {
		return nil
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: this endpoint takes at most %d bytes", ErrTooLarge, mbe.Limit)
	}
	return fmt.Errorf("%w: body must be %s: %s", ErrBadRequest, shape, cleanJSONError(err))
}

// cleanJSONError keeps a decode error's position and kind but none of the
// caller's bytes beyond a short quote.
func cleanJSONError(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return strings.ToValidUTF8(msg, "?")
}
