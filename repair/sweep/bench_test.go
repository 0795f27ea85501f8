package sweep_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	goredis "github.com/redis/go-redis/v9"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
	"github.com/triad-dev/triad/repair"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/sweep"
)

// BenchmarkSweep (make bench-sweep): TRIAD_BENCH_SWEEP_ROWS consistent
// loadgen profiles (default 1M) in all three stores; a record-mode sweep
// (the naive full compare: every record's head from every store) and a
// digest-mode sweep of the same data in the same run; then 0.1% of the
// records drifted at random (half in Redis, half in Elasticsearch) and
// an auto sweep and a digest sweep again, with their recall. Peak RSS of
// this process is sampled during each sweep. TRIAD_BENCH_SWEEP_DIGEST_ONLY
// runs only the consistent digest sweep (for 10M rows);
// TRIAD_BENCH_SWEEP_CPUPROFILE writes a CPU profile of the digest sweep
// (with TRIAD_BENCH_SWEEP_KEEP: of the steady state);
// TRIAD_BENCH_SWEEP_SKIP_RAW leaves out the stores' raw content reads;
// TRIAD_BENCH_SWEEP_REDIS_CLUSTER writes and sweeps a Redis Cluster of 3
// masters and 3 replicas instead of the shared Redis (with DIGEST_ONLY);
// TRIAD_BENCH_SWEEP_STEADY (with KEEP, on stores a full run verified)
// runs only Redis's raw read, the steady state, the quick mode and the raw
// read again.
func BenchmarkSweep(b *testing.B) {
	n := int64(1_000_000)
	if v := os.Getenv("TRIAD_BENCH_SWEEP_ROWS"); v != "" {
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	ctx := context.Background()
	// TRIAD_BENCH_SWEEP_KEEP keeps the loaded stores for the next run
	// (loading 10M takes half an hour); the drifted part, which changes
	// them, is left out then.
	keep := os.Getenv("TRIAD_BENCH_SWEEP_KEEP") != ""
	var ns *stacktest.Namespace
	if keep {
		ns = stacktest.Kept(b, fmt.Sprintf("sweep_%d", n))
	} else {
		ns = stacktest.New(b)
	}
	ns.Migrate(b)
	pg := pgstore.New(ns.Pool())
	var rdb goredis.UniversalClient = ns.Redis()
	if os.Getenv("TRIAD_BENCH_SWEEP_REDIS_CLUSTER") != "" {
		// The cluster lane: Redis is a Redis Cluster of 3 masters and 3
		// replicas on the same machine (run with DIGEST_ONLY: the drift
		// part plants through the shared Redis).
		cl := stacktest.StartCluster(b, "redis")
		rc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: cl.Endpoints.RedisAddrs, PoolSize: 64})
		b.Cleanup(func() { _ = rc.Close() })
		rdb = rc
	}
	rs := redisstore.New(rdb, redisstore.Config{KeyPrefix: ns.RedisPrefix, TTL: 24 * time.Hour}, prometheus.NewRegistry())
	es := esstore.New(ns.ES(), esstore.Config{IndexPrefix: ns.IndexPrefix})
	if err := es.Setup(ctx); err != nil {
		b.Fatal(err)
	}
	var have int64
	if keep {
		if err := ns.Pool().QueryRow(ctx, `SELECT count(*) FROM profiles`).Scan(&have); err != nil {
			b.Fatal(err)
		}
	}
	if have == n {
		logf(b, "kept namespace %s holds %d profiles: not loaded again", ns.ID, n)
	} else {
		start := time.Now()
		load(b, n, pg, rs, es)
		logf(b, "loaded %d profiles into the three stores in %s", n, time.Since(start).Round(time.Second))
	}
	if _, err := ns.Pool().Exec(ctx, `VACUUM ANALYZE profiles`); err != nil {
		b.Fatal(err)
	}
	if err := es.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	// Merge the index's segments as a long-lived index would be.
	if res, err := ns.ES().Indices.Forcemerge(ns.ES().Indices.Forcemerge.WithIndex(es.Alias()), ns.ES().Indices.Forcemerge.WithMaxNumSegments(1)); err == nil {
		res.Body.Close()
	}
	c := repair.NewChecker(repair.NewProfile(pg, rs, es))
	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(ns.Pool())))
	fix := false // the next sweep repairs what it finds
	run := func(name, mode string) sweep.Report {
		runtime.GC()
		debug.FreeOSMemory()
		base := rssBytes()
		var peak atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				if r := rssBytes(); r > peak.Load() {
					peak.Store(r)
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
		cpu := serverCPU()
		rep, err := sw.Sweep(ctx, sweep.Options{Entity: "profile", Mode: mode, Recheck: time.Millisecond, Repair: fix, Actor: "bench"})
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		used := serverCPU()
		var shares []string
		for _, s := range []string{"postgres", "redis", "elasticsearch", "triad"} {
			shares = append(shares, fmt.Sprintf("%s %.1fs", s, (used[s]-cpu[s]).Seconds()))
		}
		logf(b, "  CPU by process during the sweep: %s", strings.Join(shares, ", "))
		logf(b, "%-22s mode=%-15s %8d records %6d segments %6d dirty %5d suspects %5d findings  took %8s  (%.0f records/s)  RSS before %d MiB, peak %d MiB",
			name, rep.Mode, rep.Records, rep.Segments, rep.Dirty, rep.Suspects, len(rep.Findings), rep.Took.Round(time.Millisecond),
			float64(rep.Records)/rep.Took.Seconds(), base>>20, peak.Load()>>20)
		if cp := rep.Checkpoint; cp != nil {
			logf(b, "  content_true=%v checkpoint: from %v, %d documents written since read whole, advanced to %d: %v; orphans: %s",
				rep.ContentTrue, cp.Base != nil, cp.Changed, cp.Taken.SeqNo, cp.Advanced, rep.OrphanScan)
		} else {
			logf(b, "  content_true=%v, no checkpoint; orphans: %s", rep.ContentTrue, rep.OrphanScan)
		}
		return rep
	}
	b.ResetTimer()
	for range b.N {
		if os.Getenv("TRIAD_BENCH_SWEEP_DIGEST_ONLY") != "" {
			run("consistent", sweep.ModeDigest)
			continue
		}
		if keep && os.Getenv("TRIAD_BENCH_SWEEP_STEADY") != "" {
			// On stores a full run left verified: Redis's raw content read,
			// the steady state and the quick mode, and the raw read again,
			// in one run with nothing else on the machine.
			sw.Checkpoints = repairpg.NewSweeps(ns.Pool())
			rawRedis(b, ns, rs, n)
			run("steady state", sweep.ModeDigest)
			run("label-only", sweep.ModeLabels)
			rawRedis(b, ns, rs, n)
			continue
		}
		if keep {
			// The 10M run (issue 15): each store's raw content read, the
			// first content pass (no checkpoint), the steady state from the
			// verified checkpoint, the label-only quick mode, then 0.1%
			// drift of mixed external kinds. It drifts the kept data.
			if os.Getenv("TRIAD_BENCH_SWEEP_SKIP_RAW") == "" {
				rawRedis(b, ns, rs, n)
				rawES(b, es)
			}
			sw.Checkpoints = repairpg.NewSweeps(ns.Pool())
			run("first content pass", sweep.ModeDigest)
			stop := cpuProfile(b)
			steady := run("steady state", sweep.ModeDigest)
			stop()
			run("label-only", sweep.ModeLabels)
			drifted := externalDrift(b, ns, rs, es, n)
			rep := run("0.1% external drift", sweep.ModeAuto)
			recall(b, rep, drifted, steady)
			// Repair the drift, so the kept stores are consistent for the
			// next run, and show it held.
			fix = true
			fixed := run("repair of the drift", sweep.ModeAuto)
			fix = false
			if fixed.Repair == nil || fixed.Repair.Repaired != len(fixed.Findings) {
				b.Fatalf("the drift was not all repaired: %d findings, %+v", len(fixed.Findings), fixed.Repair)
			}
			if after := run("after the repair", sweep.ModeDigest); len(after.Findings) != 0 {
				b.Fatalf("%d findings after the repair", len(after.Findings))
			}
			continue
		}
		naive := run("consistent", sweep.ModeRecords)
		stop := cpuProfile(b)
		digest := run("consistent", sweep.ModeDigest)
		stop()
		logf(b, "digest sweep %.2fx faster than the naive full compare (%s vs %s)", naive.Took.Seconds()/digest.Took.Seconds(),
			digest.Took.Round(time.Millisecond), naive.Took.Round(time.Millisecond))
		drifted := drift(b, ns, rs, es, n)
		if err := es.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		for _, mode := range []string{sweep.ModeAuto, sweep.ModeDigest, sweep.ModeRecords} {
			recall(b, run("0.1% drift", mode), drifted, digest)
		}
	}
}

// logf logs to the benchmark's log and to stderr: go test cuts a long
// benchmark log, and a 10M run is watched while it goes.
func logf(b *testing.B, format string, args ...any) {
	b.Helper()
	b.Logf(format, args...)
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// cpuProfile starts a CPU profile into TRIAD_BENCH_SWEEP_CPUPROFILE, if
// set, and returns what stops it.
func cpuProfile(b *testing.B) func() {
	f := os.Getenv("TRIAD_BENCH_SWEEP_CPUPROFILE")
	if f == "" {
		return func() {}
	}
	out, err := os.Create(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		out.Close()
	}
}

// recall logs how many planted drifts a sweep found, and how many of
// its findings were not planted.
func recall(b *testing.B, rep sweep.Report, drifted map[string]bool, base sweep.Report) {
	found := map[string]bool{}
	for _, f := range rep.Findings {
		found[f.Key+"/"+f.Store] = true
	}
	hit := 0
	for k := range drifted {
		if found[k] {
			hit++
		}
	}
	logf(b, "  recall %d/%d (%.1f%%), %d findings not planted; %.2fx the consistent sweep", hit, len(drifted),
		100*float64(hit)/float64(len(drifted)), len(found)-hit, rep.Took.Seconds()/base.Took.Seconds())
}

// rawRedis reads every profile key whole with pipelined HGETALL (batches
// of 1000, two pipelines in flight, as the sweep does), hashing nothing:
// Redis's raw content-read rate in this run.
func rawRedis(b *testing.B, ns *stacktest.Namespace, rs *redisstore.Store, n int64) {
	ctx := context.Background()
	g := ingest.NewGenerator(1)
	start := time.Now()
	var bytesRead atomic.Int64
	var wg sync.WaitGroup
	for w := range int64(2) {
		wg.Go(func() {
			for lo := w * 1000; lo < n; lo += 2000 {
				pipe := ns.Redis().Pipeline()
				cmds := make([]*goredis.MapStringStringCmd, 0, 1000)
				for i := lo; i < min(lo+1000, n); i++ {
					cmds = append(cmds, pipe.HGetAll(ctx, rs.KeyAt(1, g.ID(i))))
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Error(err)
					return
				}
				for _, c := range cmds {
					for k, v := range c.Val() {
						bytesRead.Add(int64(len(k) + len(v)))
					}
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	logf(b, "raw Redis pipelined HGETALL: %d keys in %s (%.0f keys/s, %d MiB)", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), bytesRead.Load()>>20)
}

// rawES reads every document's _source with the sweep's own range scan
// (search_after on user_id, pages of 1000) over the whole key space,
// decoding each: Elasticsearch's raw content-read rate in this run.
func rawES(b *testing.B, es *esstore.Store) {
	start := time.Now()
	var docs int64
	err := es.Scan(context.Background(), 0, math.MaxInt64, -1, func(page []esstore.Doc) error {
		docs += int64(len(page))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	logf(b, "raw Elasticsearch _source scan: %d documents in %s (%.0f docs/s)", docs, took.Round(time.Millisecond), float64(docs)/took.Seconds())
}

// externalDrift drifts 0.1% of the records through each store's own API,
// the way other writers do, in four kinds (a quarter each): a Redis field
// changed with HSET leaving triad's v/d alone, a Redis string where the
// hash belongs, an ES _update of one field (labels kept, _version
// raised), an ES document deleted. It returns the planted "key/store" set.
func externalDrift(b *testing.B, ns *stacktest.Namespace, rs *redisstore.Store, es *esstore.Store, n int64) map[string]bool {
	ctx := context.Background()
	g := ingest.NewGenerator(1)
	r := rand.New(rand.NewPCG(11, 11))
	out := map[string]bool{}
	var bulk bytes.Buffer
	pipe := ns.Redis().Pipeline()
	for i := 0; len(out) < int(n/1000); i++ {
		id := g.ID(r.Int64N(n))
		k := strconv.FormatInt(id, 10)
		if out[k+"/redis"] || out[k+"/elasticsearch"] {
			continue
		}
		switch len(out) % 4 {
		case 0:
			pipe.HSet(ctx, rs.KeyAt(1, id), "tags", `["changed-by-hset"]`)
			out[k+"/redis"] = true
		case 1:
			pipe.Del(ctx, rs.KeyAt(1, id))
			pipe.Set(ctx, rs.KeyAt(1, id), "not a hash", 0)
			out[k+"/redis"] = true
		case 2:
			fmt.Fprintf(&bulk, `{"update":{"_index":%q,"_id":"%d"}}`+"\n"+`{"doc":{"tags":["changed-by-update"]}}`+"\n", es.Index(1), id)
			out[k+"/elasticsearch"] = true
		case 3:
			fmt.Fprintf(&bulk, `{"delete":{"_index":%q,"_id":"%d"}}`+"\n", es.Index(1), id)
			out[k+"/elasticsearch"] = true
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	res, err := ns.ES().Bulk(bytes.NewReader(bulk.Bytes()), ns.ES().Bulk.WithRefresh("true"))
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	return out
}

// load writes n loadgen profiles into the three stores directly, in
// batches of 5000, two batches in flight.
func load(b *testing.B, n int64, pg *pgstore.Store, rs *redisstore.Store, es *esstore.Store) {
	ctx := context.Background()
	g := ingest.NewGenerator(1)
	batches := make(chan []*ingest.Profile, 4)
	go func() {
		defer close(batches)
		var d ingest.Decoder
		var line []byte
		for lo := int64(0); lo < n; lo += 5000 {
			batch := make([]*ingest.Profile, 0, 5000)
			for i := lo; i < min(lo+5000, n); i++ {
				line = g.AppendJSONL(line[:0], i)
				p, err := d.DecodeJSON(line)
				if err != nil {
					panic(err)
				}
				batch = append(batch, p)
			}
			batches <- batch
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 2 {
		wg.Go(func() {
			for batch := range batches {
				if _, err := pg.Apply(ctx, batch, make([]bool, len(batch)), nil); err != nil {
					errs <- err
					return
				}
				out := make([]ingest.WriteResult, len(batch))
				var dw sync.WaitGroup
				dw.Go(func() {
					if err := rs.WriteAt(ctx, 1, batch, make([]ingest.WriteResult, len(batch))); err != nil {
						errs <- err
					}
				})
				if err := es.WriteAt(ctx, 1, batch, out); err != nil {
					errs <- err
				}
				dw.Wait()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// drift changes 0.1% of the records, uniformly at random: half get
// another digest in Redis (the hash's content changed behind the
// writer, digest updated), half lose their index document. It returns
// the planted "key/store" set.
func drift(b *testing.B, ns *stacktest.Namespace, rs *redisstore.Store, es *esstore.Store, n int64) map[string]bool {
	ctx := context.Background()
	g := ingest.NewGenerator(1)
	r := rand.New(rand.NewPCG(7, 7))
	out := map[string]bool{}
	var bulk bytes.Buffer
	for len(out) < int(n/1000) {
		id := g.ID(r.Int64N(n))
		k := strconv.FormatInt(id, 10)
		if out[k+"/redis"] || out[k+"/elasticsearch"] {
			continue
		}
		if len(out)%2 == 0 {
			if err := ns.Redis().HSet(ctx, rs.Key(id), redisstore.FieldDigest, "12345").Err(); err != nil {
				b.Fatal(err)
			}
			out[k+"/redis"] = true
		} else {
			fmt.Fprintf(&bulk, `{"delete":{"_index":%q,"_id":"%d"}}`+"\n", es.Index(1), id)
			out[k+"/elasticsearch"] = true
		}
	}
	res, err := ns.ES().Bulk(bytes.NewReader(bulk.Bytes()))
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	return out
}

// rssBytes is this process's resident set size.
func rssBytes() int64 {
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		return 0
	}
	defer f.Close()
	var size, rss int64
	if _, err := fmt.Fscan(bufio.NewReader(f), &size, &rss); err != nil {
		return 0
	}
	return rss * int64(os.Getpagesize())
}

// serverCPU is the CPU time (user + system) the store servers on this
// machine have used, by server: every postgres process's own time plus
// what its postmaster collected from backends that exited, redis-server's
// and Elasticsearch's JVM's. Compared before and after a sweep, it splits
// the sweep's cost by store (other servers on the machine idle meanwhile).
func serverCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	entries, _ := os.ReadDir("/proc")
	tick := time.Second / 100 // USER_HZ
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// comm is in parentheses and may hold spaces: the fields after
		// the last ')' are state, ppid, … utime (14th field overall).
		open, end := bytes.IndexByte(raw, '('), bytes.LastIndexByte(raw, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(raw[open+1 : end])
		f := strings.Fields(string(raw[end+1:]))
		if len(f) < 15 {
			continue
		}
		n := func(i int) time.Duration { v, _ := strconv.ParseInt(f[i], 10, 64); return time.Duration(v) * tick }
		own := n(11) + n(12) // utime, stime
		var server string
		switch {
		case comm == "postgres":
			server = "postgres"
			if ppid, _ := strconv.Atoi(f[1]); !isComm(ppid, "postgres") {
				own += n(13) + n(14) // the postmaster: cutime, cstime of backends gone
			}
		case strings.HasPrefix(comm, "redis-server"):
			server = "redis"
		case comm == "java":
			if cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); bytes.Contains(cmd, []byte("org.elasticsearch")) {
				server = "elasticsearch"
			}
		}
		if server != "" {
			out[server] += own
		}
	}
	var self syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) == nil {
		out["triad"] = time.Duration(self.Utime.Nano() + self.Stime.Nano())
	}
	return out
}

func isComm(pid int, comm string) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.TrimSpace(string(raw)) == comm
}
