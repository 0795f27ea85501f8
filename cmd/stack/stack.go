package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stack manages the four servers of one Config.
type Stack struct {
	c   Config
	log *slog.Logger
}

// New returns a Stack for c; c must be valid.
func New(c Config, log *slog.Logger) (*Stack, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Stack{c: c, log: log.With("component", "stack")}, nil
}

// ServerStatus is one server's state as `stack status` reports it.
type ServerStatus struct {
	Name     string `json:"name"`
	Endpoint string `json:"endpoint"`
	Up       bool   `json:"up"`
	Version  string `json:"version,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Error    string `json:"error,omitempty"`
	Log      string `json:"log,omitempty"`
}

// Names lists the stack's servers in start order.
var Names = []string{"postgres", "redis", "etcd", "elasticsearch"}

// dockerAnswers reports whether a Docker engine (not just the client) answers.
func dockerAnswers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

func (s *Stack) useDocker(ctx context.Context) bool {
	switch s.c.Mode {
	case ModeDocker:
		return true
	case ModeLocal:
		return false
	}
	return dockerAnswers(ctx)
}

func (s *Stack) servers(ctx context.Context, names ...string) ([]server, error) {
	as, err := resolveUser(ctx, s.c.User)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.c.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("stack dir: %w", err)
	}
	if len(names) == 0 {
		names = Names
	}
	if s.c.Profile == ProfileCluster {
		return s.clusterMembers(as, names)
	}
	var out []server
	for _, n := range names {
		srv, err := newServer(n, newBase(s.c, s.log, as, n))
		if err != nil {
			return nil, err
		}
		out = append(out, srv)
	}
	return out, nil
}

func newServer(name string, b base) (server, error) {
	switch name {
	case "postgres":
		return &postgresServer{base: b}, nil
	case "redis":
		return &redisServer{base: b}, nil
	case "etcd":
		return &etcdServer{base: b}, nil
	case "elasticsearch":
		return &esServer{base: b}, nil
	}
	return nil, fmt.Errorf("unknown server %q (want one of %v)", name, Names)
}

// Up starts every server that is not answering, waits until each answers and
// returns their status. A server already answering is left alone, so a second
// Up is a no-op; a server whose process runs but does not answer is restarted.
// When a server cannot be brought up, its process is stopped and the error
// names the server, the reason and the last lines of its log.
func (s *Stack) Up(ctx context.Context, names ...string) ([]ServerStatus, error) {
	if s.useDocker(ctx) {
		return s.composeUp(ctx)
	}
	srvs, err := s.servers(ctx, names...)
	if err != nil {
		return nil, err
	}
	// Installs are serialised inside aptInstall; starts and waits run in parallel
	// because Elasticsearch alone takes tens of seconds.
	errs := make([]error, len(srvs))
	parallel(len(srvs), func(i int) { errs[i] = s.upOne(ctx, srvs[i]) })
	if err := errors.Join(errs...); err != nil {
		return s.statusOf(ctx, srvs), err
	}
	// The cluster profile's Redis nodes answer before they are a cluster.
	if s.c.Profile == ProfileCluster && (len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "redis") })) {
		if err := s.formRedisCluster(ctx); err != nil {
			return s.statusOf(ctx, srvs), err
		}
	}
	return s.statusOf(ctx, srvs), nil
}

func (s *Stack) upOne(ctx context.Context, srv server) error {
	log := s.log.With("server", srv.Name())
	if v, err := srv.probe(ctx); err == nil {
		log.Info("already running", "version", v, "port", srv.Port())
		return nil
	}
	if pid := srv.pid(); alive(pid) {
		// Perhaps still starting (a concurrent up): give it its normal time.
		log.Info("process runs but does not answer yet; waiting", "pid", pid)
		if err := poll(ctx, srv.readyTimeout(), 500*time.Millisecond, func(ctx context.Context) error { _, err := srv.probe(ctx); return err }); err == nil {
			return nil
		}
		log.Warn("restarting unresponsive server", "pid", pid)
		if err := srv.stop(ctx); err != nil {
			return fmt.Errorf("%s: stop unresponsive pid %d: %w", srv.Name(), pid, err)
		}
	}
	if !portFree(s.c.Host, srv.Port()) {
		key := "stack." + srv.Name() + "_port"
		if s.c.Profile == ProfileCluster {
			key = "stack.cluster_port_base" // members' ports are counted from it
		}
		return fmt.Errorf("%s: port %s:%d is taken by a process that is not this stack's %s; stop it or choose another port (%s)",
			srv.Name(), s.c.Host, srv.Port(), srv.Name(), key)
	}
	if err := srv.prepare(ctx); err != nil {
		return fmt.Errorf("%s: prepare: %w", srv.Name(), err)
	}
	log.Info("starting", "port", srv.Port(), "log", srv.logPath())
	startErr := srv.start(ctx)
	if startErr == nil {
		startErr = poll(ctx, srv.readyTimeout(), 300*time.Millisecond, func(ctx context.Context) error {
			_, err := srv.probe(ctx)
			if err != nil && !alive(srv.startedPid()) {
				return fmt.Errorf("%w: %w", errExited, err)
			}
			return err
		})
	}
	if startErr != nil {
		// Leave nothing half-started that a later status might mistake for up.
		_ = srv.stop(context.WithoutCancel(ctx))
		return fmt.Errorf("%s did not come up: %w\n--- last lines of %s ---\n%s", srv.Name(), startErr, srv.logPath(), tail(srv.logPath(), 20))
	}
	log.Info("up", "port", srv.Port())
	return nil
}

// Down stops every server of the stack; data stays in Dir.
func (s *Stack) Down(ctx context.Context, names ...string) error {
	if s.useDocker(ctx) {
		if s.c.Profile == ProfileCluster {
			return s.compose(ctx, "--profile", ProfileCluster, "down")
		}
		return s.compose(ctx, "down")
	}
	srvs, err := s.servers(ctx, names...)
	if err != nil {
		return err
	}
	errs := make([]error, len(srvs))
	parallel(len(srvs), func(i int) {
		if err := srvs[i].stop(ctx); err != nil {
			errs[i] = fmt.Errorf("%s: %w", srvs[i].Name(), err)
		}
		s.log.Info("stopped", "server", srvs[i].Name())
	})
	return errors.Join(errs...)
}

// Status probes every server.
func (s *Stack) Status(ctx context.Context) ([]ServerStatus, error) {
	srvs, err := s.servers(ctx)
	if err != nil {
		return nil, err
	}
	return s.statusOf(ctx, srvs), nil
}

func (s *Stack) statusOf(ctx context.Context, srvs []server) []ServerStatus {
	out := make([]ServerStatus, len(srvs))
	parallel(len(srvs), func(i int) {
		srv := srvs[i]
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		st := ServerStatus{Name: srv.Name(), Endpoint: srv.endpoint(), Pid: srv.pid(), Log: srv.logPath()}
		if v, err := srv.probe(pctx); err != nil {
			st.Error = err.Error()
		} else {
			st.Up, st.Version = true, v
		}
		out[i] = st
	})
	return out
}

// parallel runs fn(0..n-1) concurrently and waits for all of them.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(i)
		}()
	}
	wg.Wait()
}

func (s *Stack) compose(ctx context.Context, args ...string) error {
	full := append([]string{"compose", "-f", s.c.ComposeFile, "-p", "triad"}, args...)
	cmd := exec.CommandContext(ctx, "docker", full...)
	cmd.Env = append(os.Environ(),
		"TRIAD_STACK_POSTGRES_PORT="+strconv.Itoa(s.c.PostgresPort),
		"TRIAD_STACK_REDIS_PORT="+strconv.Itoa(s.c.RedisPort),
		"TRIAD_STACK_ETCD_PORT="+strconv.Itoa(s.c.EtcdPort),
		"TRIAD_STACK_ELASTICSEARCH_PORT="+strconv.Itoa(s.c.ESPort),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker %v: %w: %s", full, err, lastLines(string(out), 20))
	}
	return nil
}

func (s *Stack) composeUp(ctx context.Context) ([]ServerStatus, error) {
	s.log.Info("using docker compose", "file", s.c.ComposeFile, "profile", s.c.Profile)
	// The probes need no local binaries; they talk to the published ports.
	var srvs []server
	if s.c.Profile == ProfileCluster {
		srvs = s.clusterServers(runAs{}, Names)
		args := []string{"--profile", ProfileCluster, "up", "-d", "--wait"}
		for _, srv := range srvs {
			name := srv.Name()
			if name == "postgres" {
				name = "postgres-cluster"
			}
			args = append(args, name)
		}
		if err := s.compose(ctx, args...); err != nil {
			return nil, err
		}
	} else {
		if err := s.compose(ctx, "up", "-d", "--wait"); err != nil {
			return nil, err
		}
		for _, n := range Names {
			srv, _ := newServer(n, base{c: s.c, log: s.log})
			srvs = append(srvs, srv)
		}
	}
	var errs []error
	for _, srv := range srvs {
		if err := poll(ctx, srv.readyTimeout(), time.Second, func(ctx context.Context) error { _, err := srv.probe(ctx); return err }); err != nil {
			errs = append(errs, fmt.Errorf("%s (docker): %w", srv.Name(), err))
		}
	}
	if len(errs) == 0 && s.c.Profile == ProfileCluster {
		if err := s.formRedisCluster(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return s.statusOf(ctx, srvs), errors.Join(errs...)
}
