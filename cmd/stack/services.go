package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/triad-dev/triad/cmd/internal/clients"
)

// server is one of the stack's four servers run from local binaries.
type server interface {
	// Name is the server's short name: postgres, redis, etcd, elasticsearch.
	Name() string
	Port() int
	// prepare installs what is missing and initialises the data directory.
	prepare(ctx context.Context) error
	// start launches the server; it does not wait until it answers.
	start(ctx context.Context) error
	// probe answers the server's version when it serves requests.
	probe(ctx context.Context) (string, error)
	// pid is the server process's pid, or 0.
	pid() int
	// startedPid is the process start launched (a launcher may precede the
	// server's own pid); when it has exited, the server will not come up.
	startedPid() int
	stop(ctx context.Context) error
	logPath() string
	readyTimeout() time.Duration
	// endpoint is where clients reach the server.
	endpoint() string
}

// base is what every server has: its configuration (for a member of a
// cluster, a copy holding that member's ports), its name (postgres, or
// redis-1 … for a member) and its directory, Dir/<name>.
type base struct {
	c    Config
	log  *slog.Logger
	as   runAs
	name string
	dir  string
}

func newBase(c Config, log *slog.Logger, as runAs, name string) base {
	return base{c: c, log: log.With("server", name), as: as, name: name, dir: filepath.Join(c.Dir, name)}
}

func (b base) Name() string { return b.name }

func (b base) logPath() string { return filepath.Join(b.dir, "server.log") }
func (b base) pidPath() string { return filepath.Join(b.dir, "server.pid") }

// ---- Postgres ----

type postgresServer struct {
	base
	bin string
}

func (s *postgresServer) Port() int                   { return s.c.PostgresPort }
func (s *postgresServer) readyTimeout() time.Duration { return 60 * time.Second }
func (s *postgresServer) endpoint() string            { return s.c.Endpoints().PostgresURL }
func (s *postgresServer) data() string                { return filepath.Join(s.dir, "data") }

func (s *postgresServer) prepare(ctx context.Context) error {
	bin, err := postgresBinDir(ctx, s.log, s.c.PostgresBinDir)
	if err != nil {
		return err
	}
	s.bin = bin
	if err := s.as.mkdir(s.dir); err != nil {
		return err
	}
	marker := filepath.Join(s.dir, ".initialised")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	// A half-finished initdb leaves a data directory Postgres cannot use.
	if err := os.RemoveAll(s.data()); err != nil {
		return err
	}
	s.log.Info("initialising data directory", "dir", s.data())
	if err := s.as.run(ctx, filepath.Join(bin, "initdb"), "-D", s.data(), "-U", s.c.PostgresUser,
		"--auth=trust", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	return os.WriteFile(marker, nil, 0o644)
}

func (s *postgresServer) start(ctx context.Context) error {
	// max_wal_size: bulk loads of millions of profiles would otherwise force
	// a checkpoint every 1 GB of WAL, each followed by full-page writes.
	opts := fmt.Sprintf("-p %d -c listen_addresses=%s -k %s -c max_connections=300 -c shared_buffers=256MB -c max_wal_size=8GB -c checkpoint_timeout=15min",
		s.c.PostgresPort, s.c.Host, s.dir)
	// pg_ctl forks the postmaster into our detached session and returns.
	return s.as.run(ctx, filepath.Join(s.bin, "pg_ctl"), "-D", s.data(), "-l", s.logPath(), "-o", opts, "start")
}

func (s *postgresServer) probe(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s@%s:%d/postgres?sslmode=disable&connect_timeout=2", s.c.PostgresUser, s.c.Host, s.c.PostgresPort))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", err
	}
	// The stack's database is part of "up": create it once the server answers.
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.c.PostgresDB).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.c.PostgresDB}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", s.c.PostgresDB, err)
		}
	}
	return v, nil
}

func (s *postgresServer) startedPid() int { return s.pid() }

func (s *postgresServer) pid() int {
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	p, _ := strconv.Atoi(strings.TrimSpace(first))
	return p
}

func (s *postgresServer) stop(ctx context.Context) error {
	// SIGINT is Postgres's "fast" shutdown: it does not wait for clients.
	terminate(ctx, s.pid(), syscall.SIGINT, 30*time.Second)
	return nil
}

// ---- Redis ----

type redisServer struct {
	base
	// cluster runs the node with cluster mode on (a member of the cluster
	// profile's Redis Cluster, formed by Stack.formRedisCluster).
	cluster bool
}

func (s *redisServer) Port() int                   { return s.c.RedisPort }
func (s *redisServer) readyTimeout() time.Duration { return 20 * time.Second }
func (s *redisServer) endpoint() string            { return s.c.Endpoints().RedisAddr }
func (s *redisServer) pid() int                    { return readPid(s.pidPath()) }
func (s *redisServer) startedPid() int             { return s.pid() }

func (s *redisServer) prepare(ctx context.Context) error {
	if _, err := ensureBinary(ctx, s.log, "redis-server", "redis-server"); err != nil {
		return err
	}
	return s.as.mkdir(s.dir)
}

// start runs Redis with an append-only file fsynced every second (and RDB
// snapshots hourly), so a crash loses at most the last second of
// acknowledged writes, as a production cache with persistence would; triad
// notices the restart and re-warms (docs/operations.md).
func (s *redisServer) start(context.Context) error {
	args := []string{"--bind", s.c.Host, "--port", strconv.Itoa(s.c.RedisPort),
		"--dir", s.dir, "--save", "3600 1", "--appendonly", "yes", "--appendfsync", "everysec",
		"--daemonize", "no", "--maxclients", "2000"}
	if s.cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "3000")
	}
	cmd := s.as.command("redis-server", args...)
	return startDetached(cmd, s.logPath(), s.pidPath())
}

func (s *redisServer) probe(ctx context.Context) (string, error) {
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", s.c.Host, s.c.RedisPort), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	return clients.ProbeRedis(ctx, rdb)
}

func (s *redisServer) stop(ctx context.Context) error {
	terminate(ctx, s.pid(), syscall.SIGTERM, 10*time.Second)
	return nil
}

// ---- etcd ----

type etcdServer struct {
	base
	bin string
	// initialCluster is etcd's --initial-cluster (name=peer URL, …); empty:
	// a single member named triad-stack.
	initialCluster string
}

// member is the etcd member's name.
func (s *etcdServer) member() string {
	if s.initialCluster == "" {
		return "triad-stack"
	}
	return s.name
}

func (s *etcdServer) Port() int                   { return s.c.EtcdPort }
func (s *etcdServer) readyTimeout() time.Duration { return 30 * time.Second }
func (s *etcdServer) endpoint() string            { return s.c.Endpoints().EtcdEndpoint }
func (s *etcdServer) pid() int                    { return readPid(s.pidPath()) }
func (s *etcdServer) startedPid() int             { return s.pid() }

func (s *etcdServer) prepare(ctx context.Context) error {
	bin, err := ensureBinary(ctx, s.log, "etcd", "etcd-server")
	if err != nil {
		return err
	}
	s.bin = bin
	return s.as.mkdir(s.dir)
}

func (s *etcdServer) start(context.Context) error {
	client := fmt.Sprintf("http://%s:%d", s.c.Host, s.c.EtcdPort)
	peer := fmt.Sprintf("http://%s:%d", s.c.Host, s.c.EtcdPeerPort)
	initial := s.initialCluster
	if initial == "" {
		initial = "triad-stack=" + peer
	}
	cmd := s.as.command(s.bin, "--name", s.member(), "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial, "--initial-cluster-token", "triad-stack", "--auto-compaction-retention", "1")
	return startDetached(cmd, s.logPath(), s.pidPath())
}

func (s *etcdServer) probe(ctx context.Context) (string, error) {
	base := fmt.Sprintf("http://%s:%d", s.c.Host, s.c.EtcdPort)
	var health struct {
		Health string `json:"health"`
	}
	if err := getJSON(ctx, base+"/health", &health); err != nil {
		return "", err
	}
	if health.Health != "true" {
		return "", fmt.Errorf("health %q", health.Health)
	}
	var ver struct {
		Server string `json:"etcdserver"`
	}
	if err := getJSON(ctx, base+"/version", &ver); err != nil {
		return "", err
	}
	return ver.Server, nil
}

func (s *etcdServer) stop(ctx context.Context) error {
	terminate(ctx, s.pid(), syscall.SIGTERM, 10*time.Second)
	return nil
}

// ---- Elasticsearch ----

type esServer struct {
	base
	java string
	home string
	// seeds are the transport addresses of every node of a multi-node
	// cluster (and masters their node names); empty: a single node.
	seeds, masters []string
}

func (s *esServer) Port() int                   { return s.c.ESPort }
func (s *esServer) readyTimeout() time.Duration { return 180 * time.Second }
func (s *esServer) endpoint() string            { return s.c.Endpoints().ElasticsearchURL }
func (s *esServer) pid() int                    { return readPid(filepath.Join(s.dir, "es.pid")) }
func (s *esServer) startedPid() int             { return readPid(filepath.Join(s.dir, "launcher.pid")) }

func (s *esServer) prepare(ctx context.Context) error {
	java, err := javaHome(ctx, s.log, s.c.JavaHome)
	if err != nil {
		return err
	}
	s.java = java
	zipPath, err := esZip(ctx, s.log, s.c)
	if err != nil {
		return err
	}
	if err := s.as.mkdir(s.dir); err != nil {
		return err
	}
	s.home = filepath.Join(s.dir, "elasticsearch-"+s.c.ESVersion)
	marker := s.home + ".extracted"
	if _, err := os.Stat(marker); err != nil {
		// A previous extraction may have stopped half-way.
		if err := os.RemoveAll(s.home); err != nil {
			return err
		}
		s.log.Info("extracting elasticsearch", "zip", zipPath)
		if err := unzip(zipPath, s.dir); err != nil {
			return err
		}
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			return err
		}
	}
	// Rewritten on every start, so a changed port or heap takes effect.
	yml := fmt.Sprintf(`# written by triad stack; edits are overwritten
cluster.name: triad-stack
node.name: %s
network.host: %s
http.port: %d
transport.port: %d
%s
path.data: %s
path.logs: %s
xpack.security.enabled: false
# Keep the node writable when the disk is nearly full (a dev machine).
cluster.routing.allocation.disk.threshold_enabled: false
# Test clean-up deletes its own prefixed indices by wildcard.
action.destructive_requires_name: false
`, s.nodeName(), s.c.Host, s.c.ESPort, s.c.ESTransportPort, s.discovery(), filepath.Join(s.dir, "data"), filepath.Join(s.dir, "logs"))
	if err := os.WriteFile(filepath.Join(s.home, "config", "elasticsearch.yml"), []byte(yml), 0o644); err != nil {
		return err
	}
	heap := fmt.Sprintf("-Xms%[1]s\n-Xmx%[1]s\n", s.c.ESHeap)
	if err := os.WriteFile(filepath.Join(s.home, "config", "jvm.options.d", "heap.options"), []byte(heap), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"data", "logs", "tmp"} {
		if err := s.as.mkdir(filepath.Join(s.dir, d)); err != nil {
			return err
		}
	}
	return s.as.chownTree(s.home)
}

func (s *esServer) nodeName() string {
	if len(s.seeds) == 0 {
		return "triad-stack"
	}
	return s.name
}

// discovery is elasticsearch.yml's discovery settings: a single node, or
// the seeds and initial masters of a cluster formed on first start.
func (s *esServer) discovery() string {
	if len(s.seeds) == 0 {
		return "discovery.type: single-node"
	}
	return fmt.Sprintf("discovery.seed_hosts: [%s]\ncluster.initial_master_nodes: [%s]", strings.Join(s.seeds, ", "), strings.Join(s.masters, ", "))
}

func (s *esServer) start(context.Context) error {
	cmd := s.as.command(filepath.Join(s.home, "bin", "elasticsearch"), "-p", filepath.Join(s.dir, "es.pid"))
	cmd.Env = append(cmd.Env, "ES_JAVA_HOME="+s.java, "ES_TMPDIR="+filepath.Join(s.dir, "tmp"), "ES_JAVA_OPTS=")
	// The launcher's own pid is not the server's: Elasticsearch writes es.pid.
	return startDetached(cmd, s.logPath(), filepath.Join(s.dir, "launcher.pid"))
}

func (s *esServer) probe(ctx context.Context) (string, error) {
	base := fmt.Sprintf("http://%s:%d", s.c.Host, s.c.ESPort)
	var health struct {
		Status string `json:"status"`
	}
	if err := getJSON(ctx, base+"/_cluster/health?wait_for_status=yellow&timeout=1s", &health); err != nil {
		return "", err
	}
	if health.Status != "green" && health.Status != "yellow" {
		return "", fmt.Errorf("cluster health %q", health.Status)
	}
	var nodes struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	if err := getJSON(ctx, base+"/_nodes/_local?filter_path=nodes.*.version", &nodes); err != nil {
		return "", err
	}
	for _, n := range nodes.Nodes {
		return n.Version, nil
	}
	return "", errors.New("no local node")
}

func (s *esServer) stop(ctx context.Context) error {
	terminate(ctx, s.pid(), syscall.SIGTERM, 60*time.Second)
	terminate(ctx, readPid(filepath.Join(s.dir, "launcher.pid")), syscall.SIGTERM, 10*time.Second)
	return nil
}

func getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, lastLines(string(b), 3))
	}
	return json.Unmarshal(b, v)
}
