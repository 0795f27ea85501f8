package app_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

// TestReviewedPlanIsAppliedExactly: a dry run saved as a plan is reviewed
// (counts by store and class, the full list as CSV and NDJSON), then
// applied. The apply writes exactly the plan's entries: a record changed
// after the review is skipped and reported, and drift that appeared
// after the review (another record, or another store of a planned
// record) is not touched. A plan applies once.
func TestReviewedPlanIsAppliedExactly(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startMigrated(t, configtest.For(t, ns))
	var body bytes.Buffer
	g := ingest.NewGenerator(7)
	var ids []int64
	for i := int64(0); i < 8; i++ {
		body.Write(g.AppendJSONL(nil, i))
		body.WriteByte('\n')
		ids = append(ids, g.ID(i))
	}
	r := call(t, a, http.MethodPost, "/api/v1/profiles/batch", adminToken, body.Bytes())
	require.Equal(t, http.StatusOK, r.code, r.raw)
	key := func(i int) string { return ns.RedisPrefix + fmt.Sprintf("profile:%d", ids[i]) }
	check := func(i int) map[string]any {
		c := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/checks/profile/%d", ids[i]), adminToken, nil)
		require.Equal(t, http.StatusOK, c.code, c.raw)
		return c.body["data"].(map[string]any)
	}
	class := func(i int, store string) string {
		return check(i)["stores"].(map[string]any)[store].(map[string]any)["class"].(string)
	}
	require.Eventually(t, func() bool {
		for i := range ids {
			if check(i)["consistent"] != true {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)

	// Drift through the stores' own APIs: profiles 0-4 in Redis (HSET),
	// 5 in Elasticsearch (_update); 6 and 7 stay consistent.
	ctx := t.Context()
	for i := 0; i < 5; i++ {
		require.NoError(t, ns.Redis().HSet(ctx, key(i), "tags", `["drift-before-review"]`).Err())
	}
	esUpdate := func(i int, doc string) {
		res, err := ns.ES().Update(a.Stores.ES.Alias(), fmt.Sprint(ids[i]), strings.NewReader(`{"doc":`+doc+`}`), ns.ES().Update.WithRefresh("true"))
		require.NoError(t, err)
		defer res.Body.Close()
		require.False(t, res.IsError(), res.String())
	}
	esUpdate(5, `{"tags": ["drift-before-review"]}`)

	// The plan: a dry run of all eight, saved.
	var all []int64
	all = append(all, ids...)
	p := call(t, a, http.MethodPost, "/api/v1/plans", adminToken, map[string]any{"entity": "profile", "ids": all})
	require.Equal(t, http.StatusCreated, p.code, p.raw)
	plan := p.body["data"].(map[string]any)
	planID := int64(plan["id"].(float64))
	require.EqualValues(t, 6, plan["entries"], "5 Redis writes and 1 Elasticsearch write")
	require.EqualValues(t, 8, plan["keys"])

	// Review: counts, sample, the full list.
	rv := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/plans/%d", planID), adminToken, nil)
	require.Equal(t, http.StatusOK, rv.code, rv.raw)
	counts := map[string]float64{}
	for _, c := range rv.body["data"].(map[string]any)["counts"].([]any) {
		m := c.(map[string]any)
		counts[m["store"].(string)+"/"+m["class"].(string)+"/"+m["action"].(string)] = m["count"].(float64)
	}
	require.Equal(t, map[string]float64{"redis/field_mismatch/write": 5, "elasticsearch/field_mismatch/write": 1}, counts)
	require.Len(t, rv.body["data"].(map[string]any)["sample"], 6)
	csv := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/plans/%d/entries?format=csv", planID), adminToken, nil)
	require.Equal(t, http.StatusOK, csv.code)
	require.Equal(t, "text/csv; charset=utf-8", csv.hdr.Get("Content-Type"))
	require.Contains(t, csv.hdr.Get("Content-Disposition"), fmt.Sprintf(`filename="triad-plan-%d.csv"`, planID))
	lines := strings.Split(strings.TrimSpace(csv.raw), "\n")
	require.Len(t, lines, 7, csv.raw)
	require.Equal(t, "entity,key,store,class,action,priority,before_version,before_digest,after_version,after_digest,observed", lines[0])
	nd := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/plans/%d/entries?format=ndjson", planID), adminToken, nil)
	require.Equal(t, "application/x-ndjson", nd.hdr.Get("Content-Type"))
	require.Len(t, strings.Split(strings.TrimSpace(nd.raw), "\n"), 6, nd.raw)

	// After the review: profile 1's Redis copy changes again; 6 drifts in
	// Redis and 0 in Elasticsearch (neither in the plan).
	require.NoError(t, ns.Redis().HSet(ctx, key(1), "tags", `["changed-after-review"]`).Err())
	require.NoError(t, ns.Redis().HSet(ctx, key(6), "tags", `["drift-after-review"]`).Err())
	esUpdate(0, `{"tags": ["drift-after-review"]}`)

	ap := call(t, a, http.MethodPost, fmt.Sprintf("/api/v1/plans/%d/apply", planID), adminToken, nil)
	require.Equal(t, http.StatusOK, ap.code, ap.raw)
	run := ap.body["data"].(map[string]any)["run"].(map[string]any)
	require.EqualValues(t, 5, run["repaired"], ap.raw)
	require.EqualValues(t, 1, run["skipped"], ap.raw)
	require.EqualValues(t, 0, run["conflicts"])
	require.EqualValues(t, 0, run["failed"])
	nw := ap.body["data"].(map[string]any)["not_written"].([]any)
	require.Len(t, nw, 1)
	skipped := nw[0].(map[string]any)
	require.Equal(t, fmt.Sprint(ids[1]), skipped["key"])
	require.Equal(t, "redis", skipped["store"])
	require.Contains(t, skipped["error"], "changed since the plan was reviewed")
	t.Logf("skipped: %s", skipped["error"])

	// Exactly the plan: written where planned, untouched elsewhere.
	for _, i := range []int{2, 3, 4} {
		require.Equal(t, true, check(i)["consistent"], "profile %d repaired", i)
	}
	require.Equal(t, "ok", class(0, "redis"), "0's planned Redis write was made")
	require.Equal(t, "field_mismatch", class(0, "elasticsearch"), "0's Elasticsearch drift came after the review: not in the plan, not written")
	require.Equal(t, "ok", class(5, "elasticsearch"))
	require.Equal(t, `["changed-after-review"]`, ns.Redis().HGet(ctx, key(1), "tags").Val(), "the changed record was not written")
	require.Equal(t, "field_mismatch", class(6, "redis"), "6 drifted after the review: not in the plan, not written")

	// The plan is kept, marked applied, and applies once.
	got := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/plans/%d", planID), adminToken, nil).body["data"].(map[string]any)
	require.Equal(t, "bootstrap-admin", got["applied_by"])
	require.EqualValues(t, run["id"], got["applied_run"])
	again := call(t, a, http.MethodPost, fmt.Sprintf("/api/v1/plans/%d/apply", planID), adminToken, nil)
	require.Equal(t, http.StatusConflict, again.code, again.raw)
	require.Contains(t, again.raw, "already applied")
	require.Equal(t, http.StatusNotFound, call(t, a, http.MethodGet, "/api/v1/plans/999999", adminToken, nil).code)

	// A plan from a filter of the repair log: the dry run above logged
	// profile 1's Redis entry, which is still drifted.
	f := call(t, a, http.MethodPost, "/api/v1/plans", adminToken, map[string]any{"entity": "profile",
		"filter": map[string]any{"store": "redis", "key": fmt.Sprint(ids[1])}})
	require.Equal(t, http.StatusCreated, f.code, f.raw)
	require.EqualValues(t, 1, f.body["data"].(map[string]any)["entries"], f.raw)
	require.Contains(t, f.body["data"].(map[string]any)["source"], "repair log store=redis key=")
}

// TestPlanFromSweepFindings: a sweep that only compares leaves its
// findings; a plan of them is reviewed and applied, and repairs exactly
// those records.
func TestPlanFromSweepFindings(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startMigrated(t, configtest.For(t, ns))
	var body bytes.Buffer
	g := ingest.NewGenerator(8)
	for i := int64(0); i < 50; i++ {
		body.Write(g.AppendJSONL(nil, i))
		body.WriteByte('\n')
	}
	require.Equal(t, http.StatusOK, call(t, a, http.MethodPost, "/api/v1/profiles/batch", adminToken, body.Bytes()).code)
	consistent := func(i int64) bool {
		c := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/checks/profile/%d", g.ID(i)), adminToken, nil)
		return c.code == http.StatusOK && c.body["data"].(map[string]any)["consistent"] == true
	}
	all := make([]int64, 50)
	for i := range all {
		all[i] = g.ID(int64(i))
	}
	require.Eventually(t, func() bool { // every profile in every store before the drift
		c := call(t, a, http.MethodPost, "/api/v1/checks", adminToken, map[string]any{"entity": "profile", "ids": all})
		return c.code == http.StatusOK && c.body["data"].(map[string]any)["inconsistent"] == float64(0)
	}, 30*time.Second, 100*time.Millisecond)
	for _, i := range []int64{3, 17, 40} {
		require.NoError(t, ns.Redis().HSet(t.Context(), ns.RedisPrefix+fmt.Sprintf("profile:%d", g.ID(i)), "tags", `["sweep-me"]`).Err())
	}
	r := call(t, a, http.MethodPost, "/api/v1/sweeps", adminToken, map[string]any{"entity": "profile", "mode": "records"})
	require.Equal(t, http.StatusCreated, r.code, r.raw)
	sweepID := int64(r.body["data"].(map[string]any)["id"].(float64))
	require.Eventually(t, func() bool {
		s := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/sweeps/%d", sweepID), adminToken, nil)
		return s.body["data"].(map[string]any)["state"] == "done"
	}, 60*time.Second, 200*time.Millisecond)

	p := call(t, a, http.MethodPost, "/api/v1/plans", adminToken, map[string]any{"sweep": sweepID})
	require.Equal(t, http.StatusCreated, p.code, p.raw)
	plan := p.body["data"].(map[string]any)
	require.EqualValues(t, 3, plan["entries"], p.raw)
	require.Equal(t, fmt.Sprintf("sweep %d's findings", sweepID), plan["source"])
	ap := call(t, a, http.MethodPost, fmt.Sprintf("/api/v1/plans/%.0f/apply", plan["id"]), adminToken, nil)
	require.Equal(t, http.StatusOK, ap.code, ap.raw)
	require.EqualValues(t, 3, ap.body["data"].(map[string]any)["run"].(map[string]any)["repaired"])
	for _, i := range []int64{3, 17, 40} {
		require.True(t, consistent(i), "profile %d repaired", g.ID(i))
	}
}
