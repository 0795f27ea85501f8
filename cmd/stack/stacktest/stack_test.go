package stacktest_test

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestUpFailsClearly starts Elasticsearch with a heap setting the JVM
// rejects: Up must name the server, say why with its log's last lines, and
// leave nothing running.
func TestUpFailsClearly(t *testing.T) {
	t.Parallel()
	c := stacktest.ServerSettings(t).Stack
	c = privateConfig(t, c)
	c.ESHeap = "lots"
	st, err := stack.New(c, stacktest.Logger(t))
	require.NoError(t, err)
	began := time.Now()
	_, err = st.Up(t.Context(), "elasticsearch")
	require.Error(t, err)
	t.Logf("failed after %s: %v", time.Since(began), err)
	require.ErrorContains(t, err, "elasticsearch did not come up")
	require.ErrorContains(t, err, "--- last lines of")
	require.ErrorContains(t, err, "lots", "the log tail shows the JVM's complaint")
	status, err := st.Status(t.Context())
	require.NoError(t, err)
	require.False(t, status[3].Up)
	conn, derr := net.DialTimeout("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.ESPort)), time.Second)
	if derr == nil {
		conn.Close()
	}
	require.Error(t, derr, "nothing listens on the failed server's port")
}

// TestUpRefusesAForeignPort: a port held by something that is not the
// stack's server is reported, not silently shared.
func TestUpRefusesAForeignPort(t *testing.T) {
	t.Parallel()
	c := privateConfig(t, stacktest.ServerSettings(t).Stack)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c.RedisPort = ln.Addr().(*net.TCPAddr).Port
	st, err := stack.New(c, stacktest.Logger(t))
	require.NoError(t, err)
	_, err = st.Up(t.Context(), "redis")
	require.ErrorContains(t, err, "is taken by a process that is not this stack's redis")
	require.ErrorContains(t, err, "(stack.redis_port)", "names the key to change")

	// A cluster member's port: the key is the port base.
	c.Profile, c.ClusterDir, c.ClusterPortBase = stack.ProfileCluster, stacktest.PrivateDir(t), ln.Addr().(*net.TCPAddr).Port-7001
	if c.ClusterPortBase >= 1024 && c.ClusterPortBase <= 65535-17006 {
		st, err = stack.New(c, stacktest.Logger(t))
		require.NoError(t, err)
		_, err = st.Up(t.Context(), "redis-1")
		require.ErrorContains(t, err, "redis-1: port")
		require.ErrorContains(t, err, "(stack.cluster_port_base)")
	}
}

// TestPrivateRestart: a stopped server of a stack is brought back by the next
// Up (a half-started stack is repaired) and a second Up is a no-op.
func TestPrivateRestart(t *testing.T) {
	t.Parallel()
	p := stacktest.StartPrivate(t, "etcd")
	st, err := stack.New(p.Config, stacktest.Logger(t))
	require.NoError(t, err)
	status, err := st.Up(t.Context(), "etcd")
	require.NoError(t, err)
	pid := status[0].Pid
	require.True(t, status[0].Up)
	status, err = st.Up(t.Context(), "etcd")
	require.NoError(t, err)
	require.Equal(t, pid, status[0].Pid, "a second up leaves a running server alone")
	p.Stop(t)
	status, err = st.Up(t.Context(), "etcd")
	require.NoError(t, err)
	require.True(t, status[0].Up)
	require.NotEqual(t, pid, status[0].Pid, "restarted")
}

func privateConfig(t *testing.T, c stack.Config) stack.Config {
	t.Helper()
	dir := stacktest.PrivateDir(t)
	c.Dir, c.Mode = dir, stack.ModeLocal
	targets := []*int{&c.PostgresPort, &c.RedisPort, &c.EtcdPort, &c.EtcdPeerPort, &c.ESPort, &c.ESTransportPort}
	ports, err := stack.FreePorts(len(targets))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range targets {
		*p = ports[i]
	}
	return c
}
