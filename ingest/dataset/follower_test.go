package dataset_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/dataset"
)

// TestFollowerCoalescesBursts puts 200 version records in a burst (200
// etcd revisions): the follower applies far fewer than 200 times and ends
// writing all of them, then follows a switch.
func TestFollowerCoalescesBursts(t *testing.T) {
	ns := stacktest.New(t)
	cfg := dataset.DefaultConfig()
	cfg.EtcdPrefix = ns.EtcdPrefix
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	var applied []ingest.Versions
	f := dataset.NewFollower(cfg, ns.Etcd(), dataset.FollowerOptions{ID: "t1", Kind: "serve", Registerer: reg, Apply: func(v ingest.Versions) {
		mu.Lock()
		applied = append(applied, v)
		mu.Unlock()
	}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-f.Known()

	// Eight writers put 200 records as fast as etcd takes them: 200
	// revisions, each its own watch event.
	const burst = 200
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 2 + w; n < 2+burst; n += 8 {
				_, err := ns.Etcd().Put(t.Context(), fmt.Sprintf("%sdataset/versions/%08d", ns.EtcdPrefix, n),
					fmt.Sprintf(`{"version":%d,"state":"ready"}`, n))
				require.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return len(f.Versions().Writing) == 1+burst }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	applies := len(applied)
	mu.Unlock()
	watched := testutil.CollectAndCount(reg, "etcd_watch_duration_seconds")
	t.Logf("measured: %d etcd events applied in %d applies", burst, applies)
	require.Less(t, applies, burst/2, "bursts are coalesced")
	require.Equal(t, 1, watched, "etcd_watch_duration_seconds is exported")

	start := time.Now()
	_, err := ns.Etcd().Put(t.Context(), ns.EtcdPrefix+"dataset/active", `{"version":7}`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return f.Versions().Serving == 7 }, 10*time.Second, time.Millisecond)
	t.Logf("measured: active key change applied after %s", time.Since(start))
	st, ready := f.Status()
	require.True(t, ready)
	require.Equal(t, 7, st.Serving)
	// The report follows the apply.
	require.Eventually(t, func() bool {
		res, err := ns.Etcd().Get(t.Context(), ns.EtcdPrefix+"dataset/members/t1")
		require.NoError(t, err)
		require.Len(t, res.Kvs, 1)
		require.NotZero(t, res.Kvs[0].Lease, "the member report is bound to a lease")
		return strings.Contains(string(res.Kvs[0].Value), `"serving":7`)
	}, 10*time.Second, 5*time.Millisecond)

	cancel()
	<-done
	res, err := ns.Etcd().Get(t.Context(), ns.EtcdPrefix+"dataset/members/t1")
	require.NoError(t, err)
	require.Empty(t, res.Kvs, "a stopped follower's report goes with its lease")
}
