package ingest_test

// End-to-end and raw-store benchmarks on the real servers, run by
// `make bench` (figures in docs/BENCHMARKS.md). Each runs once over
// TRIAD_BENCH_ROWS loadgen profiles (default 100000) and reports rows/s;
// the raw benchmarks write the same rows with the plainest fast client
// path, as the baseline the pipeline is compared with.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

func benchRows(b *testing.B) int64 {
	n := int64(100000)
	if v := os.Getenv("TRIAD_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.ParseInt(v, 10, 64); err != nil {
			b.Fatalf("TRIAD_BENCH_ROWS: %v", err)
		}
	}
	return n
}

// benchNamespace is a migrated namespace with the index template applied.
func benchNamespace(b *testing.B) (*stacktest.Namespace, *esstore.Store) {
	ns := stacktest.New(b)
	ns.Migrate(b)
	es := esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix})
	if err := es.Setup(context.Background()); err != nil {
		b.Fatal(err)
	}
	return ns, es
}

// profiles decodes n loadgen profiles (seed 1) in memory for the raw benchmarks.
func profiles(b *testing.B, n int64) []*ingest.Profile {
	g := ingest.NewGenerator(1)
	var d ingest.Decoder
	out := make([]*ingest.Profile, n)
	for i := range n {
		p, err := d.DecodeJSON(g.AppendJSONL(nil, i))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = p
	}
	return out
}

func report(b *testing.B, n int64, d time.Duration) {
	b.ReportMetric(float64(n)/d.Seconds(), "rows/s")
	b.ReportMetric(d.Seconds(), "s")
	b.Logf("%d rows in %s: %.0f rows/s", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
}

// BenchmarkIngestEndToEnd: loadgen JSONL through the parser and pipeline
// into Postgres, Redis and Elasticsearch, until every store has every row
// (the clock stops when the pipeline has drained its derived writers).
func BenchmarkIngestEndToEnd(b *testing.B) { benchIngest(b, true, nil) }

// BenchmarkIngestEndToEndRedisCluster: the same with Redis a Redis Cluster
// of 3 masters and 3 replicas (the cluster profile's, on the same
// machine): the cluster lane's cost against the single-node lane.
func BenchmarkIngestEndToEndRedisCluster(b *testing.B) {
	cl := stacktest.StartCluster(b, "redis")
	rc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Endpoints.RedisAddrs, PoolSize: 64})
	b.Cleanup(func() { _ = rc.Close() })
	benchIngest(b, true, rc)
}

// BenchmarkIngestPostgresOnly: the same run with no derived stores, to
// show what the Postgres stage alone sustains.
func BenchmarkIngestPostgresOnly(b *testing.B) { benchIngest(b, false, nil) }

// benchIngest runs the pipeline over benchRows profiles; rdb, when not
// nil, is the Redis to write (else the namespace's).
func benchIngest(b *testing.B, derived bool, rdb redis.UniversalClient) {
	n := benchRows(b)
	if os.Getenv("TRIAD_BENCH_TRACED") == "1" {
		// Every batch sampled (spans recorded, then dropped: no exporter),
		// so every row keeps its write trace: that cost against the same
		// run untraced.
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		prev := otel.GetTracerProvider()
		otel.SetTracerProvider(tp)
		b.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })
	}
	for range b.N {
		ns, es := benchNamespace(b)
		cfg := ingest.DefaultConfig()
		if v := os.Getenv("TRIAD_BENCH_SHARDS"); v != "" {
			cfg.Shards, _ = strconv.Atoi(v)
		}
		if v := os.Getenv("TRIAD_BENCH_DERIVED_WORKERS"); v != "" {
			cfg.DerivedWorkers, _ = strconv.Atoi(v)
		}
		if v := os.Getenv("TRIAD_BENCH_DERIVED_BATCH"); v != "" {
			cfg.DerivedBatchSize, _ = strconv.Atoi(v)
		}
		if v := os.Getenv("TRIAD_BENCH_BATCH_DELAY"); v != "" {
			cfg.BatchDelay, _ = time.ParseDuration(v)
		}
		pg := pgstore.New(ns.Pool())
		var client redis.UniversalClient = ns.Redis()
		if rdb != nil {
			client = rdb
		}
		rs := redisstore.New(client, redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: 24 * time.Hour}, prometheus.NewRegistry())
		deps := ingest.Deps{Primary: pg, Catchup: pg}
		if os.Getenv("TRIAD_BENCH_NO_OUTBOX") == "1" {
			// The baseline of the outbox's cost: the same run with no
			// outbox entries written or settled.
			deps.Primary = noOutbox{pg}
		}
		if derived {
			deps.Derived = []ingest.Derived{rs, es}
		}
		pl, err := ingest.New(cfg, deps)
		if err != nil {
			b.Fatal(err)
		}
		in, err := ingest.Open(inputFile(b, n))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		s, _, err := pl.Run(context.Background(), in, ingest.RunOptions{Source: "bench", Format: ingest.FormatJSONL})
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
		if err := pl.Close(); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if s.Applied != n {
			b.Fatalf("applied %d of %d", s.Applied, n)
		}
		for _, st := range []string{"redis", "elasticsearch"} {
			if c, _ := pg.Count(context.Background(), st); c != 0 {
				b.Fatalf("%d %s writes left for catch-up", c, st)
			}
		}
		report(b, n, d)
	}
}

// noOutbox is the Postgres store with the outbox left out (Apply owes
// nothing), for measuring what the outbox costs.
type noOutbox struct{ *pgstore.Store }

func (n noOutbox) Apply(ctx context.Context, batch []*ingest.Profile, held []bool, _ []string) (int64, error) {
	return n.Store.Apply(ctx, batch, held, nil)
}

// inputFile writes n loadgen JSONL lines to a file, so the end-to-end run
// reads its input from disk as `triad ingest FILE` does.
func inputFile(b *testing.B, n int64) string {
	f, err := os.CreateTemp("", "triad-bench-*.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	g := ingest.NewGenerator(1)
	var line []byte
	for i := range n {
		line = append(g.AppendJSONL(line[:0], i), '\n')
		_, _ = w.Write(line)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.Remove(f.Name()) })
	return f.Name()
}

// BenchmarkRawPostgresCopy: `psql \copy` of the same rows (TSV) into the
// same profiles table (its generated digest column included).
func BenchmarkRawPostgresCopy(b *testing.B) {
	n := benchRows(b)
	ps := profiles(b, n)
	path := filepath.Join(b.TempDir(), "rows.tsv")
	var buf bytes.Buffer
	for _, p := range ps {
		fmt.Fprintf(&buf, "%d\t%d\t%s", p.UserID, p.Version, p.UpdatedAt.Format(time.RFC3339Nano))
		for f := range ingest.NumFields {
			// COPY text format: backslashes are escapes.
			buf.WriteByte('\t')
			buf.WriteString(strings.ReplaceAll(string(p.Field(f)), `\`, `\\`))
		}
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		ns, _ := benchNamespace(b)
		c := ns.Servers.Postgres
		start := time.Now()
		cmd := exec.Command("psql", "-X", "-q", "-h", c.Host, "-p", strconv.Itoa(c.Port), "-U", c.Username, "-d", c.Database,
			"-c", fmt.Sprintf(`\copy %s.profiles (user_id, version, updated_at, tags, interests, devices, behavior, props) FROM '%s'`, ns.Schema, path))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("psql: %v: %s", err, out)
		}
		report(b, n, time.Since(start))
	}
}

// BenchmarkRawRedisHSET: pipelined plain HSET (no script, no guard) of the
// same keys and fields, 1000 per pipeline on 4 connections.
func BenchmarkRawRedisHSET(b *testing.B) {
	n := benchRows(b)
	ps := profiles(b, n)
	for range b.N {
		ns, _ := benchNamespace(b)
		rdb := ns.Redis()
		start := time.Now()
		parallel(b, ps, 4, 1000, func(batch []*ingest.Profile) error {
			pipe := rdb.Pipeline()
			for _, p := range batch {
				args := []any{"v", p.Version, "d", p.Digest, "dv", 1, "u", p.UpdatedAt.UnixMicro()}
				for f, name := range ingest.FieldNames {
					args = append(args, name, p.Field(f))
				}
				key := ns.RedisPrefix + "profile:" + strconv.FormatInt(p.UserID, 10)
				pipe.HSet(context.Background(), key, args...)
				pipe.PExpire(context.Background(), key, 24*time.Hour)
			}
			_, err := pipe.Exec(context.Background())
			return err
		})
		report(b, n, time.Since(start))
	}
}

// BenchmarkRawElasticsearchBulk: plain _bulk index requests (no versioning)
// of the same documents into an index under the same template, 1000 per
// request on 4 connections.
func BenchmarkRawElasticsearchBulk(b *testing.B) {
	n := benchRows(b)
	ps := profiles(b, n)
	for range b.N {
		ns, es := benchNamespace(b)
		start := time.Now()
		parallel(b, ps, 4, 1000, func(batch []*ingest.Profile) error {
			var body []byte
			for _, p := range batch {
				body = fmt.Appendf(body, `{"index":{"_index":%q,"_id":"%d"}}`+"\n", es.Alias(), p.UserID)
				body = append(esstore.AppendDocument(body, p), '\n')
			}
			res, err := esapi.BulkRequest{Body: bytes.NewReader(body)}.Do(context.Background(), ns.ES())
			if err != nil {
				return err
			}
			defer res.Body.Close()
			if res.IsError() {
				return fmt.Errorf("bulk: %s", res.Status())
			}
			return nil
		})
		report(b, n, time.Since(start))
	}
}

func parallel(b *testing.B, ps []*ingest.Profile, workers, size int, fn func([]*ingest.Profile) error) {
	batches := make(chan []*ingest.Profile)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range batches {
				if err := fn(batch); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < len(ps); i += size {
		batches <- ps[i:min(i+size, len(ps))]
	}
	close(batches)
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}
