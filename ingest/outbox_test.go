package ingest_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

func (r *rig) count(t *testing.T, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, r.ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// TestOutboxSettlesEveryWrite: every batch's outbox entry is deleted once
// its writes reach Redis and Elasticsearch; nothing is left owed.
func TestOutboxSettlesEveryWrite(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	input, want := generate(t, ingest.NewGenerator(31), 0, 3000)
	s := r.ingest(t, ingest.FormatJSONL, input, nil)
	require.EqualValues(t, 3000, s.Applied)
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, want)
	require.Zero(t, r.count(t, "profile_outbox"), "every entry settled")
	require.Zero(t, r.count(t, "profile_catchup"))
}

// TestAbandonedOutboxIsRecovered: a writer that committed to Postgres and
// died before its derived writes (the Postgres half of a pipeline, done
// here by hand) leaves an outbox entry. No triad touches it before
// outbox_grace; after it, any running pipeline moves it to the catch-up
// log and replays it, so Redis and Elasticsearch converge without a rerun.
func TestAbandonedOutboxIsRecovered(t *testing.T) {
	t.Parallel()
	r := newRig(t, withConfig(func(c *ingest.Config) {
		c.DerivedTimeout, c.PrimaryTimeout, c.OutboxGrace = 500*time.Millisecond, time.Second, 2*time.Second
	}))
	_, want := generate(t, ingest.NewGenerator(32), 0, 700)
	var batch []*ingest.Profile
	for _, p := range want {
		batch = append(batch, p)
	}
	id, err := r.pg.Apply(t.Context(), batch, make([]bool, len(batch)), []string{"redis", "elasticsearch"})
	require.NoError(t, err)
	require.Positive(t, id, "the write and its outbox entry committed together")
	require.EqualValues(t, 1, r.count(t, "profile_outbox"))
	require.Error(t, r.agree(t.Context(), want), "the writer died before Redis and Elasticsearch")

	n, err := r.pl.RecoverOutbox(t.Context())
	require.NoError(t, err)
	require.Zero(t, n, "an entry younger than outbox_grace may still be in flight")

	start := time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.pl.RunCatchup(ctx)
	r.requireAgreeEventually(t, want)
	t.Logf("measured: 700 abandoned writes recovered and replayed %.1fs after the crash (outbox_grace 2s)", time.Since(start).Seconds())
	require.Zero(t, r.count(t, "profile_outbox"))
	until(t, 10*time.Second, func() bool { return r.count(t, "profile_catchup") == 0 })
}

func until(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "condition not met within %s", limit)
		time.Sleep(50 * time.Millisecond)
	}
}

// pacedReader hands out its input at about perSecond bytes a second, as a
// long-running producer would.
type pacedReader struct {
	r         io.Reader
	perSecond int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	step := p.perSecond / 20
	if len(b) > step {
		b = b[:step]
	}
	time.Sleep(50 * time.Millisecond)
	return p.r.Read(b)
}

// hangMidIngest hangs a derived store's private server (SIGSTOP) for 30 s
// during a paced ingest: Postgres writes go on, the store's writes reach
// the catch-up log within seconds (derived_timeout 1s), and after SIGCONT
// all stores converge with nothing lost.
func hangMidIngest(t *testing.T, r *rig, priv *stacktest.Private, store string) {
	const rows, hang = 40000, 30 * time.Second
	input, want := generate(t, ingest.NewGenerator(33), 0, rows)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.pl.RunCatchup(ctx)

	var applied atomic.Int64
	var pausedAt atomic.Int64 // unix nanos
	var atPause, atResume atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for applied.Load() < 3000 {
			time.Sleep(10 * time.Millisecond)
		}
		priv.Pause(t)
		pausedAt.Store(time.Now().UnixNano())
		atPause.Store(applied.Load())
		time.Sleep(hang)
		atResume.Store(applied.Load())
		priv.Resume(t)
	}()
	firstCatchup := make(chan time.Duration, 1)
	go func() {
		for ctx.Err() == nil {
			if at := pausedAt.Load(); at != 0 {
				if n, err := r.pg.Count(ctx, store); err == nil && n > 0 {
					firstCatchup <- time.Since(time.Unix(0, at))
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	size := len(input)
	s, _, err := r.pl.Run(t.Context(), &pacedReader{r: strings.NewReader(input), perSecond: size / 40}, ingest.RunOptions{
		Source: "test", Format: ingest.FormatJSONL, Interval: 10 * time.Millisecond,
		Progress: func(s ingest.Summary) { applied.Store(s.Applied) },
	})
	require.NoError(t, err, "a hung derived store does not stop the run")
	require.EqualValues(t, rows, s.Applied)
	<-done
	during := atResume.Load() - atPause.Load()
	t.Logf("measured: %d rows written to Postgres during the %s hang of %s", during, hang, store)
	require.Greater(t, during, int64(rows/4), "Postgres writes went on while %s hung", store)
	select {
	case d := <-firstCatchup:
		t.Logf("measured: first %s write in the catch-up log %.2fs after the hang began", store, d.Seconds())
		require.Less(t, d, 15*time.Second, "derived_timeout 1s turns a hang into catch-up within seconds")
	default:
		t.Fatalf("no %s write reached the catch-up log during the hang", store)
	}
	resumed := time.Now()
	require.NoError(t, r.pl.Close())
	r.start(t)
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go r.pl.RunCatchup(ctx2)
	r.awaitCatchupDrained(t, store, 2*time.Minute)
	r.requireAgreeEventually(t, want)
	require.Zero(t, r.count(t, "profile_outbox"), "nothing left owed")
	t.Logf("measured: %s converged %.1fs after SIGCONT", store, time.Since(resumed).Seconds())
}

func TestRedisHungMidIngestCatchesUp(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "redis")
	rdb := goredis.NewClient(&goredis.Options{Addr: priv.Endpoints().RedisAddr, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	r := newRig(t, withRedis(rdb), withConfig(func(c *ingest.Config) { c.DerivedTimeout = time.Second }))
	hangMidIngest(t, r, priv, "redis")
}

func TestElasticsearchHungMidIngestCatchesUp(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "elasticsearch")
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{priv.Endpoints().ElasticsearchURL}, MaxRetries: 1})
	require.NoError(t, err)
	r := newRig(t, withES(es), withConfig(func(c *ingest.Config) { c.DerivedTimeout = time.Second }))
	hangMidIngest(t, r, priv, "elasticsearch")
}

// TestRejectedProfilesAreQuarantined: profiles Elasticsearch refuses for
// good (here an updated_at past its date range, submitted straight to the
// pipeline as a service whose validation differs would) are recorded in
// profile_rejects with the error type and field but not the value, never
// retried, and never mark Elasticsearch down: a batch of only such
// profiles is followed by good ones that reach the index at once.
func TestRejectedProfilesAreQuarantined(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	_, good := generate(t, ingest.NewGenerator(34), 0, 50)
	var bad []*ingest.Profile
	for i := range int64(5) {
		p := &ingest.Profile{UserID: 900000 + i, Version: 1, UpdatedAt: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}
		p.Digest, _ = p.ComputeDigest(nil)
		bad = append(bad, p)
	}
	submit := func(ps []*ingest.Profile) {
		for _, p := range ps {
			require.NoError(t, r.pl.Submit(t.Context(), p, nil))
		}
	}
	submit(bad)
	until(t, 30*time.Second, func() bool { return r.count(t, "profile_rejects") == 5 })
	var goodList []*ingest.Profile
	for _, p := range good {
		goodList = append(goodList, p)
	}
	submit(goodList)
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, good)

	rows, err := r.ns.Pool().Query(t.Context(), `SELECT store, reason FROM profile_rejects`)
	require.NoError(t, err)
	for rows.Next() {
		var store, reason string
		require.NoError(t, rows.Scan(&store, &reason))
		require.Equal(t, "elasticsearch", store)
		require.Contains(t, reason, "updated_at", "the reason names the field")
		require.NotContains(t, reason, "2300", "the reason does not quote the value")
	}
	require.NoError(t, rows.Err())
	require.Zero(t, r.count(t, "profile_catchup"), "a rejection is not retried")
	require.Zero(t, r.count(t, "profile_outbox"))
	mfs, err := r.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "triad_ingest_derived_store_up" {
			for _, m := range mf.GetMetric() {
				require.EqualValues(t, 1, m.GetGauge().GetValue(), "no store was marked down: %v", m.GetLabel())
			}
		}
	}
}
