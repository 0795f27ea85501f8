package ingest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// rig is a pipeline on a test namespace of the real servers.
type rig struct {
	ns  *stacktest.Namespace
	pg  *pgstore.Store
	rs  *redisstore.Store
	es  *esstore.Store
	cfg ingest.Config
	pl  *ingest.Pipeline
	reg *prometheus.Registry // the current pipeline's metrics
}

type rigOption func(*rigParts)

type rigParts struct {
	rdb goredis.UniversalClient
	es  *elasticsearch.Client
	cfg ingest.Config
}

func withRedis(rdb goredis.UniversalClient) rigOption { return func(p *rigParts) { p.rdb = rdb } }

func withES(es *elasticsearch.Client) rigOption { return func(p *rigParts) { p.es = es } }
func withConfig(f func(*ingest.Config)) rigOption {
	return func(p *rigParts) { f(&p.cfg) }
}

func testConfig() ingest.Config {
	cfg := ingest.DefaultConfig()
	cfg.Shards = 8
	cfg.BatchDelay = 20 * time.Millisecond
	cfg.DerivedBatchDelay = 20 * time.Millisecond
	cfg.RetryBackoff = 20 * time.Millisecond
	cfg.DerivedAttempts = 2
	cfg.CatchupInterval = 200 * time.Millisecond
	return cfg
}

func newRig(t *testing.T, opts ...rigOption) *rig {
	t.Helper()
	ns := stacktest.New(t)
	parts := rigParts{rdb: ns.Redis(), es: ns.ES(), cfg: testConfig()}
	for _, o := range opts {
		o(&parts)
	}
	ns.Migrate(t)
	r := &rig{ns: ns, cfg: parts.cfg, pg: pgstore.New(ns.Pool()),
		rs: redisstore.New(parts.rdb, redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: time.Hour}, prometheus.NewRegistry()),
		es: esstore.New(parts.es, esstore.Config{IndexPrefix: ns.IndexPrefix})}
	require.NoError(t, r.es.Setup(t.Context()))
	r.start(t)
	return r
}

// start builds a fresh pipeline on the rig's stores.
func (r *rig) start(t *testing.T) {
	t.Helper()
	r.reg = prometheus.NewRegistry()
	pl, err := ingest.New(r.cfg, ingest.Deps{Primary: r.pg, Derived: []ingest.Derived{r.rs, r.es}, Catchup: r.pg, Logger: stacktest.Logger(t), Registerer: r.reg})
	require.NoError(t, err)
	r.pl = pl
	t.Cleanup(func() { _ = pl.Close() })
}

func (r *rig) ingest(t *testing.T, format ingest.Format, input string, q *ingest.Quarantine) ingest.Summary {
	t.Helper()
	s, _, err := r.pl.Run(t.Context(), strings.NewReader(input), ingest.RunOptions{Source: "test", Format: format, Quarantine: q})
	require.NoError(t, err)
	return s
}

// requireAgree checks that Postgres, Redis and Elasticsearch hold exactly
// want (user ID → profile; a tombstone = deleted), with the digests each
// store records equal to the digest recomputed from its own content.
func (r *rig) requireAgree(t *testing.T, want map[int64]*ingest.Profile) {
	t.Helper()
	require.NoError(t, r.agree(t.Context(), want))
}

func (r *rig) agree(ctx context.Context, want map[int64]*ingest.Profile) error {
	if err := r.es.Refresh(ctx); err != nil {
		return err
	}
	var ids []int64
	for id := range want {
		ids = append(ids, id)
	}
	for start := 0; start < len(ids); start += 1000 {
		page := ids[start:min(start+1000, len(ids))]
		rows, err := r.pg.Get(ctx, page)
		if err != nil {
			return err
		}
		pg := map[int64]*ingest.Profile{}
		for _, p := range rows {
			pg[p.UserID] = p
		}
		rd, corrupt, err := r.rs.GetMany(ctx, page)
		if err != nil {
			return err
		}
		if len(corrupt) > 0 {
			return fmt.Errorf("redis values that are not profiles: %v", corrupt)
		}
		es, err := r.es.GetMany(ctx, page)
		if err != nil {
			return err
		}
		for _, id := range page {
			w := want[id]
			if w.Deleted {
				switch {
				case rd[id] != nil:
					return fmt.Errorf("redis holds deleted profile %d", id)
				case es[id] != nil:
					return fmt.Errorf("elasticsearch holds deleted profile %d", id)
				case pg[id] == nil || !pg[id].Deleted || pg[id].Version != w.Version:
					return fmt.Errorf("postgres lacks the tombstone of %d at version %d", id, w.Version)
				}
				continue
			}
			for store, got := range map[string]*ingest.Profile{"postgres": pg[id], "redis": rd[id], "elasticsearch": es[id]} {
				if got == nil {
					return fmt.Errorf("%s is missing profile %d", store, id)
				}
				recomputed, _ := got.ComputeDigest(nil)
				switch {
				case got.Version != w.Version:
					return fmt.Errorf("%s has version %d of %d, want %d", store, got.Version, id, w.Version)
				case got.Digest != w.Digest:
					return fmt.Errorf("%s has digest %d for %d, want %d", store, got.Digest, id, w.Digest)
				case recomputed != got.Digest:
					return fmt.Errorf("%s content of %d does not match its digest", store, id)
				case !w.Equal(got):
					return fmt.Errorf("%s content of %d differs", store, id)
				}
			}
		}
	}
	return nil
}

// generate returns n loadgen JSONL lines and the profiles they decode to.
func generate(t *testing.T, g *ingest.Generator, from, n int64) (string, map[int64]*ingest.Profile) {
	t.Helper()
	var b []byte
	want := map[int64]*ingest.Profile{}
	var d ingest.Decoder
	for i := from; i < from+n; i++ {
		line := g.AppendJSONL(nil, i)
		p, err := d.DecodeJSON(line)
		require.NoError(t, err)
		want[p.UserID] = p
		b = append(append(b, line...), '\n')
	}
	return string(b), want
}

func TestBadLinesAreQuarantinedAndGoodRowsAgree(t *testing.T) {
	t.Parallel()
	r := newRig(t, withConfig(func(c *ingest.Config) { c.MaxLineBytes = 16384 }))
	g := ingest.NewGenerator(7)
	g.FirstID = 1000
	good, want := generate(t, g, 0, 3000)
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")

	bad := map[int]string{ // 1-based line number in the final input → bad line
		1:    `{"user_id": -5, "version": 1}`,
		17:   `{"user_id": 7, "version": 1,`,
		250:  "{\"user_id\": 8, \"version\": 1, \"tags\": [\"\xff\"]}",
		251:  `{"user_id": 9, "version": 1, "props": {"x": "` + strings.Repeat("a", 20000) + `"}}`,
		600:  `{"user_id": 10, "version": 1, "colour": "red"}`,
		1200: `{"user_id": 11, "version": 1, "interests": {"golf": 2000}}`,
		1800: `{"user_id": 12}`,
		2400: `{"user_id": 13, "version": 0}`,
		2401: `[1, 2]`,
		3005: `{"user_id": 9223372036854775808, "version": 1}`,
	}
	var input []string
	total := len(lines) + len(bad)
	for n := 1; len(input) < total; n++ {
		if b, ok := bad[n]; ok {
			input = append(input, b)
			continue
		}
		input = append(input, lines[0])
		lines = lines[1:]
	}
	qpath := filepath.Join(t.TempDir(), "quarantine.jsonl")
	qf, err := os.Create(qpath)
	require.NoError(t, err)
	q := ingest.NewQuarantine(qf)
	s := r.ingest(t, ingest.FormatJSONL, strings.Join(input, "\n")+"\n", q)
	require.NoError(t, q.Close())
	require.NoError(t, r.pl.Close())

	require.EqualValues(t, len(bad), s.Quarantined)
	require.EqualValues(t, 3000, s.Applied)
	require.Zero(t, s.Failed)

	f, err := os.Open(qpath)
	require.NoError(t, err)
	defer f.Close()
	got := map[int]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec ingest.QuarantineRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
		got[int(rec.Line)] = rec.Reason
		if rec.Line == 251 {
			require.True(t, rec.Truncated)
		}
		if rec.Line == 250 {
			require.NotEmpty(t, rec.TextBase64, "invalid UTF-8 is kept byte for byte")
		}
	}
	require.Len(t, got, len(bad))
	for n := range bad {
		require.Contains(t, got, n, "line %d quarantined", n)
	}
	t.Logf("reasons: %v", got)
	require.Contains(t, got[1], "user_id")
	require.Contains(t, got[17], "invalid JSON")
	require.Contains(t, got[250], "UTF-8")
	require.Contains(t, got[251], "too long")
	require.Contains(t, got[600], "unknown field")
	require.Contains(t, got[1200], "weight")
	require.Contains(t, got[1800], "version")

	r.requireAgree(t, want)
}

func TestOlderVersionChangesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	var d ingest.Decoder
	decode := func(s string) *ingest.Profile {
		p, err := d.DecodeJSON([]byte(s))
		require.NoError(t, err)
		return p
	}
	v2 := `{"user_id": 5, "version": 2, "tags": ["new"], "props": {"city": "Lyon"}}`
	v1 := `{"user_id": 5, "version": 1, "tags": ["old"], "props": {"city": "Paris"}}`
	del3 := `{"user_id": 6, "version": 3, "deleted": true}`
	v6 := `{"user_id": 6, "version": 1, "tags": ["zombie"]}`
	s := r.ingest(t, ingest.FormatJSONL, v2+"\n"+`{"user_id": 6, "version": 2, "tags": ["alive"]}`+"\n", nil)
	require.EqualValues(t, 2, s.Applied)
	// Wait for the derived stores, then send the older versions and the delete.
	r.requireAgreeEventually(t, map[int64]*ingest.Profile{5: decode(v2), 6: decode(`{"user_id": 6, "version": 2, "tags": ["alive"]}`)})
	s = r.ingest(t, ingest.FormatJSONL, v1+"\n"+del3+"\n", nil)
	require.EqualValues(t, 1, s.Superseded, "v1 of user 5 loses to v2")
	require.EqualValues(t, 1, s.Applied, "the tombstone applies")
	s = r.ingest(t, ingest.FormatJSONL, v6+"\n"+v1+"\n", nil)
	require.EqualValues(t, 2, s.Superseded, "a late older write neither resurrects 6 nor replaces 5")
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, map[int64]*ingest.Profile{5: decode(v2), 6: decode(del3)})

	// The derived stores' own guards, without Postgres in front: an older
	// version sent straight to Redis or Elasticsearch is refused as stale.
	out := make([]ingest.WriteResult, 1)
	for _, st := range []ingest.Derived{r.rs, r.es} {
		require.NoError(t, st.Write(t.Context(), []*ingest.Profile{decode(v1)}, out))
		require.True(t, out[0].Stale, "%s refuses version 1 over version 2", st.Name())
		require.NoError(t, out[0].Err)
	}
	r.requireAgree(t, map[int64]*ingest.Profile{5: decode(v2), 6: decode(del3)})
}

// requireAgreeEventually polls agree for up to 30 s (derived stores are
// written after Postgres acknowledges).
func (r *rig) requireAgreeEventually(t *testing.T, want map[int64]*ingest.Profile) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := r.agree(t.Context(), want)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stores did not agree within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopMidIngest ingests n profiles, stops a derived store's private server
// once part of them are in, restarts it after the run, and checks that the
// catch-up replay makes all three stores agree.
func stopMidIngest(t *testing.T, r *rig, priv *stacktest.Private, store string) {
	g := ingest.NewGenerator(11)
	input, want := generate(t, g, 0, 20000)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go r.pl.RunCatchup(ctx)

	var stopped atomic.Bool
	s, _, err := r.pl.Run(t.Context(), strings.NewReader(input), ingest.RunOptions{
		Source: "test", Format: ingest.FormatJSONL, Interval: 10 * time.Millisecond,
		Progress: func(s ingest.Summary) {
			if s.Applied > 3000 && !stopped.Swap(true) {
				priv.Stop(t)
				t.Logf("%s stopped after %d rows applied", store, s.Applied)
			}
		},
	})
	require.NoError(t, err, "a derived store going away does not stop the run")
	require.True(t, stopped.Load(), "the store was stopped mid-run")
	require.EqualValues(t, 20000, s.Applied)
	require.NoError(t, r.pl.Close())

	pending, err := r.pg.Count(t.Context(), store)
	require.NoError(t, err)
	t.Logf("%d %s writes recorded for catch-up", pending, store)
	require.Positive(t, pending)

	cancel() // the old pipeline's replayer
	start := time.Now()
	priv.Start(t)
	r.start(t) // a fresh pipeline (as after a restart) replays the log
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	go r.pl.RunCatchup(ctx2)
	r.awaitCatchupDrained(t, store, 2*time.Minute)
	t.Logf("catch-up drained %d entries %.1fs after the restart began", pending, time.Since(start).Seconds())
	r.requireAgree(t, want)
	// The replayed writes count in the consistent-after histogram with
	// their real delay: from the failure to the replay, seconds.
	n, under1s := consistentAfter(t, r.reg, store)
	require.GreaterOrEqual(t, int64(n), int64(pending), "every replayed write observed")
	require.Less(t, under1s, n, "replayed writes took longer than 1 s to become consistent")
	t.Logf("measured: %d of %d replayed %s writes consistent within 1 s of their failure", under1s, n, store)
}

// awaitCatchupDrained waits until store's catch-up log is empty, failing
// after limit.
func (r *rig) awaitCatchupDrained(t *testing.T, store string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		n, err := r.pg.Count(t.Context(), store)
		require.NoError(t, err)
		if n == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "catch-up log still has %d %s entries", n, store)
		time.Sleep(100 * time.Millisecond)
	}
}

// consistentAfter reads triad_ingest_consistent_after_seconds for store:
// its count and the count within 1 s.
func consistentAfter(t *testing.T, reg *prometheus.Registry, store string) (n, under1s uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "triad_ingest_consistent_after_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != store {
				continue
			}
			n = m.GetHistogram().GetSampleCount()
			for _, b := range m.GetHistogram().GetBucket() {
				if b.GetUpperBound() == 1 {
					under1s = b.GetCumulativeCount()
				}
			}
		}
	}
	return n, under1s
}

func TestRedisStoppedMidIngestCatchesUp(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "redis")
	rdb := goredis.NewClient(&goredis.Options{Addr: priv.Endpoints().RedisAddr, MaxRetries: 0, DialTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	r := newRig(t, withRedis(rdb))
	stopMidIngest(t, r, priv, "redis")
}

func TestElasticsearchStoppedMidIngestCatchesUp(t *testing.T) {
	t.Parallel()
	priv := stacktest.StartPrivate(t, "elasticsearch")
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{priv.Endpoints().ElasticsearchURL}, MaxRetries: 1})
	require.NoError(t, err)
	r := newRig(t, withES(es))
	stopMidIngest(t, r, priv, "elasticsearch")
}

func TestTSVAndGzipInput(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	g := ingest.NewGenerator(3)
	var tsv bytes.Buffer
	tsv.WriteString(strings.Join(ingest.TSVColumns, "\t") + "\n")
	want := map[int64]*ingest.Profile{}
	var d ingest.Decoder
	for i := range int64(500) {
		line, err := g.AppendTSV(nil, i, &ingest.Decoder{})
		require.NoError(t, err)
		p, err := d.DecodeTSV(line)
		require.NoError(t, err)
		want[p.UserID] = p
		tsv.Write(append(line, '\n'))
	}
	path := filepath.Join(t.TempDir(), "in.tsv.gz")
	writeGzip(t, path, tsv.Bytes())
	in, err := ingest.Open(path)
	require.NoError(t, err)
	defer in.Close()
	s, _, err := r.pl.Run(t.Context(), in, ingest.RunOptions{Source: path, Format: ingest.FormatTSV})
	require.NoError(t, err)
	require.EqualValues(t, 1, s.Skipped, "the header line")
	require.EqualValues(t, 500, s.Applied)
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, want)
	require.Equal(t, fmt.Sprint(in.Size), fmt.Sprint(in.Consumed.Load()), "the whole file was read")
}

func writeGzip(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := gzip.NewWriter(f)
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

func TestTombstonesArePurgedAfterRetention(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s := r.ingest(t, ingest.FormatJSONL, `{"user_id": 1, "version": 5, "deleted": true}`+"\n"+`{"user_id": 2, "version": 1}`+"\n", nil)
	require.EqualValues(t, 2, s.Applied)
	n, err := r.pg.PurgeTombstones(t.Context(), time.Hour)
	require.NoError(t, err)
	require.Zero(t, n, "a fresh tombstone is kept")
	// Age the tombstone instead of waiting for the retention.
	_, err = r.ns.Pool().Exec(t.Context(), `UPDATE profiles SET deleted_at = now() - interval '2 hours' WHERE user_id = 1`)
	require.NoError(t, err)
	n, err = r.pg.PurgeTombstones(t.Context(), time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	rows, err := r.pg.Get(t.Context(), []int64{1, 2})
	require.NoError(t, err)
	require.Len(t, rows, 1, "only the live profile is left")
	require.EqualValues(t, 2, rows[0].UserID)
}

// TestRerunAfterCrashConverges: Postgres committed but the process died
// before Redis and Elasticsearch were written (simulated by deleting what
// they hold); running the same input again fills them in, because profiles
// Postgres already holds at the same version and digest are forwarded again.
func TestRerunAfterCrashConverges(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	input, want := generate(t, ingest.NewGenerator(21), 0, 500)
	s := r.ingest(t, ingest.FormatJSONL, input, nil)
	require.EqualValues(t, 500, s.Applied)
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, want)

	require.NoError(t, stacktest.DeleteRedisPrefix(t.Context(), r.ns.Redis(), r.ns.RedisPrefix))
	res, err := r.ns.ES().DeleteByQuery([]string{r.es.Alias()}, strings.NewReader(`{"query": {"match_all": {}}}`),
		r.ns.ES().DeleteByQuery.WithRefresh(true))
	require.NoError(t, err)
	res.Body.Close()
	require.Error(t, r.agree(t.Context(), want), "the derived stores lost everything")

	r.start(t)
	s = r.ingest(t, ingest.FormatJSONL, input, nil)
	require.EqualValues(t, 500, s.Applied, "Postgres already holds every row: each is forwarded again")
	require.NoError(t, r.pl.Close())
	r.requireAgree(t, want)
}
