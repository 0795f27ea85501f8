// Package stacktest gives integration tests isolated namespaces on the shared
// real servers of the local stack (a Postgres schema, a Redis key prefix, an
// Elasticsearch index prefix, an etcd key prefix), cleaned up after the test,
// and private server instances for tests that stop or break a server.
//
// The servers are those `triad stack up` starts (or those TRIAD_* variables
// and TRIAD_CONFIG point at). A server that does not answer fails the test
// with a message saying how to start it. Only `go test -short` skips
// integration tests; `make test` never passes -short.
package stacktest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/settings"
	"github.com/triad-dev/triad/cmd/stack"
	"github.com/triad-dev/triad/migrations"
)

// Servers are the settings of the servers the tests use, by the keys of
// triad's configuration (postgres, redis, elasticsearch, etcd, stack).
// The rest of triad's configuration is config's; configtest builds it for a
// namespace, so this package imports none of the product.
type Servers struct {
	Postgres      clients.Postgres      `yaml:"postgres"`
	Redis         clients.Redis         `yaml:"redis"`
	Elasticsearch clients.Elasticsearch `yaml:"elasticsearch"`
	Etcd          clients.Etcd          `yaml:"etcd"`
	Stack         stack.Config          `yaml:"stack"`
}

var (
	loadOnce sync.Once
	loaded   Servers
	loadErr  error
)

// ServerSettings returns the servers the tests use: the local stack's
// defaults, then the file TRIAD_CONFIG names (its other keys are
// ignored), then TRIAD_* variables, as `triad serve` reads them.
func ServerSettings(t testing.TB) Servers {
	t.Helper()
	integration(t)
	loadOnce.Do(func() { loaded, loadErr = loadServers(os.Getenv("TRIAD_CONFIG"), os.Environ()) })
	if loadErr != nil {
		t.Fatalf("stacktest: configuration: %v", loadErr)
	}
	return loaded
}

func loadServers(path string, env []string) (Servers, error) {
	s := Servers{Postgres: clients.DefaultPostgres(), Redis: clients.DefaultRedis(),
		Elasticsearch: clients.DefaultElasticsearch(), Etcd: clients.DefaultEtcd(), Stack: stack.DefaultConfig()}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return s, fmt.Errorf("config file: %w", err)
		}
		if err := settings.DecodeYAML(b, &s, false); err != nil {
			return s, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := settings.ApplyEnv(&s, settings.EnvMap(env)); err != nil {
		return s, err
	}
	if s.Stack.Profile == stack.ProfileCluster {
		// The cluster lane (TRIAD_STACK_PROFILE=cluster): the same tests on
		// the cluster profile's Redis Cluster, Elasticsearch nodes, etcd
		// members and Postgres.
		ep := s.Stack.ClusterEndpoints()
		u, err := url.Parse(ep.PostgresURL)
		if err != nil {
			return s, fmt.Errorf("cluster profile: %w", err)
		}
		if s.Postgres.Port, err = strconv.Atoi(u.Port()); err != nil {
			return s, fmt.Errorf("cluster profile: postgres port: %w", err)
		}
		s.Redis.Addrs, s.Elasticsearch.Addresses, s.Etcd.Endpoints = ep.RedisAddrs, ep.ElasticsearchURLs, ep.EtcdEndpoints
	}
	return s, errors.Join(s.Postgres.Credentials.Resolve("postgres"), s.Redis.Credentials.Resolve("redis"),
		s.Elasticsearch.Resolve(), s.Etcd.Credentials.Resolve("etcd"))
}

func integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the real servers (run `make test`, or `triad stack up` then go test without -short)")
	}
}

// Logger returns a logger that writes through t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Namespace is one test's isolated slice of the shared servers.
type Namespace struct {
	// ID is unique per test: lowercase letters, digits and underscores.
	ID string
	// Schema is the Postgres schema every connection's search_path names.
	Schema      string
	RedisPrefix string
	// IndexPrefix prefixes every Elasticsearch index the test creates.
	IndexPrefix string
	EtcdPrefix  string
	// Servers are the servers' settings, Postgres's pointing at Schema.
	Servers Servers
	Clients *clients.Set
}

var (
	nonWord = regexp.MustCompile(`[^a-z0-9]+`)
	keptID  = regexp.MustCompile(`^[a-z0-9_]{1,40}$`)
)

func newID(t testing.TB) string {
	name := nonWord.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 30 {
		name = name[:30]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t_" + strings.Trim(name, "_") + "_" + hex.EncodeToString(b)
}

// New creates a namespace on all four servers and registers its clean-up.
// Each server must answer, or the test fails naming the server.
func New(t testing.TB) *Namespace {
	t.Helper()
	return open(t, newID(t), false)
}

// Kept opens the namespace id (lowercase letters, digits and _), creating
// it if it does not exist, and leaves it in place when the test ends: a
// benchmark whose data takes half an hour to load (the 10M sweep) loads
// it once and is run again on it. Remove it with DropKept.
func Kept(t testing.TB, id string) *Namespace {
	t.Helper()
	if !keptID.MatchString(id) {
		t.Fatalf("stacktest: kept namespace %q: want lowercase letters, digits and _", id)
	}
	return open(t, "k_"+id, true)
}

func open(t testing.TB, id string, keep bool) *Namespace {
	t.Helper()
	base := ServerSettings(t)
	ns := &Namespace{ID: id, Schema: id, RedisPrefix: id + ":", IndexPrefix: strings.ReplaceAll(id, "_", "-") + "-", EtcdPrefix: "/" + id + "/"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The schema must exist before a pool with that search_path is useful.
	admin, err := clients.NewPostgres(base.Postgres)
	if err != nil {
		t.Fatalf("stacktest: postgres config: %v", err)
	}
	defer admin.Close()
	create := "CREATE SCHEMA "
	if keep {
		create += "IF NOT EXISTS "
	}
	if _, err := admin.Exec(ctx, create+pgx.Identifier{id}.Sanitize()); err != nil {
		fail(t, "postgres", base.Postgres.Host, base.Postgres.Port, err)
	}
	if !keep {
		t.Cleanup(func() { dropSchema(t, base, id) })
	}

	cfg := base
	cfg.Postgres.Schema = id
	ns.Servers = cfg
	set, err := clients.Build(cfg.Postgres, cfg.Redis, cfg.Elasticsearch, cfg.Etcd)
	if err != nil {
		t.Fatalf("stacktest: clients: %v", err)
	}
	ns.Clients = set
	if _, ok := set.Redis.(*redis.ClusterClient); cfg.Stack.Profile == stack.ProfileCluster && !ok {
		t.Fatalf("stacktest: the cluster lane's Redis is not a Redis Cluster (redis.addrs %v)", cfg.Redis.Addrs)
	}
	if keep {
		t.Cleanup(func() { _ = ns.Clients.Close() })
	} else {
		t.Cleanup(func() { ns.cleanup(t) })
	}

	at := map[string]string{
		"postgres": fmt.Sprintf("%s:%d", cfg.Postgres.Host, cfg.Postgres.Port), "redis": cmp.Or(strings.Join(cfg.Redis.Addrs, ","), cfg.Redis.Addr),
		"elasticsearch": strings.Join(cfg.Elasticsearch.Addresses, ","), "etcd": strings.Join(cfg.Etcd.Endpoints, ","),
	}
	for _, p := range set.Probes() {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.Check(pctx)
		pcancel()
		if err != nil {
			t.Fatalf("stacktest: %s at %s is not answering: %v\n%s", p.Name, at[p.Name], err, startHint)
		}
	}
	return ns
}

func fail(t testing.TB, name, host string, port int, err error) {
	t.Helper()
	t.Fatalf("stacktest: %s at %s:%d is not answering: %v\n%s", name, host, port, err, startHint)
}

const startHint = "start the stack with `make stack-up` (or `triad stack up`); `make test` does this itself"

func dropSchema(t testing.TB, base Servers, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := clients.NewPostgres(base.Postgres)
	if err != nil {
		return
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{id}.Sanitize()+" CASCADE"); err != nil {
		t.Logf("stacktest: drop schema %s: %v", id, err)
	}
}

// DropKept removes a kept namespace from every server.
func (ns *Namespace) DropKept(t testing.TB) {
	t.Helper()
	dropSchema(t, ns.Servers, ns.ID)
	ns.cleanup(t)
}

// cleanup deletes what the test left under its prefixes, then closes
// clients. A large namespace (10M Redis keys) takes minutes, not seconds.
func (ns *Namespace) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	if err := DeleteRedisPrefix(ctx, ns.Clients.Redis, ns.RedisPrefix); err != nil {
		t.Logf("stacktest: redis clean-up %s: %v", ns.RedisPrefix, err)
	}
	if res, err := ns.Clients.Elasticsearch.Indices.Delete([]string{ns.IndexPrefix + "*"},
		ns.Clients.Elasticsearch.Indices.Delete.WithContext(ctx),
		ns.Clients.Elasticsearch.Indices.Delete.WithAllowNoIndices(true),
		ns.Clients.Elasticsearch.Indices.Delete.WithExpandWildcards("all")); err != nil {
		t.Logf("stacktest: elasticsearch clean-up %s: %v", ns.IndexPrefix, err)
	} else {
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	if _, err := ns.Clients.Etcd.Delete(ctx, ns.EtcdPrefix, clientv3.WithPrefix()); err != nil {
		t.Logf("stacktest: etcd clean-up %s: %v", ns.EtcdPrefix, err)
	}
	_ = ns.Clients.Close()
}

// DeleteRedisPrefix removes every key starting with prefix.
func DeleteRedisPrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		// SCAN walks one node: walk every master; keys of several slots
		// cannot share one UNLINK, so each is its own (pipelined).
		return cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return unlinkMatching(ctx, m, prefix, func(keys []string) error {
				_, err := m.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				})
				return err
			})
		})
	}
	return unlinkMatching(ctx, rdb, prefix, func(keys []string) error { return rdb.Unlink(ctx, keys...).Err() })
}

// RedisKeys lists the keys matching pattern, on every master when rdb is a
// Redis Cluster (SCAN and KEYS see one node each).
func RedisKeys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	add := func(node redis.Cmdable) error {
		iter := node.Scan(ctx, 0, pattern, 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		mu.Lock()
		out = append(out, keys...)
		mu.Unlock()
		return iter.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return add(m) })
		return out, err
	}
	return out, add(rdb)
}

// unlinkMatching scans rdb for prefix* and hands the keys to unlink in
// batches of 1000.
func unlinkMatching(ctx context.Context, rdb redis.Cmdable, prefix string, unlink func([]string) error) error {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := unlink(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return unlink(batch)
	}
	return nil
}

// Pool is shorthand for the namespace's Postgres pool.
func (ns *Namespace) Pool() *pgxpool.Pool { return ns.Clients.Postgres }

// Redis is shorthand for the namespace's Redis client: the stack's single
// Redis, or in the cluster lane its Redis Cluster.
func (ns *Namespace) Redis() redis.UniversalClient { return ns.Clients.Redis }

// ES is shorthand for the namespace's Elasticsearch client.
func (ns *Namespace) ES() *elasticsearch.Client { return ns.Clients.Elasticsearch }

// Etcd is shorthand for the namespace's etcd client.
func (ns *Namespace) Etcd() *clientv3.Client { return ns.Clients.Etcd }

// Migrate applies every migration to the namespace's schema; the test
// fails if one does not apply.
func (ns *Namespace) Migrate(t testing.TB) {
	t.Helper()
	m, err := migrations.New(ns.Pool(), ns.ID, Logger(t))
	if err != nil {
		t.Fatalf("stacktest: migrations: %v", err)
	}
	defer m.Close()
	if _, err := m.Up(context.Background()); err != nil {
		t.Fatalf("stacktest: migrate schema %s: %v", ns.ID, err)
	}
}

// Private is a server instance of the test's own, started by the stack code
// on free ports in a temporary directory, which the test may stop, restart
// or break without disturbing the shared servers.
type Private struct {
	Name   string
	Config stack.Config
	st     *stack.Stack
}

// StartPrivate starts a private instance of one server (postgres, redis,
// etcd or elasticsearch) and stops it when the test ends.
func StartPrivate(t testing.TB, name string) *Private {
	t.Helper()
	integration(t)
	base := ServerSettings(t).Stack
	dir := PrivateDir(t)
	c := base
	c.Dir, c.Mode, c.Profile = dir, stack.ModeLocal, stack.ProfileSingle
	targets := []*int{&c.PostgresPort, &c.RedisPort, &c.EtcdPort, &c.EtcdPeerPort, &c.ESPort, &c.ESTransportPort}
	ports, err := stack.FreePorts(len(targets))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range targets {
		*p = ports[i]
	}
	st, err := stack.New(c, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &Private{Name: name, Config: c, st: st}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = st.Down(ctx, name)
	})
	p.Start(t)
	return p
}

// PrivateDir makes a directory for a private stack, removed after the test.
// It must be reachable by the unprivileged user the servers run as, so it is
// not under t.TempDir() (mode 0700 in root's temporary tree).
func PrivateDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "triad-private-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Start starts (or restarts) the private server and waits until it answers.
func (p *Private) Start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if _, err := p.st.Up(ctx, p.Name); err != nil {
		t.Fatalf("stacktest: private %s: %v", p.Name, err)
	}
}

// Stop stops the private server.
func (p *Private) Stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.st.Down(ctx, p.Name); err != nil {
		t.Fatalf("stacktest: stop private %s: %v", p.Name, err)
	}
}

// Endpoints are where the private server listens.
func (p *Private) Endpoints() stack.Endpoints { return p.Config.Endpoints() }

// Pid is the private server's process ID (0 when it is not running): a
// fault test stops it with SIGSTOP to hang it, as a stalled host would.
func (p *Private) Pid(t testing.TB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sts, err := p.st.Status(ctx)
	if err != nil {
		t.Fatalf("stacktest: status of private %s: %v", p.Name, err)
	}
	for _, s := range sts {
		if s.Name == p.Name {
			return s.Pid
		}
	}
	return 0
}

// Pause hangs the private server as a stalled host would: SIGSTOP to its
// process and every descendant (Postgres serves each connection from a
// child process). The server keeps its sockets, so clients connect and
// send but get no answer until Resume. The test's end resumes it.
func (p *Private) Pause(t testing.TB) { t.Helper(); pauseTree(t, p.Name, p.Pid(t)) }

// Resume continues a paused private server (SIGCONT to its process tree).
func (p *Private) Resume(t testing.TB) { t.Helper(); resumeTree(p.Pid(t)) }

// pauseTree stops root and its descendants with SIGSTOP; the test's end
// continues them.
func pauseTree(t testing.TB, name string, root int) {
	t.Helper()
	pids := processTree(root)
	if len(pids) == 0 {
		t.Fatalf("stacktest: %s is not running", name)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	t.Cleanup(func() { resumeTree(pids[0]) })
}

// resumeTree continues root and its descendants (SIGCONT).
func resumeTree(root int) {
	for _, pid := range processTree(root) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

// processTree is root and its descendants, from /proc.
func processTree(root int) []int {
	if root <= 0 {
		return nil
	}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		var state string
		var ppid int
		if _, err := fmt.Sscan(string(rest), &state, &ppid); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
