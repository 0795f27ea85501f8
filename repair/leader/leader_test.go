package leader_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair/leader"
)

// act is one singleton-job action: which replica, in which of its terms,
// and when.
type act struct {
	replica string
	term    int
	at      time.Time
}

// TestNoTwoLeadersAcrossEtcdRestarts: two replicas campaign on a private
// etcd; the leader's job acts every 5 ms, each act guarded by
// leader.Check. etcd is killed for longer than the lease TTL and
// restarted, twice. From both replicas' act logs: every term of one
// replica ends before any term of the other begins, and leadership
// resumes after each restart.
func TestNoTwoLeadersAcrossEtcdRestarts(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "etcd")
	const ttl = 2 * time.Second
	var mu sync.Mutex
	var acts []act
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	electors := map[string]*leader.Elector{}
	for _, id := range []string{"a", "b"} {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{priv.Endpoints().EtcdEndpoint}, DialTimeout: time.Second,
			DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		e := leader.New(cli, "/triad-test/", id, ttl, stacktest.Logger(t), prometheus.NewRegistry())
		electors[id] = e
		term := 0
		wg.Go(func() {
			e.Run(ctx, func(jctx context.Context) {
				term++
				for jctx.Err() == nil {
					if leader.Check(jctx) == nil {
						mu.Lock()
						acts = append(acts, act{id, term, time.Now()})
						mu.Unlock()
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		})
	}
	actsSince := func(t0 time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acts {
			if a.at.After(t0) {
				n++
			}
		}
		return n
	}
	waitActs := func(what string) time.Duration {
		t0 := time.Now()
		for actsSince(t0) < 10 {
			require.Less(t, time.Since(t0), time.Minute, what)
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(t0)
	}
	waitActs("a first leader acts")
	for round := 1; round <= 2; round++ {
		priv.Stop(t)
		time.Sleep(2 * ttl) // past the lease TTL: every fence has run out
		mu.Lock()
		stopped := len(acts)
		mu.Unlock()
		priv.Start(t)
		took := waitActs("a leader acts again after etcd returns")
		t.Logf("measured: round %d: leadership resumed %.1fs after etcd was restarted (%d acts before)", round, took.Seconds(), stopped)
	}
	cancel()
	wg.Wait()

	// Term intervals per replica, and no overlap across replicas.
	type span struct {
		replica    string
		term       int
		first, end time.Time
	}
	spans := map[[2]any]*span{}
	for _, a := range acts {
		k := [2]any{a.replica, a.term}
		if s := spans[k]; s != nil {
			s.end = a.at
		} else {
			spans[k] = &span{a.replica, a.term, a.at, a.at}
		}
	}
	var all []*span
	for _, s := range spans {
		all = append(all, s)
	}
	require.GreaterOrEqual(t, len(all), 2, "leadership was re-established at least once")
	for i, x := range all {
		for _, y := range all[i+1:] {
			if x.replica == y.replica {
				continue
			}
			overlap := x.first.Before(y.end) && y.first.Before(x.end)
			require.False(t, overlap, "replica %s term %d [%s, %s] overlaps replica %s term %d [%s, %s]",
				x.replica, x.term, x.first.Format(time.StampMicro), x.end.Format(time.StampMicro),
				y.replica, y.term, y.first.Format(time.StampMicro), y.end.Format(time.StampMicro))
		}
		t.Logf("term: replica %s #%d acted %s → %s", x.replica, x.term, x.first.Format(time.StampMilli), x.end.Format(time.StampMilli))
	}
	for id, e := range electors {
		st, _ := e.Status()
		require.False(t, st.Leading, "replica %s stopped leading with its context", id)
	}
}
