package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestExportsStreamEveryPage: a list's CSV and NDJSON exports stream
// every row its filter selects, across the API's pages of 1000, each
// once; a bad format is refused.
func TestExportsStreamEveryPage(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startMigrated(t, configtest.For(t, ns))
	ctx := t.Context()
	var run int64
	require.NoError(t, ns.Pool().QueryRow(ctx, `INSERT INTO repair_runs (trigger, actor, entity) VALUES ('api', 'test', 'profile') RETURNING id`).Scan(&run))
	// 2,500 entries in redis, 300 in elasticsearch.
	_, err := ns.Pool().Exec(ctx, `INSERT INTO repair_log (run_id, entity, key, store, class, action, priority, outcome, dedupe_key)
		SELECT $1, 'profile', g::text, CASE WHEN g <= 2500 THEN 'redis' ELSE 'elasticsearch' END, 'stale', 'write', 'high', 'repaired', 'k' || g
		FROM generate_series(1, 2800) g`, run)
	require.NoError(t, err)

	nd := call(t, a, http.MethodGet, "/api/v1/repairs?store=redis&format=ndjson", adminToken, nil)
	require.Equal(t, http.StatusOK, nd.code)
	require.Equal(t, "application/x-ndjson", nd.hdr.Get("Content-Type"))
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(nd.raw), "\n") {
		var e struct{ Key, Store string }
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		require.Equal(t, "redis", e.Store)
		require.False(t, seen[e.Key], "entry %s twice", e.Key)
		seen[e.Key] = true
	}
	require.Len(t, seen, 2500, "every page of the filter, once")

	csv := call(t, a, http.MethodGet, "/api/v1/repairs?store=elasticsearch&format=csv", adminToken, nil)
	require.Equal(t, http.StatusOK, csv.code)
	lines := strings.Split(strings.TrimSpace(csv.raw), "\n")
	require.Len(t, lines, 301, "a header and 300 rows")
	require.True(t, strings.HasPrefix(lines[0], "id,run_id,last_at,entity,key,store,class"), lines[0])

	// A keyset list (before): 2,300 audit entries of one actor, and the
	// caller's own before is where the export starts.
	_, err = ns.Pool().Exec(ctx, `INSERT INTO audit_log (actor, role, via, method, route, path, status, request_id, remote)
		SELECT 'bulk', 'operator', 'token', 'POST', '/api/v1/repairs', '/api/v1/repairs', 200, 'r' || g, '127.0.0.1' FROM generate_series(1, 2300) g`)
	require.NoError(t, err)
	audit := call(t, a, http.MethodGet, "/api/v1/audit?actor=bulk&format=ndjson", adminToken, nil)
	require.Equal(t, http.StatusOK, audit.code)
	ids := map[int64]bool{}
	var lowest int64
	for _, line := range strings.Split(strings.TrimSpace(audit.raw), "\n") {
		var e struct{ ID int64 }
		require.NoError(t, json.Unmarshal([]byte(line), &e), line)
		require.False(t, ids[e.ID])
		ids[e.ID] = true
		if lowest == 0 || e.ID < lowest {
			lowest = e.ID
		}
	}
	require.Len(t, ids, 2300, "every page, once")
	below := call(t, a, http.MethodGet, fmt.Sprintf("/api/v1/audit?actor=bulk&format=csv&before=%d", lowest+100), adminToken, nil)
	require.Len(t, strings.Split(strings.TrimSpace(below.raw), "\n"), 101, "a header and the 100 entries below before")

	bad := call(t, a, http.MethodGet, "/api/v1/repairs?format=xml", adminToken, nil)
	require.Equal(t, http.StatusBadRequest, bad.code)
	require.Contains(t, bad.raw, "format must be json, csv or ndjson")
}
