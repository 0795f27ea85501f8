package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// BenchmarkReadPath measures the profile API with wrk (concurrency 64) for
// each tier, beside a no-op gin handler (the HTTP ceiling) and
// redis-benchmark GET at the same concurrency, in one run on one machine.
// It loads TRIAD_BENCH_READ_ROWS profiles (default 100000) into a private
// namespace first. Run it with `make bench-read`; it prints a table and
// reports the ratios as metrics.
func BenchmarkReadPath(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatalf("wrk is needed (apt-get install wrk; make bench-read installs it): %v", err)
	}
	rows := int64(100000)
	if v := os.Getenv("TRIAD_BENCH_READ_ROWS"); v != "" {
		rows, _ = strconv.ParseInt(v, 10, 64)
	}
	dur := "10s"
	if v := os.Getenv("TRIAD_BENCH_READ_DURATION"); v != "" {
		dur = v
	}
	ns := stacktest.New(b)
	env := replicaEnv(ns)
	code, out, errs := run(b, env, "migrate", "up")
	if code != ExitOK {
		b.Fatal(out, errs)
	}
	start := time.Now()
	code, out, errs = run(b, env, "loadgen", "--count", strconv.FormatInt(rows, 10), "--ingest", "--progress", "never")
	if code != ExitOK {
		b.Fatal(out, errs)
	}
	b.Logf("loaded %d profiles in %s", rows, time.Since(start).Round(time.Millisecond))

	cfg := replicaConfig(b, ns)
	// Warnings only, as in production: the test logger would print every
	// request's debug line.
	cfg.Log.Level = "warn"
	quiet := newLogger(cfg.Log, os.Stderr)
	startReplica := func(b testing.TB, c config.Config) *app.App { return startReplicaLogging(b, c, quiet) }
	cached := startReplica(b, cfg)
	noCache := cfg
	noCache.Lookup.CacheMaxBytes = 0
	redisOnly := startReplica(b, noCache)
	cold := noCache
	// An empty Redis keyspace: every lookup reads Postgres (and refills
	// this keyspace, so each ID is asked for once).
	cold.ProfileCache.KeyPrefix = ns.RedisPrefix + "cold:"
	// Its filter is full at build time (no headroom), so the unknown-ID
	// case below meets it at exactly its false-positive budget.
	cold.Lookup.BloomMinCapacity, cold.Lookup.BloomHeadroom = 1000, 1
	coldApp := startReplica(b, cold)
	awaitReady(b, cached, redisOnly, coldApp)

	// The no-op ceiling: gin with one route answering a fixed profile-sized body.
	sample := get(b, cached, 1)
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	body := []byte(sample.body)
	e.GET("/noop/:id", func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", body) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	dir := b.TempDir()
	hot := 1000
	type result struct {
		name          string
		rps, p50, p99 float64 // p50/p99 in ms
	}
	var results []result
	wrk := func(name, base, path string, first, span int64, sequential bool, d string) result {
		unknownIDs := first >= 1_000_000_000
		lua := strings.ReplaceAll(luaScript(first, span, sequential), "PATH", path)
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".lua")
		if err := os.WriteFile(p, []byte(lua), 0o644); err != nil {
			b.Fatal(err)
		}
		out, err := exec.Command("wrk", "-t2", "-c64", "-d"+d, "--latency", "-s", p,
			"-H", "Authorization: Bearer "+replicaToken, "http://"+base).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk %s: %v\n%s", name, err, out)
		}
		r := result{name: name + " [" + d + "]", rps: wrkRate(b, out), p50: wrkPercentile(b, out, "50%"), p99: wrkPercentile(b, out, "99%")}
		if strings.Contains(string(out), "Non-2xx") != unknownIDs {
			b.Fatalf("wrk %s: want only 2xx answers for known IDs, only 404s for unknown ones\n%s", name, out)
		}
		results = append(results, r)
		return r
	}
	// Let the stores settle after the load (Elasticsearch refreshes and
	// merges, Postgres autovacuum) so they do not steal the cores from
	// the first case.
	time.Sleep(15 * time.Second)
	noop := wrk("no-op gin handler", ln.Addr().String(), "/noop/", 1, int64(hot), false, dur)
	cache := wrk("in-process cache tier", cached.Addr, "/api/v1/profiles/", 1, int64(hot), false, dur)
	redis := wrk("redis tier (cache off)", redisOnly.Addr, "/api/v1/profiles/", 1, rows, false, dur)
	// Every cold request must be a new ID: the run is as long as the rows
	// last at up to 25k requests/s.
	coldDur := fmt.Sprintf("%ds", max(1, rows/25000))
	coldR := wrk("postgres tier (cold)", coldApp.Addr, "/api/v1/profiles/", 1, rows, true, coldDur)

	// The ceiling again, last: the better of the two runs is the ceiling.
	if again := wrk("no-op gin handler (again)", ln.Addr().String(), "/noop/", 1, int64(hot), false, dur); again.rps > noop.rps {
		noop = again
	}
	before := metrics(b, cached)
	wrk("unknown IDs (filter, 2x headroom)", cached.Addr, "/api/v1/profiles/", 1_000_000_000, 1_000_000_000, true, dur)
	after := metrics(b, cached)
	beforeFull := metrics(b, coldApp)
	wrk("unknown IDs (filter full)", coldApp.Addr, "/api/v1/profiles/", 1_000_000_000, 1_000_000_000, true, dur)
	afterFull := metrics(b, coldApp)

	rb, err := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(stacktest.ServerSettings(b).Stack.RedisPort),
		"-t", "get", "-c", "64", "-n", "500000", "--csv").Output()
	if err != nil {
		b.Fatalf("redis-benchmark: %v", err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(rb))).ReadAll()
	if err != nil || len(recs) < 2 {
		b.Fatalf("redis-benchmark output %q: %v", rb, err)
	}
	raw := result{name: "redis-benchmark -t get -c 64"}
	raw.rps, _ = strconv.ParseFloat(recs[1][1], 64)
	raw.p50, _ = strconv.ParseFloat(recs[1][4], 64)
	raw.p99, _ = strconv.ParseFloat(recs[1][6], 64)
	results = append(results, raw)

	type unknownShare struct{ requests, stopped, passed, reads float64 }
	share := func(before, after string) unknownShare {
		d := func(series string) float64 { return counter(after, series) - counter(before, series) }
		u := unknownShare{stopped: d(`triad_lookup_ids_total{result="missing",tier="filter"}`), passed: d(`triad_lookup_ids_total{result="missing",tier="postgres"}`),
			reads: d(`triad_lookup_store_ids_total{store="redis"}`) + d(`triad_lookup_store_ids_total{store="postgres"}`)}
		u.requests = u.stopped + u.passed
		return u
	}
	unknown := []struct {
		name string
		u    unknownShare
	}{{"2x headroom (default)", share(before, after)}, {"filter full (headroom 1)", share(beforeFull, afterFull)}}
	fmt.Printf("\n%-38s %12s %10s %10s\n", "case (wrk -t2 -c64 [duration])", "requests/s", "p50 ms", "p99 ms")
	for _, r := range results {
		fmt.Printf("%-38s %12.0f %10.3f %10.3f\n", r.name, r.rps, r.p50, r.p99)
	}
	fmt.Printf("\ncache tier / no-op handler: %.1f%% (target >= 70%%)\n", 100*cache.rps/noop.rps)
	fmt.Printf("redis tier / redis-benchmark GET: %.1f%% (target >= 35%%)\n", 100*redis.rps/raw.rps)
	fmt.Printf("cold tier: %.0f requests/s\n", coldR.rps)
	for _, x := range unknown {
		fmt.Printf("unknown IDs, %s: %.0f requests, %.4f%% stopped by the filter, %.4f%% let through (budget %.2f%%), %.5f store reads per unknown-ID request\n",
			x.name, x.u.requests, 100*x.u.stopped/x.u.requests, 100*x.u.passed/x.u.requests, 100*cfg.Lookup.BloomFalsePositive, x.u.reads/x.u.requests)
	}
	b.ReportMetric(100*cache.rps/noop.rps, "cache_pct_of_noop")
	b.ReportMetric(100*redis.rps/raw.rps, "redis_pct_of_redis-benchmark")
}

// luaScript asks for first + random(span), or walks IDs per thread.
func luaScript(first, span int64, sequential bool) string {
	pick := fmt.Sprintf("%d + math.random(0, %d)", first, span-1)
	if sequential {
		pick = fmt.Sprintf("%d + tid * %d + n", first, span/2)
	}
	return fmt.Sprintf(`local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
n = 0
function init() math.randomseed(tid + 1) end
request = function()
  n = n + 1
  return wrk.format("GET", "PATH" .. (%s))
end
`, pick)
}

var rateRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrkRate(b *testing.B, out []byte) float64 {
	m := rateRe.FindSubmatch(out)
	if m == nil {
		b.Fatalf("no Requests/sec in wrk output:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// wrkPercentile reads a --latency percentile line ("50%  1.23ms") in ms.
func wrkPercentile(b *testing.B, out []byte, pct string) float64 {
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == pct {
			d, err := time.ParseDuration(strings.Replace(f[1], "us", "µs", 1))
			if err != nil {
				b.Fatalf("wrk latency %q: %v", f[1], err)
			}
			return float64(d.Microseconds()) / 1000
		}
	}
	b.Fatalf("no %s latency in wrk output:\n%s", pct, out)
	return 0
}

// counter reads one sample from a /metrics text page.
func counter(page, series string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}
