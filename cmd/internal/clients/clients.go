package clients

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func init() {
	// go-redis prints dial retries to stderr through a package-level logger;
	// triad reports store errors itself, with context (readiness, callers).
	redis.SetLogger(quietRedis{})
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// NewPostgres builds a pool. It does not connect until first use, so triad
// starts (not ready) while Postgres is down.
func NewPostgres(c Postgres) (*pgxpool.Pool, error) {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(c.Username), // the password is set below, never in a string
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + c.Database,
		RawQuery: url.Values{"sslmode": {c.SSLMode}, "application_name": {"triad"}}.Encode(),
	}
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("postgres config: %w", err)
	}
	cfg.ConnConfig.Password = c.Password.Reveal()
	cfg.ConnConfig.ConnectTimeout = c.ConnectTimeout
	if tc, err := c.TLS.Build(); err != nil {
		return nil, fmt.Errorf("postgres.tls: %w", err)
	} else if tc != nil {
		if tc.ServerName == "" {
			tc.ServerName = c.Host
		}
		cfg.ConnConfig.TLSConfig = tc
		cfg.ConnConfig.Fallbacks = nil
	}
	if c.Schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = c.Schema
	}
	// Server-side bounds: no statement, and no transaction left idle by a
	// stalled client, holds a backend longer than this.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(c.StatementTimeout.Milliseconds(), 10)
	cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(2*c.StatementTimeout.Milliseconds(), 10)
	cfg.MaxConns = int32(c.MaxConns)
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// NewRedis builds a go-redis client, or a cluster client when c.Addrs
// names a Redis Cluster's seed nodes (go-redis's UniversalOptions pick
// the kind); it connects lazily.
func NewRedis(c Redis) (redis.UniversalClient, error) {
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("redis.tls: %w", err)
	}
	addrs := c.Addrs
	if len(addrs) == 0 {
		addrs = []string{c.Addr}
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:         addrs,
		IsClusterMode: len(c.Addrs) > 0, // even a single seed node
		Username:      c.Username,
		Password:      c.Password.Reveal(),
		DB:            c.DB,
		TLSConfig:     tc,
		DialTimeout:   c.DialTimeout,
		ReadTimeout:   c.Timeout,
		WriteTimeout:  c.Timeout,
		PoolSize:      c.PoolSize,
		// The caller's deadline, when sooner, bounds socket I/O too.
		ContextTimeoutEnabled: true,
		MaxRetries:            redisRetries(c.MaxRetries),
		// Redirections (MOVED, ASK) during a resharding or failover.
		MaxRedirects: 8,
	}), nil
}

// RedisAddr names where rdb connects (a cluster's seed nodes), for
// messages.
func RedisAddr(rdb redis.UniversalClient) string {
	switch c := rdb.(type) {
	case *redis.Client:
		return c.Options().Addr
	case *redis.ClusterClient:
		return strings.Join(c.Options().Addrs, ",")
	}
	return "redis"
}

// redisRetries maps triad's retry count to go-redis's, where 0 means its
// default of 3 and -1 means none.
func redisRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// NewElasticsearch builds a go-elasticsearch client whose every request
// runs under c.Timeout.
func NewElasticsearch(c Elasticsearch) (*elasticsearch.Client, error) {
	cfg := elasticsearch.Config{
		Addresses:  c.Addresses,
		Username:   c.Username,
		Password:   c.Password.Reveal(),
		APIKey:     c.APIKey.Reveal(),
		MaxRetries: c.MaxRetries,
	}
	if c.MaxRetries == 0 {
		cfg.DisableRetry = true
	}
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("elasticsearch.tls: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	tr.DialContext = (&net.Dialer{Timeout: min(c.Timeout, 5*time.Second), KeepAlive: 30 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = c.Timeout
	cfg.Transport = deadlineTransport{next: tr, timeout: c.Timeout}
	return elasticsearch.NewClient(cfg)
}

// deadlineTransport runs every request under a deadline that also covers
// reading its response body: the context is cancelled when the body is
// closed, or when the deadline passes mid-read.
type deadlineTransport struct {
	next    http.RoundTripper
	timeout time.Duration
}

func (t deadlineTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), t.timeout)
	res, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	res.Body = &cancelBody{ReadCloser: res.Body, cancel: cancel}
	return res, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// NewEtcd builds an etcd v3 client. It does not block on dialling.
func NewEtcd(c Etcd) (*clientv3.Client, error) {
	tc, err := c.TLS.Build()
	if err != nil {
		return nil, fmt.Errorf("etcd.tls: %w", err)
	}
	return clientv3.New(clientv3.Config{
		Endpoints:            c.Endpoints,
		Username:             c.Username,
		Password:             c.Password.Reveal(),
		TLS:                  tc,
		DialTimeout:          c.DialTimeout,
		DialKeepAliveTime:    c.KeepAlive,
		DialKeepAliveTimeout: c.DialTimeout,
		Logger:               zap.NewNop(),
	})
}

// ProbePostgres returns the server version when Postgres answers a query.
func ProbePostgres(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var v string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", err
	}
	return v, nil
}

// ProbeRedis returns the server version when Redis answers INFO.
func ProbeRedis(ctx context.Context, rdb redis.UniversalClient) (string, error) {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", diagnose(err, RedisAddr(rdb))
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v, nil
		}
	}
	return "", errors.New("INFO server has no redis_version")
}

// ProbeElasticsearch returns the local node's version and the cluster's
// health (green, yellow or red, with a note saying why when not green);
// red is an error (primaries are missing: writes and reads of
// their shards fail), yellow is not (every primary serves; some replica
// is unassigned, so one more node lost could lose data).
func ProbeElasticsearch(ctx context.Context, es *elasticsearch.Client) (Probed, error) {
	res, err := es.Cluster.Health(es.Cluster.Health.WithContext(ctx))
	if err != nil {
		return Probed{}, err
	}
	defer res.Body.Close()
	var h struct {
		Status             string  `json:"status"`
		Nodes              int     `json:"number_of_nodes"`
		Unassigned         int     `json:"unassigned_shards"`
		Initializing       int     `json:"initializing_shards"`
		Relocating         int     `json:"relocating_shards"`
		ActiveShardPercent float64 `json:"active_shards_percent_as_number"`
	}
	if res.IsError() {
		return Probed{}, fmt.Errorf("cluster health: %s", res.Status())
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		return Probed{}, fmt.Errorf("cluster health: %w", err)
	}
	out := Probed{Health: h.Status}
	if h.Status != "green" {
		out.Note = fmt.Sprintf("%d nodes, %d shards unassigned, %d initializing, %d relocating (%.1f%% of shards active)",
			h.Nodes, h.Unassigned, h.Initializing, h.Relocating, h.ActiveShardPercent)
	}
	if h.Status == "red" {
		return out, fmt.Errorf("cluster health is red: %s", out.Note)
	}
	nres, err := es.Nodes.Info(es.Nodes.Info.WithContext(ctx), es.Nodes.Info.WithNodeID("_local"), es.Nodes.Info.WithFilterPath("nodes.*.version"))
	if err != nil {
		return out, err
	}
	defer nres.Body.Close()
	var n struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	if err := json.NewDecoder(nres.Body).Decode(&n); err != nil {
		return out, fmt.Errorf("nodes info: %w", err)
	}
	for _, node := range n.Nodes {
		out.Version = node.Version
		return out, nil
	}
	return out, errors.New("nodes info: no local node")
}

// ProbeEtcd returns the version of the first endpoint that answers Status.
func ProbeEtcd(ctx context.Context, cli *clientv3.Client) (string, error) {
	var errs []error
	for _, ep := range cli.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err == nil {
			return st.Version, nil
		}
		hostport := ep
		if u, perr := url.Parse(ep); perr == nil && u.Host != "" {
			hostport = u.Host
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, diagnose(err, hostport)))
	}
	return "", errors.Join(errs...)
}

// diagnose replaces a bare timeout from a client that retries internally
// (go-redis, gRPC) with the cause an operator needs, such as "connection
// refused", when a plain TCP dial shows it.
func diagnose(err error, hostport string) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	c, derr := net.DialTimeout("tcp", hostport, 300*time.Millisecond)
	if derr != nil {
		return derr
	}
	c.Close()
	return err
}

// Build builds the four clients. Nothing connects until first use.
func Build(pg Postgres, r Redis, es Elasticsearch, etcd Etcd) (*Set, error) {
	var s Set
	var err error
	if s.Postgres, err = NewPostgres(pg); err != nil {
		return nil, err
	}
	if s.Redis, err = NewRedis(r); err != nil {
		s.Close()
		return nil, err
	}
	if s.Elasticsearch, err = NewElasticsearch(es); err != nil {
		s.Close()
		return nil, err
	}
	if s.Etcd, err = NewEtcd(etcd); err != nil {
		s.Close()
		return nil, err
	}
	return &s, nil
}

// Probe is one dependency's readiness check; Check returns its version.
type Probe struct {
	Name  string
	Check func(ctx context.Context) (Probed, error)
}

// Probed is what a probe found: the server's version and, for a store
// that reports one (Elasticsearch), its health and why.
type Probed struct {
	Version, Health, Note string
}

// Probes returns a readiness probe per client, in a stable order.
func (s *Set) Probes() []Probe {
	version := func(probe func(ctx context.Context) (string, error)) func(ctx context.Context) (Probed, error) {
		return func(ctx context.Context) (Probed, error) {
			v, err := probe(ctx)
			return Probed{Version: v}, err
		}
	}
	return []Probe{
		{"postgres", version(func(ctx context.Context) (string, error) { return ProbePostgres(ctx, s.Postgres) })},
		{"redis", version(func(ctx context.Context) (string, error) { return ProbeRedis(ctx, s.Redis) })},
		{"elasticsearch", func(ctx context.Context) (Probed, error) { return ProbeElasticsearch(ctx, s.Elasticsearch) }},
		{"etcd", version(func(ctx context.Context) (string, error) { return ProbeEtcd(ctx, s.Etcd) })},
	}
}

// Set is the four clients triad uses.
type Set struct {
	Postgres      *pgxpool.Pool
	Redis         redis.UniversalClient
	Elasticsearch *elasticsearch.Client
	Etcd          *clientv3.Client
}

// Close closes every client; Elasticsearch holds no resources to close.
func (s *Set) Close() error {
	var errs []error
	if s.Etcd != nil {
		errs = append(errs, s.Etcd.Close())
	}
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
	}
	if s.Postgres != nil {
		s.Postgres.Close()
	}
	return errors.Join(errs...)
}
