package stack

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The cluster profile's members, on ports counted from ClusterPortBase
// (20000 by default):
//
//	postgres        base+5432
//	redis-1…6       base+7001…base+7006 (cluster bus: +10000 each)
//	etcd-1…3        clients base+2379, +2389, +2399; peers one above each
//	elasticsearch-N http base+9200+N-1, transport base+9300+N-1
const (
	redisMembers = 6 // 3 masters, 3 replicas
	etcdMembers  = 3
)

// ClusterEndpoints are where the cluster profile's servers listen.
type ClusterEndpoints struct {
	PostgresURL       string   `json:"postgres_url"`
	RedisAddrs        []string `json:"redis_addrs"`
	EtcdEndpoints     []string `json:"etcd_endpoints"`
	ElasticsearchURLs []string `json:"elasticsearch_urls"`
}

// ClusterEndpoints returns the cluster profile's addresses.
func (c Config) ClusterEndpoints() ClusterEndpoints {
	var ep ClusterEndpoints
	pg := c.member(0)
	ep.PostgresURL = pg.Endpoints().PostgresURL
	for i := range redisMembers {
		ep.RedisAddrs = append(ep.RedisAddrs, c.member(i).Endpoints().RedisAddr)
	}
	for i := range etcdMembers {
		ep.EtcdEndpoints = append(ep.EtcdEndpoints, c.member(i).Endpoints().EtcdEndpoint)
	}
	for i := range c.ClusterESNodes {
		ep.ElasticsearchURLs = append(ep.ElasticsearchURLs, c.member(i).Endpoints().ElasticsearchURL)
	}
	return ep
}

// member is the configuration of the cluster profile's i-th member of
// each kind (0-based): the cluster directory and that member's ports.
func (c Config) member(i int) Config {
	m := c
	b := c.ClusterPortBase
	m.Dir = c.ClusterDir
	m.PostgresPort = b + 5432
	m.RedisPort = b + 7001 + i
	m.EtcdPort, m.EtcdPeerPort = b+2379+10*i, b+2380+10*i
	m.ESPort, m.ESTransportPort = b+9200+i, b+9300+i
	m.ESHeap = c.ClusterESHeap
	return m
}

// clusterMembers are the cluster profile's servers named: a kind
// (postgres, redis, etcd, elasticsearch) names all its members, a member's
// name (redis-4, etcd-2, elasticsearch-1) that one.
func (s *Stack) clusterMembers(as runAs, names []string) ([]server, error) {
	var kinds []string
	for _, n := range names {
		kind := n
		if k, num, ok := strings.Cut(n, "-"); ok {
			if _, err := strconv.Atoi(num); err == nil {
				kind = k
			}
		}
		if !slices.Contains(Names, kind) {
			return nil, fmt.Errorf("unknown server %q (want one of %v, or a member such as redis-1)", n, Names)
		}
		if !slices.Contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
	}
	var out []server
	for _, srv := range s.clusterServers(as, kinds) {
		kind, _, _ := strings.Cut(srv.Name(), "-")
		if slices.Contains(names, srv.Name()) || slices.Contains(names, kind) {
			out = append(out, srv)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(out, func(srv server) bool { k, _, _ := strings.Cut(srv.Name(), "-"); return srv.Name() == n || k == n }) {
			return nil, fmt.Errorf("the cluster profile has no server %q", n)
		}
	}
	return out, nil
}

// clusterServers are the cluster profile's members of the kinds named.
func (s *Stack) clusterServers(as runAs, names []string) []server {
	var out []server
	c := s.c
	for _, kind := range names {
		switch kind {
		case "postgres":
			out = append(out, &postgresServer{base: newBase(c.member(0), s.log, as, "postgres")})
		case "redis":
			for i := range redisMembers {
				out = append(out, &redisServer{base: newBase(c.member(i), s.log, as, fmt.Sprintf("redis-%d", i+1)), cluster: true})
			}
		case "etcd":
			var initial []string
			for i := range etcdMembers {
				m := c.member(i)
				initial = append(initial, fmt.Sprintf("etcd-%d=http://%s:%d", i+1, m.Host, m.EtcdPeerPort))
			}
			for i := range etcdMembers {
				out = append(out, &etcdServer{base: newBase(c.member(i), s.log, as, fmt.Sprintf("etcd-%d", i+1)), initialCluster: strings.Join(initial, ",")})
			}
		case "elasticsearch":
			var seeds, masters []string
			for i := range c.ClusterESNodes {
				m := c.member(i)
				seeds = append(seeds, fmt.Sprintf("%q", fmt.Sprintf("%s:%d", m.Host, m.ESTransportPort)))
				masters = append(masters, fmt.Sprintf("elasticsearch-%d", i+1))
			}
			for i := range c.ClusterESNodes {
				out = append(out, &esServer{base: newBase(c.member(i), s.log, as, fmt.Sprintf("elasticsearch-%d", i+1)), seeds: seeds, masters: masters})
			}
		}
	}
	return out
}

// formRedisCluster makes the cluster profile's six Redis nodes one
// cluster of three masters with a replica each, once: nodes that already
// form it (their nodes.conf survives restarts) are left alone. It waits
// until every node says cluster_state:ok.
func (s *Stack) formRedisCluster(ctx context.Context) error {
	addrs := s.c.ClusterEndpoints().RedisAddrs
	info := func(ctx context.Context, addr string) (map[string]string, error) {
		rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
		defer rdb.Close()
		txt, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER INFO: %w", addr, err)
		}
		out := map[string]string{}
		for _, line := range strings.Split(txt, "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
				out[k] = v
			}
		}
		return out, nil
	}
	first, err := info(ctx, addrs[0])
	if err != nil {
		return err
	}
	if first["cluster_state"] != "ok" && first["cluster_known_nodes"] == "1" && first["cluster_slots_assigned"] == "0" {
		s.log.Info("forming the redis cluster", "nodes", addrs)
		args := append([]string{"--cluster", "create"}, addrs...)
		args = append(args, "--cluster-replicas", "1", "--cluster-yes")
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(cctx, "redis-cli", args...)
		if _, err := exec.LookPath("redis-cli"); err != nil && s.useDocker(ctx) {
			// No local redis-cli: the one in the first node's container.
			cmd = exec.CommandContext(cctx, "docker", append([]string{"compose", "-f", s.c.ComposeFile, "-p", "triad", "exec", "-T", "redis-1", "redis-cli"}, args...)...)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("redis-cli --cluster create: %w: %s", err, lastLines(string(out), 10))
		}
	}
	// Ready when every node sees the cluster ok, all six nodes, and three
	// of them as replicas (a replica shows as a master until told).
	return poll(ctx, 60*time.Second, 300*time.Millisecond, func(ctx context.Context) error {
		for _, a := range addrs {
			in, err := info(ctx, a)
			if err != nil {
				return err
			}
			if in["cluster_state"] != "ok" || in["cluster_known_nodes"] != strconv.Itoa(redisMembers) {
				return fmt.Errorf("%s: cluster_state %s, %s nodes known", a, in["cluster_state"], in["cluster_known_nodes"])
			}
			rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, DialTimeout: time.Second})
			nodes, err := rdb.ClusterNodes(ctx).Result()
			rdb.Close()
			if err != nil {
				return fmt.Errorf("%s: CLUSTER NODES: %w", a, err)
			}
			if n := strings.Count(nodes, "slave"); n != redisMembers/2 {
				return fmt.Errorf("%s sees %d replicas, want %d", a, n, redisMembers/2)
			}
		}
		return nil
	})
}
