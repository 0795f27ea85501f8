package cli

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

// TestSilenceAndPlanCommands drives `triad silence` and `triad plan`
// against a running triad: a silence added, listed, previewed and
// expired; a plan of a drifted profile created, reviewed (show, entries)
// and applied once.
func TestSilenceAndPlanCommands(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	a := startReplica(t, replicaConfig(t, ns))
	awaitReady(t, a)
	api := []string{"--server", "http://" + a.Addr, "--token", replicaToken}
	cli := func(want int, args ...string) string {
		t.Helper()
		code, out, errs := run(t, nil, append(args, api...)...)
		require.Equal(t, want, code, "triad %v: %s %s", args, out, errs)
		return out + errs
	}

	out := cli(ExitOK, "silence", "add", "alertname=SweepFailed", "entity=~ord.*", "--comment", "order migration", "--for", "1h")
	require.Regexp(t, `silence 1 active: alertname=SweepFailed entity=~ord\.\* until 20`, out)
	require.Regexp(t, `1\s+active\s+alertname=SweepFailed entity=~ord\.\*\s+\S+\s+bootstrap-admin\s+order migration`, cli(ExitOK, "silence", "list"))
	require.Contains(t, cli(ExitOK, "silence", "preview", "alertname=SweepFailed"), "would mute 0 active alert(s)")
	require.Contains(t, cli(ExitOK, "silence", "expire", "1"), "silence 1 expired")
	require.Contains(t, cli(ExitNotFound, "silence", "expire", "1"), "not found")
	require.Contains(t, cli(ExitUsage, "silence", "add", "alertname=X"), "--comment is required")
	require.Contains(t, cli(ExitUsage, "silence", "add", "alertname", "--comment", "x"), "label=value or label=~regex")

	// A drifted profile: a plan, reviewed, applied once.
	code, body := post(t, a, "/api/v1/profiles/batch", []byte(profileLine(31, 2, "a")+"\n"+profileLine(32, 2, "b")))
	require.Equal(t, http.StatusOK, code, body)
	key := ns.RedisPrefix + "profile:31"
	until(t, 30*time.Second, "profiles 31 and 32 in every store", func() bool {
		code, got := apiGet(t, a.Addr, "/api/v1/checks/profile/31")
		code2, got2 := apiGet(t, a.Addr, "/api/v1/checks/profile/32")
		return code == http.StatusOK && code2 == http.StatusOK &&
			strings.Contains(string(got), `"consistent":true`) && strings.Contains(string(got2), `"consistent":true`)
	})
	require.NoError(t, ns.Redis().HSet(t.Context(), key, "tags", `["drift"]`).Err())
	out = cli(ExitOK, "plan", "create", "31", "32")
	m := regexp.MustCompile(`plan (\d+) · profile · 2 IDs: 2 records, 1 writes planned`).FindStringSubmatch(out)
	require.Len(t, m, 2, out)
	id := m[1]
	require.Regexp(t, `redis\s+field_mismatch\s+write\s+1`, cli(ExitOK, "plan", "show", id))
	csv := strings.Split(strings.TrimSpace(cli(ExitOK, "plan", "entries", id)), "\n")
	require.Len(t, csv, 2, "a header and the one entry")
	require.Contains(t, csv[1], "profile,31,redis,field_mismatch,write")
	require.Regexp(t, `\d+\s+profile\s+2 IDs\s+2\s+1\s+bootstrap-admin\s+-`, cli(ExitOK, "plan", "list"))
	require.Contains(t, cli(ExitOK, "plan", "apply", id), "1 repaired, 0 skipped")
	require.Contains(t, cli(ExitUsage, "plan", "apply", id), "already applied")
	require.Contains(t, cli(ExitUsage, "plan", "create"), "give keys, --sweep ID, or a filter")
}
