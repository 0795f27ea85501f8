package server

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the HTTP server's configuration.
type Config struct {
	// Listen is the API and dashboard address.
	Listen string `yaml:"listen"`
	// AllowedHosts are the names (and addresses) clients may reach triad
	// by, as the Host header carries them; others get 421, so a page that
	// re-points its own name at triad (DNS rebinding) reaches nothing.
	// localhost, 127.0.0.1, ::1 and the listen address's host are always
	// allowed; "*" allows any (behind a proxy that checks the name).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// ShutdownTimeout bounds how long in-flight requests may drain.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long /-/ready answers 503 before the listener closes,
	// so load balancers stop sending traffic first.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// MaxBodyBytes caps the batch endpoint's body (profile JSONL); larger
	// ones get 413 (the lines before the limit are taken).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxRequestBytes caps every other request body (ID lists, webhooks,
	// sweeps); larger ones get 413.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxInflight and MaxInflightBytes are the global in-flight budget of
	// /api requests: how many at once, and how many body bytes they may
	// hold together (a body of unknown length counts as its route's cap).
	// A request beyond either gets 429 at once.
	MaxInflight      int   `yaml:"max_inflight"`
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// RequestTimeout is every /api request's deadline, store calls
	// included: a store that hangs answers 503 naming it within it.
	// BatchTimeout is the batch endpoint's (a body of MaxBodyBytes).
	RequestTimeout time.Duration `yaml:"request_timeout"`
	BatchTimeout   time.Duration `yaml:"batch_timeout"`
	// The HTTP server's connection timeouts: to read a request's headers,
	// to read the whole request, to write the response, and to keep an
	// idle keep-alive connection.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ProbeInterval is how often dependencies are probed for /-/ready.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`
	// SessionTTL is how long a dashboard login lasts.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// CookieSecure marks the session cookie Secure (sent over HTTPS only);
	// set it when triad is reached through a TLS proxy. Requests that
	// arrive over TLS get Secure cookies regardless.
	CookieSecure bool `yaml:"cookie_secure"`
	// RateLimit is API requests per second per principal (token or
	// session), with bursts of RateBurst; 0 turns the limit off.
	RateLimit float64 `yaml:"rate_limit"`
	RateBurst int     `yaml:"rate_burst"`
	// LoginRateLimit is login attempts per minute per client address.
	LoginRateLimit int `yaml:"login_rate_limit"`
	// RedactProfileFields are profile paths ("props.email", or a whole
	// field) and RedactSpanAttributes span attribute keys whose values
	// viewers see as "[redacted]"; operators and admins see them.
	RedactProfileFields  []string `yaml:"redact_profile_fields"`
	RedactSpanAttributes []string `yaml:"redact_span_attributes"`
	// AuditRetention is how long audit entries are kept (purged daily
	// by the leader).
	AuditRetention time.Duration `yaml:"audit_retention"`
}

// DefaultConfig returns the server defaults.
func DefaultConfig() Config {
	return Config{
		Listen:               "127.0.0.1:8383",
		ShutdownTimeout:      15 * time.Second,
		DrainDelay:           0,
		MaxBodyBytes:         4 << 20,
		MaxRequestBytes:      64 << 10,
		MaxInflight:          512,
		MaxInflightBytes:     64 << 20,
		RequestTimeout:       15 * time.Second,
		BatchTimeout:         time.Minute,
		ReadHeaderTimeout:    10 * time.Second,
		ReadTimeout:          time.Minute,
		WriteTimeout:         2 * time.Minute,
		IdleTimeout:          2 * time.Minute,
		ProbeInterval:        time.Second,
		ProbeTimeout:         time.Second,
		SessionTTL:           12 * time.Hour,
		RateLimit:            100,
		RateBurst:            200,
		LoginRateLimit:       10,
		RedactProfileFields:  DefaultRedactedProfileFields,
		RedactSpanAttributes: DefaultRedactedSpanAttributes,
		AuditRetention:       365 * 24 * time.Hour,
	}
}

// Validate names the first bad key.
func (c Config) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("server.listen: must be host:port, got %q", c.Listen))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("server.shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("server.drain_delay: must not be negative, got %s", c.DrainDelay))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("server.max_body_bytes: must be at least 1024, got %d", c.MaxBodyBytes))
	}
	if c.MaxRequestBytes < 1024 || c.MaxRequestBytes > c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("server.max_request_bytes: must be from 1024 to max_body_bytes (%d), got %d", c.MaxBodyBytes, c.MaxRequestBytes))
	}
	if c.MaxInflight < 1 || c.MaxInflightBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("server.max_inflight: must be at least 1 (got %d), and max_inflight_bytes at least max_body_bytes (got %d)", c.MaxInflight, c.MaxInflightBytes))
	}
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{
		{"request_timeout", c.RequestTimeout}, {"batch_timeout", c.BatchTimeout}, {"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout},
	} {
		if kd.d < 100*time.Millisecond {
			errs = append(errs, fmt.Errorf("server.%s: must be at least 100ms, got %s", kd.key, kd.d))
		}
	}
	if c.ProbeInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("server.probe_interval: must be at least 100ms, got %s", c.ProbeInterval))
	}
	if c.ProbeTimeout <= 0 || c.ProbeTimeout > c.ProbeInterval*10 {
		errs = append(errs, fmt.Errorf("server.probe_timeout: must be positive and at most 10x probe_interval, got %s", c.ProbeTimeout))
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, fmt.Errorf("server.session_ttl: must be at least 1m, got %s", c.SessionTTL))
	}
	if c.RateLimit < 0 || (c.RateLimit > 0 && c.RateBurst < 1) {
		errs = append(errs, fmt.Errorf("server.rate_limit: must not be negative, and needs server.rate_burst ≥ 1 (got %g and %d)", c.RateLimit, c.RateBurst))
	}
	if c.AuditRetention < 24*time.Hour {
		errs = append(errs, fmt.Errorf("server.audit_retention: must be at least 24h, got %s", c.AuditRetention))
	}
	if c.LoginRateLimit < 1 {
		errs = append(errs, fmt.Errorf("server.login_rate_limit: must be at least 1, got %d", c.LoginRateLimit))
	}
	return errors.Join(errs...)
}
