package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestViewersSeeNoPII: configured profile fields and span attributes come
// back as "[redacted]" to viewers — profile reads, lookups, the trace
// view and its OTLP export — while operators see the values.
func TestViewersSeeNoPII(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startMigrated(t, configtest.For(t, ns))
	mint := func(name, role string) string {
		return call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": name, "role": role}).body["data"].(map[string]any)["secret"].(string)
	}
	viewer, operator := mint("pii-viewer", "viewer"), mint("pii-operator", "operator")

	line := `{"user_id": 11, "version": 5, "props": {"email": "alice@example.org", "city": "Lyon"}, "devices": [{"id": "fp-1", "os": "ios", "model": "x"}]}` + "\n"
	require.Equal(t, http.StatusOK, call(t, a, http.MethodPost, "/api/v1/profiles/batch", operator, []byte(line)).code)
	require.Eventually(t, func() bool {
		return call(t, a, http.MethodGet, "/api/v1/profiles/11", operator, nil).code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)

	op := call(t, a, http.MethodGet, "/api/v1/profiles/11", operator, nil)
	require.Contains(t, op.raw, "alice@example.org")
	require.Contains(t, op.raw, "fp-1")
	v := call(t, a, http.MethodGet, "/api/v1/profiles/11", viewer, nil)
	require.Equal(t, http.StatusOK, v.code)
	require.NotContains(t, v.raw, "alice@example.org")
	require.NotContains(t, v.raw, "fp-1")
	p := v.body["data"].(map[string]any)
	require.Equal(t, "[redacted]", p["props"].(map[string]any)["email"])
	require.Equal(t, "Lyon", p["props"].(map[string]any)["city"], "other fields stay")
	require.Equal(t, "[redacted]", p["devices"])
	many := call(t, a, http.MethodPost, "/api/v1/profiles/lookup", viewer, map[string]any{"ids": []int{11}})
	require.Equal(t, http.StatusOK, many.code, many.raw)
	require.NotContains(t, many.raw, "alice@example.org")
	require.Contains(t, many.raw, `"email":"[redacted]"`)

	// The side-by-side check: viewers see the fields redacted, and not a
	// corrupt copy's raw value (it may hold anything); operators see both.
	// (The pipeline's own Redis write lands first: it would replace the
	// string below.)
	require.Eventually(t, func() bool {
		c := call(t, a, http.MethodGet, "/api/v1/checks/profile/11", operator, nil)
		return c.code == http.StatusOK && c.body["data"].(map[string]any)["consistent"] == true
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, ns.Redis().Set(t.Context(), ns.RedisPrefix+"profile:11", `{"email": "alice@example.org"}`, 0).Err())
	side := call(t, a, http.MethodGet, "/api/v1/checks/profile/11?fields=true", operator, nil)
	require.Equal(t, http.StatusOK, side.code, side.raw)
	require.Equal(t, "1", side.hdr.Get("X-Triad-Inconsistent"))
	stores := side.body["data"].(map[string]any)["stores"].(map[string]any)
	require.Equal(t, "corrupt", stores["redis"].(map[string]any)["class"])
	require.Equal(t, `{"email": "alice@example.org"}`, stores["redis"].(map[string]any)["raw"], "the raw stored value, as stored")
	require.Equal(t, "alice@example.org", stores["postgres"].(map[string]any)["fields"].(map[string]any)["props"].(map[string]any)["email"])
	vside := call(t, a, http.MethodGet, "/api/v1/checks/profile/11?fields=true", viewer, nil)
	require.Equal(t, http.StatusOK, vside.code, vside.raw)
	require.NotContains(t, vside.raw, "alice@example.org")
	require.NotContains(t, vside.raw, "fp-1")
	vstores := vside.body["data"].(map[string]any)["stores"].(map[string]any)
	require.Equal(t, "[redacted]", vstores["redis"].(map[string]any)["raw"])
	require.Equal(t, "Lyon", vstores["postgres"].(map[string]any)["fields"].(map[string]any)["props"].(map[string]any)["city"])

	traceID := "0af7651916cd43dd8448eb211c80319c"
	now := time.Now()
	otlp, _ := json.Marshal(map[string]any{"resourceSpans": []any{map[string]any{
		"resource": map[string]any{"attributes": []any{map[string]any{"key": "service.name", "value": map[string]any{"stringValue": "web"}}}},
		"scopeSpans": []any{map[string]any{"spans": []any{map[string]any{
			"traceId": traceID, "spanId": "00f067aa0ba902b7", "name": "login",
			"startTimeUnixNano": fmt.Sprint(now.UnixNano()), "endTimeUnixNano": fmt.Sprint(now.Add(time.Millisecond).UnixNano()),
			"attributes": []any{
				map[string]any{"key": "user.email", "value": map[string]any{"stringValue": "alice@example.org"}},
				map[string]any{"key": "http.method", "value": map[string]any{"stringValue": "POST"}}}}}}}}}})
	res, err := http.Post("http://"+a.OTLPHTTPAddr+"/v1/traces", "application/json", bytes.NewReader(otlp))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)

	require.Contains(t, call(t, a, http.MethodGet, "/api/v1/traces/"+traceID, operator, nil).raw, "alice@example.org")
	tv := call(t, a, http.MethodGet, "/api/v1/traces/"+traceID, viewer, nil)
	require.Equal(t, http.StatusOK, tv.code, tv.raw)
	require.NotContains(t, tv.raw, "alice@example.org")
	require.Contains(t, tv.raw, `"user.email":"[redacted]"`)
	require.Contains(t, tv.raw, `"http.method":"POST"`)
	exp := call(t, a, http.MethodGet, "/api/v1/traces/"+traceID+"?format=otlp", viewer, nil)
	require.Equal(t, http.StatusOK, exp.code)
	require.NotContains(t, exp.raw, "alice@example.org")
	require.Contains(t, exp.raw, `[redacted]`)

	// No oracle: a viewer cannot confirm a guess of a redacted value by
	// searching for it; an operator can search (and read) it.
	guess := "/api/v1/traces?attr=" + url.QueryEscape("user.email=alice@example.org")
	vs := call(t, a, http.MethodGet, guess, viewer, nil)
	require.Equal(t, http.StatusForbidden, vs.code, vs.raw)
	require.NotContains(t, vs.raw, traceID)
	os := call(t, a, http.MethodGet, guess, operator, nil)
	require.Equal(t, http.StatusOK, os.code, os.raw)
	require.Contains(t, os.raw, traceID)
	require.Equal(t, http.StatusOK, call(t, a, http.MethodGet, "/api/v1/traces?attr=http.method%3DPOST", viewer, nil).code, "other attributes stay searchable")
}
