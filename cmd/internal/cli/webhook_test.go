package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair/alert"
)

// TestWebhookCommands drives `triad webhook add|list|test|rotate|remove`
// against a running triad and a local receiver: the secret add prints
// verifies the test delivery; after a rotation both the old and the new
// secret verify the next one; remove deletes the endpoint.
func TestWebhookCommands(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)
	var mu sync.Mutex
	var last struct {
		h    http.Header
		body []byte
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		last.h, last.body = r.Header.Clone(), b
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	api := []string{"--server", "http://" + a.Addr, "--token", replicaToken}
	cli := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := run(t, nil, append(args, api...)...)
		require.Equal(t, want, code, "triad %v: %s %s", args, out, errs)
		return out
	}
	secretIn := func(out string) (string, string) {
		t.Helper()
		m := regexp.MustCompile(`secret \(X-Triad-Signature\):\s+(\S+)\nStandard Webhooks secret \(webhook-signature\):\s+(\S+)`).FindStringSubmatch(out)
		require.Len(t, m, 3, out)
		return m[1], m[2]
	}
	verified := func(secret string) error {
		mu.Lock()
		defer mu.Unlock()
		return alert.Verify(secret, last.h.Get(alert.SignatureHeader), last.body, time.Now(), time.Minute)
	}

	out := cli(ExitOK, "webhook", "add", "--name", "pager", "--url", recv.URL+"/hook", "--format", "json", "--rule", "DriftRateHigh")
	first, standard := secretIn(out)
	require.Equal(t, first, standard, "a generated secret is already in the Standard Webhooks form")
	out = cli(ExitOK, "webhook", "list")
	require.Regexp(t, `pager\s+json\s+http://127\.0\.0\.1:\d+/hook\s+DriftRateHigh\s+true\s+-`, out)
	require.NotContains(t, out, first, "list never shows a secret")

	out = cli(ExitOK, "webhook", "test", "pager")
	require.Contains(t, out, "delivered")
	require.NoError(t, verified(first))

	out = cli(ExitOK, "webhook", "rotate", "pager", "--grace", "1h")
	second, _ := secretIn(out)
	require.NotEqual(t, first, second)
	require.Contains(t, out, "the previous secret signs too until")
	cli(ExitOK, "webhook", "test", "1")
	require.NoError(t, verified(first), "the old secret verifies during the grace")
	require.NoError(t, verified(second), "and the new one")
	require.Regexp(t, `pager .* 20\d\d-`, cli(ExitOK, "webhook", "list"), "list shows how long the old secret signs")

	require.Contains(t, cli(ExitOK, "webhook", "remove", "pager"), "removed webhook 1 (pager)")
	require.NotContains(t, cli(ExitOK, "webhook", "list"), "pager")
	cli(ExitNotFound, "webhook", "test", "pager")
	cli(ExitUsage, "webhook", "frobnicate")
	cli(ExitUsage, "webhook", "add", "--name", "x")
}
