package postgres_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/server"
	"github.com/triad-dev/triad/server/auth"
)

// BenchmarkRepairLogPage (make bench-log): the repair log's pages as the
// dashboard asks for them (GET /api/v1/repairs, 50 entries, over real
// HTTP and the real Postgres) with TRIAD_BENCH_LOG_ROWS generated entries
// (default 10M: 10 000 runs, 90% profile, half Redis, five classes, 80%
// repaired, 2% failed, 0.1% planned, spread over 29 days). Each case is
// asked 200 times; p50/p95/p99 are logged beside the store's own List
// call for the same page (the baseline without HTTP).
// TRIAD_BENCH_LOG_KEEP keeps the rows for the next run.
func BenchmarkRepairLogPage(b *testing.B) {
	n := int64(10_000_000)
	if v := os.Getenv("TRIAD_BENCH_LOG_ROWS"); v != "" {
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	ctx := context.Background()
	var ns *stacktest.Namespace
	if os.Getenv("TRIAD_BENCH_LOG_KEEP") != "" {
		ns = stacktest.Kept(b, fmt.Sprintf("repairlog_%d", n))
	} else {
		ns = stacktest.New(b)
	}
	ns.Migrate(b)
	var have int64
	if err := ns.Pool().QueryRow(ctx, `SELECT count(*) FROM repair_log`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have != n {
		start := time.Now()
		generateLog(b, ns, n)
		b.Logf("generated %d repair log entries in %s", n, time.Since(start).Round(time.Second))
	}
	l := postgres.NewLog(ns.Pool())
	const token = "bench-admin-token-0123456789"
	cfg := server.DefaultConfig()
	cfg.RateLimit = 0
	reg := prometheus.NewRegistry()
	s := server.New(server.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(nil, token), RepairLog: l})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	var someKey string
	var someRun int64
	if err := ns.Pool().QueryRow(ctx, `SELECT key, run_id FROM repair_log ORDER BY id DESC OFFSET 12345 LIMIT 1`).Scan(&someKey, &someRun); err != nil {
		b.Fatal(err)
	}
	_, next, err := l.List(ctx, repair.LogFilter{Limit: 50})
	if err != nil {
		b.Fatal(err)
	}
	ago := func(d time.Duration) string { return time.Now().Add(-d).UTC().Format(time.RFC3339) }
	day, week, days20, days19 := ago(24*time.Hour), ago(7*24*time.Hour), ago(20*24*time.Hour), ago(19*24*time.Hour)
	cases := []struct {
		name string
		q    url.Values
		f    repair.LogFilter
	}{
		{"first page", url.Values{}, repair.LogFilter{}},
		{"second page", url.Values{"after": {strconv.FormatInt(next, 10)}}, repair.LogFilter{After: next}},
		{"outcome=failed", url.Values{"outcome": {"failed"}}, repair.LogFilter{Outcome: "failed"}},
		{"outcome=planned (0.1%)", url.Values{"outcome": {"planned"}}, repair.LogFilter{Outcome: "planned"}},
		{"store=redis&class=orphan", url.Values{"store": {"redis"}, "class": {"orphan"}}, repair.LogFilter{Store: "redis", Class: "orphan"}},
		{"entity=order&outcome=conflict", url.Values{"entity": {"order"}, "outcome": {"conflict"}}, repair.LogFilter{Entity: "order", Outcome: "conflict"}},
		{"class=unknown (no match)", url.Values{"class": {"no_such_class"}}, repair.LogFilter{Class: "no_such_class"}},
		{"key=" + someKey, url.Values{"key": {someKey}}, repair.LogFilter{Key: someKey}},
		{"run=" + strconv.FormatInt(someRun, 10), url.Values{"run": {strconv.FormatInt(someRun, 10)}}, repair.LogFilter{RunID: someRun}},
		{"since=1 day ago", url.Values{"since": {day}}, repair.LogFilter{Since: time.Now().Add(-24 * time.Hour)}},
		{"until=7 days ago", url.Values{"until": {week}}, repair.LogFilter{Until: time.Now().Add(-7 * 24 * time.Hour)}},
		{"since/until 20-19 days ago&outcome=failed", url.Values{"since": {days20}, "until": {days19}, "outcome": {"failed"}},
			repair.LogFilter{Since: time.Now().Add(-20 * 24 * time.Hour), Until: time.Now().Add(-19 * 24 * time.Hour), Outcome: "failed"}},
	}
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	b.ResetTimer()
	for range b.N {
		for _, c := range cases {
			c.q.Set("limit", "50")
			var httpT, storeT []time.Duration
			rows := 0
			for range 200 {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/repairs?"+c.q.Encode(), nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d %s", c.name, res.StatusCode, body)
				}
				httpT = append(httpT, time.Since(t0))
				f := c.f
				f.Limit = 50
				t0 = time.Now()
				got, _, err := l.List(ctx, f)
				if err != nil {
					b.Fatal(err)
				}
				storeT = append(storeT, time.Since(t0))
				rows = len(got)
			}
			// Printed, not logged: go test keeps only the first lines of a
			// benchmark's log.
			fmt.Printf("%-44s %2d rows  HTTP p50 %7s p95 %7s p99 %7s | store List p50 %7s p95 %7s\n", c.name, rows,
				pct(httpT, .5).Round(10*time.Microsecond), pct(httpT, .95).Round(10*time.Microsecond), pct(httpT, .99).Round(10*time.Microsecond),
				pct(storeT, .5).Round(10*time.Microsecond), pct(storeT, .95).Round(10*time.Microsecond))
		}
	}
}

// generateLog writes n entries (and 10 000 runs) in statements of a
// million rows.
func generateLog(b *testing.B, ns *stacktest.Namespace, n int64) {
	ctx := context.Background()
	pool := ns.Pool()
	if _, err := pool.Exec(ctx, `TRUNCATE repair_runs CASCADE`); err != nil {
		b.Fatal(err)
	}
	var firstRun int64
	if err := pool.QueryRow(ctx, `INSERT INTO repair_runs (trigger, actor, entity, started_at, finished_at, repaired)
		SELECT 'schedule', 'sweep', 'profile', now() - g * interval '250 seconds', now() - g * interval '250 seconds' + interval '1 minute', 1000
		FROM generate_series(1, 10000) g RETURNING id`).Scan(&firstRun); err != nil {
		b.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT min(id) FROM repair_runs`).Scan(&firstRun); err != nil {
		b.Fatal(err)
	}
	per := max(1, n/10000)
	for lo := int64(1); lo <= n; lo += 1_000_000 {
		hi := min(lo+1_000_000-1, n)
		if _, err := pool.Exec(ctx, `INSERT INTO repair_log (run_id, entity, key, store, class, action, priority, before_version, before_digest,
			after_version, after_digest, outcome, error, attempts, first_at, last_at, dedupe_key)
		SELECT $1 + least((g - 1) / $4, 9999),
		       CASE WHEN g % 10 = 0 THEN 'order' ELSE 'profile' END,
		       ((g * 7919) % 5000000 + 1)::text,
		       CASE WHEN g % 2 = 0 THEN 'redis' ELSE 'elasticsearch' END,
		       (ARRAY['stale','stale','stale','stale','missing','missing','missing','field_mismatch','field_mismatch','orphan','ahead'])[1 + g % 11],
		       CASE WHEN g % 11 = 9 THEN 'delete' ELSE 'write' END,
		       CASE WHEN g % 2 = 0 THEN 'high' ELSE 'medium' END,
		       g, g * 31, g + 1, g * 37,
		       CASE WHEN g % 1000 < 800 THEN 'repaired' WHEN g % 1000 < 960 THEN 'noop' WHEN g % 1000 < 979 THEN 'conflict'
		            WHEN g % 1000 < 999 THEN 'failed' ELSE 'planned' END,
		       CASE WHEN g % 1000 BETWEEN 979 AND 998 THEN 'redis: i/o timeout' END,
		       1, now() - ($5 - g) * interval '250 milliseconds', now() - ($5 - g) * interval '250 milliseconds', 'bench-' || g
		FROM generate_series($2::bigint, $3::bigint) g`, firstRun, lo, hi, per, n); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "  %d / %d entries\n", hi, n)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE repair_log`); err != nil {
		b.Fatal(err)
	}
}
