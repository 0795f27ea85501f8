// Package clients builds triad's connections to Postgres, Redis,
// Elasticsearch and etcd from configuration, with credentials and TLS, and
// probes each for readiness.
package clients

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/triad-dev/triad/cmd/internal/secret"
)

// TLS configures a client's TLS. Files are PEM.
type TLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Validate checks the files exist and come as a pair.
func (t TLS) Validate(key string) error {
	if !t.Enabled {
		return nil
	}
	var errs []error
	for k, f := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%s.tls.%s: %w", key, k, err))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, fmt.Errorf("%s.tls: cert_file and key_file must be set together", key))
	}
	return errors.Join(errs...)
}

// Build returns the tls.Config, or nil when TLS is off.
func (t TLS) Build() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificates", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Credentials is a user name and password; the password comes from the
// environment or from PasswordFile, never from the YAML file itself.
type Credentials struct {
	Username     string       `yaml:"username"`
	Password     secret.Value `yaml:"password" secret:"true"`
	PasswordFile string       `yaml:"password_file"`
}

// Resolve reads PasswordFile when the password is not set directly.
func (c *Credentials) Resolve(key string) error {
	if c.Password.IsSet() || c.PasswordFile == "" {
		return nil
	}
	v, err := secret.FromFile(c.PasswordFile)
	if err != nil {
		return fmt.Errorf("%s.password_file: %w", key, err)
	}
	c.Password = v
	return nil
}

// Postgres configures the pgx pool.
type Postgres struct {
	Host        string `yaml:"host"`
	Port        int    `yaml:"port"`
	Database    string `yaml:"database"`
	Credentials `yaml:",inline"`
	// SSLMode is libpq's sslmode: disable, require, verify-ca, verify-full.
	SSLMode        string        `yaml:"sslmode"`
	TLS            TLS           `yaml:"tls"`
	MaxConns       int           `yaml:"max_conns"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Schema, when set, becomes the connection's search_path (tests use it
	// to isolate themselves on a shared server). CreateSchema lets
	// `triad migrate up` (and `serve --migrate`) create it when missing.
	Schema       string `yaml:"schema"`
	CreateSchema bool   `yaml:"create_schema"`
	// StatementTimeout is Postgres's statement_timeout for every session
	// triad opens: no query of triad's (a hostile trace search included)
	// runs longer. Migrations run under it too: raise it for a run of
	// `triad migrate up` that builds an index on a large table.
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	// Timeout bounds one call from triad's background writers (ingest's
	// batches, the catch-up log) on the client side, which is what ends a
	// call to a Postgres that hangs rather than answers. API calls are
	// bounded by server.request_timeout.
	Timeout time.Duration `yaml:"timeout"`
}

// Redis configures go-redis.
type Redis struct {
	Addr string `yaml:"addr"`
	// Addrs, when set, are seed nodes of a Redis Cluster: triad uses
	// go-redis's cluster client (slots, MOVED and ASK redirections,
	// failovers) and Addr is not used.
	Addrs       []string `yaml:"addrs"`
	Credentials `yaml:",inline"`
	DB          int           `yaml:"db"`
	TLS         TLS           `yaml:"tls"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	PoolSize    int           `yaml:"pool_size"`
	// Timeout is the deadline of every socket read and write of a command
	// (or a pipeline's), so a Redis that hangs fails the call instead of
	// holding it.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is how many times a command failing on the network is
	// retried (0: never; go-redis's own default is 3).
	MaxRetries int `yaml:"max_retries"`
}

// Elasticsearch configures go-elasticsearch. Either basic credentials or an
// API key (from TRIAD_ELASTICSEARCH_API_KEY or api_key_file) may be used.
type Elasticsearch struct {
	Addresses   []string `yaml:"addresses"`
	Credentials `yaml:",inline"`
	APIKey      secret.Value `yaml:"api_key" secret:"true"`
	APIKeyFile  string       `yaml:"api_key_file"`
	TLS         TLS          `yaml:"tls"`
	// Timeout bounds every request, its response body included, unless the
	// caller's deadline is sooner: a node that hangs fails the call.
	Timeout time.Duration `yaml:"timeout"`
	// MaxRetries is how many times a request failing on the network or
	// with 502/503/504 is retried (0: never).
	MaxRetries int `yaml:"max_retries"`
}

// Etcd configures the etcd v3 client.
type Etcd struct {
	Endpoints   []string `yaml:"endpoints"`
	Credentials `yaml:",inline"`
	TLS         TLS           `yaml:"tls"`
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// KeepAlive is how often an idle connection is probed; a member that
	// does not answer within DialTimeout is given up, so a hung member
	// fails calls over to another instead of holding them.
	KeepAlive time.Duration `yaml:"keep_alive"`
}

// Defaults point at the local stack (`triad stack up`).
func DefaultPostgres() Postgres {
	return Postgres{Host: "127.0.0.1", Port: 15432, Database: "triad", Credentials: Credentials{Username: "triad"},
		SSLMode: "disable", MaxConns: 20, ConnectTimeout: 5 * time.Second,
		StatementTimeout: 30 * time.Second, Timeout: 30 * time.Second}
}

func DefaultRedis() Redis {
	return Redis{Addr: "127.0.0.1:16379", DialTimeout: 2 * time.Second, PoolSize: 64, Timeout: 3 * time.Second, MaxRetries: 1}
}

func DefaultElasticsearch() Elasticsearch {
	return Elasticsearch{Addresses: []string{"http://127.0.0.1:19200"}, Timeout: 10 * time.Second, MaxRetries: 1}
}

func DefaultEtcd() Etcd {
	return Etcd{Endpoints: []string{"127.0.0.1:12379"}, DialTimeout: 3 * time.Second, KeepAlive: 10 * time.Second}
}

func (c Postgres) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, errors.New("postgres.host: must not be empty"))
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("postgres.port: must be 1-65535, got %d", c.Port))
	}
	if c.Database == "" {
		errs = append(errs, errors.New("postgres.database: must not be empty"))
	}
	if c.Username == "" {
		errs = append(errs, errors.New("postgres.username: must not be empty"))
	}
	switch c.SSLMode {
	case "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
	default:
		errs = append(errs, fmt.Errorf("postgres.sslmode: must be one of disable, allow, prefer, require, verify-ca, verify-full, got %q", c.SSLMode))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("postgres.max_conns: must be at least 1, got %d", c.MaxConns))
	}
	if c.ConnectTimeout <= 0 {
		errs = append(errs, fmt.Errorf("postgres.connect_timeout: must be positive, got %s", c.ConnectTimeout))
	}
	if c.StatementTimeout < time.Second || c.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("postgres.statement_timeout, timeout: must be at least 1s, got %s and %s", c.StatementTimeout, c.Timeout))
	}
	errs = append(errs, c.TLS.Validate("postgres"))
	return errors.Join(errs...)
}

func (c Redis) Validate() error {
	var errs []error
	if c.Addr == "" && len(c.Addrs) == 0 {
		errs = append(errs, errors.New("redis.addr: must not be empty (or redis.addrs: a cluster's seed nodes)"))
	}
	if len(c.Addrs) > 0 && c.DB != 0 {
		errs = append(errs, fmt.Errorf("redis.db: a Redis Cluster has only database 0, got %d", c.DB))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("redis.db: must not be negative, got %d", c.DB))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("redis.dial_timeout: must be positive, got %s", c.DialTimeout))
	}
	if c.PoolSize < 1 {
		errs = append(errs, fmt.Errorf("redis.pool_size: must be at least 1, got %d", c.PoolSize))
	}
	if c.Timeout < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("redis.timeout: must be at least 10ms, got %s", c.Timeout))
	}
	if c.MaxRetries < 0 || c.MaxRetries > 10 {
		errs = append(errs, fmt.Errorf("redis.max_retries: must be from 0 to 10, got %d", c.MaxRetries))
	}
	errs = append(errs, c.TLS.Validate("redis"))
	return errors.Join(errs...)
}

func (c Elasticsearch) Validate() error {
	var errs []error
	if len(c.Addresses) == 0 {
		errs = append(errs, errors.New("elasticsearch.addresses: must list at least one URL"))
	}
	for i, a := range c.Addresses {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("elasticsearch.addresses[%d]: must be an http(s) URL, got %q", i, a))
		} else if u.User != nil {
			errs = append(errs, fmt.Errorf("elasticsearch.addresses[%d]: must not carry credentials; use elasticsearch.username and TRIAD_ELASTICSEARCH_PASSWORD", i))
		}
	}
	if c.Timeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("elasticsearch.timeout: must be at least 100ms, got %s", c.Timeout))
	}
	if c.MaxRetries < 0 || c.MaxRetries > 10 {
		errs = append(errs, fmt.Errorf("elasticsearch.max_retries: must be from 0 to 10, got %d", c.MaxRetries))
	}
	if c.APIKey.IsSet() && c.Password.IsSet() {
		errs = append(errs, errors.New("elasticsearch.api_key: set either an API key or a password, not both"))
	}
	errs = append(errs, c.TLS.Validate("elasticsearch"))
	return errors.Join(errs...)
}

func (c Etcd) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("etcd.endpoints: must list at least one endpoint"))
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("etcd.dial_timeout: must be positive, got %s", c.DialTimeout))
	}
	if c.KeepAlive < time.Second {
		errs = append(errs, fmt.Errorf("etcd.keep_alive: must be at least 1s, got %s", c.KeepAlive))
	}
	errs = append(errs, c.TLS.Validate("etcd"))
	return errors.Join(errs...)
}

// Resolve reads secret files.
func (c *Elasticsearch) Resolve() error {
	if err := c.Credentials.Resolve("elasticsearch"); err != nil {
		return err
	}
	if !c.APIKey.IsSet() && c.APIKeyFile != "" {
		v, err := secret.FromFile(c.APIKeyFile)
		if err != nil {
			return fmt.Errorf("elasticsearch.api_key_file: %w", err)
		}
		c.APIKey = v
	}
	return nil
}
