package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
)

func TestProfileBatchAndDeleteEndpoints(t *testing.T) {
	ns := stacktest.New(t)
	cfg := ns.Config
	cfg.Archive.Dir = t.TempDir()
	a := start(t, cfg)
	body := []byte(`{"user_id": 1, "version": 3, "tags": ["a"]}
{"user_id": 2, "version": "x"}

{"user_id": 3, "version": 1, "props": {"k": "v"}}
{"user_id": 1, "version": 2, "tags": ["older"]}
`)
	// The pipeline starts after migrations: 503 until then.
	var r resp
	deadline := time.Now().Add(60 * time.Second)
	for {
		r = call(t, a, http.MethodPost, "/api/v1/profiles/batch", adminToken, body)
		if r.code != http.StatusServiceUnavailable || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, http.StatusOK, r.code, r.raw)
	data := r.body["data"].(map[string]any)
	require.EqualValues(t, 2, data["applied"], r.raw)
	require.EqualValues(t, 1, data["superseded"], r.raw)
	require.EqualValues(t, 1, data["quarantined"], r.raw)
	errs := data["errors"].([]any)
	require.Len(t, errs, 1)
	require.EqualValues(t, 2, errs[0].(map[string]any)["line"])
	require.Contains(t, errs[0].(map[string]any)["error"], "version")

	r = call(t, a, http.MethodDelete, "/api/v1/profiles/3?version=2", adminToken, nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, "applied", r.body["data"].(map[string]any)["outcome"])
	r = call(t, a, http.MethodDelete, "/api/v1/profiles/3?version=1", adminToken, nil)
	require.Equal(t, "superseded", r.body["data"].(map[string]any)["outcome"], "an older tombstone loses")
	r = call(t, a, http.MethodDelete, "/api/v1/profiles/abc", adminToken, nil)
	require.Equal(t, http.StatusBadRequest, r.code)

	// The pipeline's metrics are on /metrics, the seed's names exactly.
	deadline = time.Now().Add(30 * time.Second)
	for {
		m := call(t, a, http.MethodGet, "/metrics", "", nil)
		if strings.Contains(m.raw, "redis_pipeline_latency_ms_bucket") || time.Now().After(deadline) {
			for _, name := range []string{"redis_pipeline_latency_ms_bucket", "chunk_write_errors_total", `triad_ingest_shard_queue_depth{shard="63"}`,
				`triad_ingest_rows_total{outcome="applied"}`, `triad_ingest_quarantined_total{reason="bad_version"} 1`, "triad_archive_chunks_total"} {
				require.Contains(t, m.raw, name)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	rows, err := pgstore.New(ns.Pool()).Get(t.Context(), []int64{1, 3})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, p := range rows {
		switch p.UserID {
		case 1:
			require.EqualValues(t, 3, p.Version)
			require.JSONEq(t, `["a"]`, string(p.Field(0)))
		case 3:
			require.True(t, p.Deleted)
			require.EqualValues(t, 2, p.Version)
		}
	}
}
