package stacktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/triad-dev/triad/cmd/stack"
)

// Cluster is a private stack of the cluster profile (a Redis Cluster of 3
// masters and 3 replicas, 3 etcd members, Elasticsearch nodes, one
// Postgres), started by the stack code in a temporary directory on free
// ports; the test may pause, kill and restart its members.
type Cluster struct {
	Config    stack.Config
	Endpoints stack.ClusterEndpoints
	st        *stack.Stack
}

// StartCluster starts the cluster profile's servers of the kinds named
// (postgres, redis, etcd, elasticsearch; all when none) and stops them
// when the test ends.
func StartCluster(t testing.TB, kinds ...string) *Cluster {
	t.Helper()
	integration(t)
	c := ServerSettings(t).Stack
	c.Mode, c.Profile, c.ClusterDir = stack.ModeLocal, stack.ProfileCluster, PrivateDir(t)
	c.ClusterPortBase = freePortBase(t)
	st, err := stack.New(c, Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	cl := &Cluster{Config: c, Endpoints: c.ClusterEndpoints(), st: st}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = st.Down(ctx, kinds...)
	})
	cl.Start(t, kinds...)
	return cl
}

// freePortBase claims a cluster_port_base for the test: one of 20 slots
// (1100 + 40k), held with an exclusive lock file until the test ends, so
// parallel tests in any package never share a port, and whose ports are
// all free now. Every port lies below Linux's ephemeral range (32768 and
// up), where outgoing connections would take them from under a server;
// the slots' port sets do not overlap (offsets within a group differ by
// less than 40, groups by more than 20 × 40) and avoid the single stack's
// and the default cluster profile's ports.
func freePortBase(t testing.TB) int {
	t.Helper()
	offsets := []int{5432}
	for i := range 6 {
		offsets = append(offsets, 7001+i, 17001+i)
	}
	for i := range 3 {
		offsets = append(offsets, 2379+10*i, 2380+10*i, 9200+i, 9300+i)
	}
	for _, k := range rand.Perm(20) {
		base := 1100 + 40*k
		lock, err := os.OpenFile(fmt.Sprintf("/var/tmp/triad-stacktest-cluster-slot-%d.lock", k), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			lock.Close() // another test holds this slot
			continue
		}
		free := true
		for _, o := range offsets {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+o))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if !free {
			lock.Close()
			continue
		}
		t.Cleanup(func() { lock.Close() }) // after the cluster's own clean-up (LIFO)
		return base
	}
	t.Fatal("stacktest: no free cluster port slot")
	return 0
}

// Start starts (or restarts) the servers or members named and waits
// until they answer (and the Redis nodes are a cluster again).
func (c *Cluster) Start(t testing.TB, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := c.st.Up(ctx, names...); err != nil {
		t.Fatalf("stacktest: cluster %v: %v", names, err)
	}
}

// Status is the status of the servers or members named.
func (c *Cluster) Status(t testing.TB) []stack.ServerStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sts, err := c.st.Status(ctx)
	if err != nil {
		t.Fatalf("stacktest: cluster status: %v", err)
	}
	return sts
}

// Pid is a member's process ID (redis-2, etcd-3, elasticsearch-1), 0 when
// it is not running.
func (c *Cluster) Pid(t testing.TB, member string) int {
	t.Helper()
	for _, s := range c.Status(t) {
		if s.Name == member {
			return s.Pid
		}
	}
	t.Fatalf("stacktest: the cluster has no member %q", member)
	return 0
}

// Pause hangs a member (SIGSTOP to its process tree) until Resume or the
// test's end.
func (c *Cluster) Pause(t testing.TB, member string) {
	t.Helper()
	pauseTree(t, member, c.Pid(t, member))
}

// Resume continues a paused member.
func (c *Cluster) Resume(t testing.TB, member string) { t.Helper(); resumeTree(c.Pid(t, member)) }

// Kill ends a member with SIGKILL, as a crash would; Start brings it back.
func (c *Cluster) Kill(t testing.TB, member string) {
	t.Helper()
	pid := c.Pid(t, member)
	if pid <= 0 {
		t.Fatalf("stacktest: cluster member %s is not running", member)
	}
	for _, p := range processTree(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}
