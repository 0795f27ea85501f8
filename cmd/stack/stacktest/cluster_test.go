package stacktest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterProfile brings up the cluster profile from the same packages
// as the single stack and checks each part is what it claims: a Redis
// Cluster of 3 masters with a replica each that fails over when a master
// is killed and takes it back as a replica; 3 etcd members that keep
// serving writes with one hung; 3 Elasticsearch nodes, green, placing
// replica shards on other nodes. A second `up` is a no-op.
func TestClusterProfile(t *testing.T) {
	t.Parallel()
	start := time.Now()
	cl := StartCluster(t)
	t.Logf("measured: cluster profile up in %s (13 servers)", time.Since(start).Round(time.Millisecond))
	ctx := t.Context()

	// Idempotent.
	again := time.Now()
	cl.Start(t)
	require.Less(t, time.Since(again), 20*time.Second, "a second up finds everything answering")
	sts := cl.Status(t)
	require.Len(t, sts, 13)
	for _, s := range sts {
		require.True(t, s.Up, "%s: %s", s.Name, s.Error)
	}

	// Redis Cluster: 3 masters, each with one replica; keys spread over all.
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Endpoints.RedisAddrs, DialTimeout: 2 * time.Second})
	defer rc.Close()
	masters, replicas := clusterRoles(t, ctx, rc)
	require.Len(t, masters, 3)
	require.Len(t, replicas, 3)
	for _, m := range replicas {
		require.Contains(t, masters, m, "each replica follows a master")
	}
	for i := range 1000 {
		require.NoError(t, rc.Set(ctx, fmt.Sprintf("k:%d", i), i, 0).Err())
	}
	perMaster := map[string]int64{}
	require.NoError(t, rc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n, err := m.DBSize(ctx).Result()
		if err == nil {
			perMaster[m.Options().Addr] = n
			// Replicated before the failover below.
			err = m.Do(ctx, "WAIT", 1, 5000).Err()
		}
		return err
	}))
	require.Len(t, perMaster, 3)
	for addr, n := range perMaster {
		require.Positive(t, n, "master %s holds some of the keys", addr)
	}

	// Kill a master: its replica takes over, no key is lost; restarted,
	// the old master comes back as a replica.
	victim := ""
	for _, addr := range masterAddrs(t, ctx, rc) {
		victim = addr
		break
	}
	member := ""
	for i, a := range cl.Endpoints.RedisAddrs {
		if a == victim {
			member = fmt.Sprintf("redis-%d", i+1)
		}
	}
	require.NotEmpty(t, member)
	killed := time.Now()
	cl.Kill(t, member)
	// The cluster's own failover, seen from a surviving node.
	other := cl.Endpoints.RedisAddrs[0]
	if other == victim {
		other = cl.Endpoints.RedisAddrs[1]
	}
	survivor := redis.NewClient(&redis.Options{Addr: other})
	defer survivor.Close()
	require.Eventually(t, func() bool {
		info, err := survivor.ClusterInfo(ctx).Result()
		nodes, err2 := survivor.ClusterNodes(ctx).Result()
		return err == nil && err2 == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(nodes, victim+"@") &&
			strings.Contains(nodes, "master,fail") && strings.Count(nodes, "master") == 4
	}, 60*time.Second, 100*time.Millisecond, "a replica of %s is promoted", member)
	t.Logf("measured: %s (a master) killed: a replica promoted after %s", member, time.Since(killed).Round(time.Millisecond))
	require.Eventually(t, func() bool {
		rc.ReloadState(ctx) // as a client does on errors

		for i := range 1000 {
			if v, err := rc.Get(ctx, fmt.Sprintf("k:%d", i)).Int(); err != nil || v != i {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "every key readable again after %s was killed", member)
	t.Logf("measured: %s (a master) killed: every key readable through the cluster client after %s", member, time.Since(killed).Round(time.Millisecond))
	cl.Start(t, member)
	require.Eventually(t, func() bool {
		m, r := clusterRoles(t, ctx, rc)
		return len(m) == 3 && len(r) == 3
	}, 60*time.Second, 500*time.Millisecond, "the restarted node rejoins as a replica")

	// etcd: three members; writes go on with one of them hung.
	ec, err := clientv3.New(clientv3.Config{Endpoints: cl.Endpoints.EtcdEndpoints, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second})
	require.NoError(t, err)
	defer ec.Close()
	ml, err := ec.MemberList(ctx)
	require.NoError(t, err)
	require.Len(t, ml.Members, 3)
	cl.Pause(t, "etcd-1")
	paused := time.Now()
	require.Eventually(t, func() bool {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := ec.Put(wctx, "/triad-cluster-test", "written with etcd-1 hung")
		return err == nil
	}, 60*time.Second, 100*time.Millisecond, "a write succeeds with one member of three hung")
	t.Logf("measured: etcd-1 hung: a write succeeded after %s", time.Since(paused).Round(time.Millisecond))
	cl.Resume(t, "etcd-1")

	// Elasticsearch: two nodes, green; a replica lands on the other node.
	es := cl.Endpoints.ElasticsearchURLs[0]
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, es+"/cluster-test", strings.NewReader(`{"settings":{"number_of_shards":2,"number_of_replicas":1}}`))
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, err = http.Get(es + "/_cluster/health/cluster-test?wait_for_status=green&timeout=60s")
	require.NoError(t, err)
	var health struct {
		Status         string `json:"status"`
		Nodes          int    `json:"number_of_nodes"`
		ActiveShards   int    `json:"active_shards"`
		ActivePrimarys int    `json:"active_primary_shards"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&health))
	res.Body.Close()
	require.Equal(t, "green", health.Status)
	require.Equal(t, 3, health.Nodes)
	require.Equal(t, 4, health.ActiveShards, "2 primaries and their 2 replicas allocated")
}

// clusterRoles is the Redis Cluster's master IDs and, for each replica,
// the ID of the master it follows (CLUSTER NODES, failed nodes left out).
func clusterRoles(t *testing.T, ctx context.Context, rc *redis.ClusterClient) (masters, replicaOf []string) {
	t.Helper()
	txt, err := rc.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, nil
	}
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || strings.Contains(f[2], "fail") || strings.Contains(f[2], "handshake") {
			continue
		}
		switch {
		case strings.Contains(f[2], "master"):
			masters = append(masters, f[0])
		case strings.Contains(f[2], "slave"):
			replicaOf = append(replicaOf, f[3])
		}
	}
	return masters, replicaOf
}

// masterAddrs maps the masters' IDs to their addresses.
func masterAddrs(t *testing.T, ctx context.Context, rc *redis.ClusterClient) map[string]string {
	t.Helper()
	txt, err := rc.ClusterNodes(ctx).Result()
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.Contains(f[2], "master") && !strings.Contains(f[2], "fail") {
			addr, _, _ := strings.Cut(f[1], "@")
			out[f[0]] = addr
		}
	}
	return out
}
