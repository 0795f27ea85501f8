package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
)

func run(t testing.TB, environ []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdout: &out, stderr: &errb, environ: environ}
	code := e.main(t.Context(), args)
	return code, out.String(), errb.String()
}

func TestUsageAndVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := run(t, nil, "version")
	require.Equal(t, ExitOK, code)
	require.True(t, strings.HasPrefix(out, "triad "))
	code, out, _ = run(t, nil)
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "stack up|down|status")
	code, _, errs := run(t, nil, "frobnicate")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errs, `unknown command "frobnicate"`)
	code, _, errs = run(t, nil, "migrate", "sideways")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errs, "want up, down or status")
}

// TestInvalidConfigStopsStartUp: the message names the key and the problem,
// and never shows a secret.
func TestInvalidConfigStopsStartUp(t *testing.T) {
	t.Parallel()
	code, _, errs := run(t, []string{"TRIAD_REDIS_POOL_SIZE=0", "TRIAD_POSTGRES_PASSWORD=hunter2"}, "serve")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "invalid configuration")
	require.Contains(t, errs, "redis.pool_size: must be at least 1, got 0")
	require.NotContains(t, errs, "hunter2")
	code, _, errs = run(t, nil, "serve", "--set", "server.listen=nowhere")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, `server.listen: must be host:port, got "nowhere"`)
}

// TestTokenCommands drives migrate and token create/list/revoke against the
// real Postgres, in the test's own schema.
func TestTokenCommands(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	environ := configtest.Env(ns)
	code, out, errs := run(t, environ, "migrate", "up")
	require.Equal(t, ExitOK, code, errs)
	require.Contains(t, out, "api_tokens")
	code, out, _ = run(t, environ, "migrate", "status")
	require.Equal(t, ExitOK, code)
	require.NotContains(t, out, "pending")

	code, out, errs = run(t, environ, "token", "create", "--name", "deploy-bot", "--role", "operator")
	require.Equal(t, ExitOK, code, errs)
	secret := strings.TrimSpace(out)
	require.True(t, strings.HasPrefix(secret, "triad_"))
	require.Contains(t, errs, "shown only once")

	code, out, _ = run(t, environ, "token", "list")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "deploy-bot")
	require.Contains(t, out, "operator")
	require.NotContains(t, out, secret, "list never shows secrets")

	code, _, errs = run(t, environ, "token", "create", "--name", "x", "--role", "root")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errs, "want viewer, operator or admin")

	code, _, errs = run(t, environ, "token", "revoke", "deploy-bot")
	require.Equal(t, ExitUsage, code, "by ID only")
	require.Contains(t, errs, "token ID")
	id := regexp.MustCompile(`(?m)^(\d+)\s+deploy-bot`).FindStringSubmatch(out)
	require.Len(t, id, 2, out)
	code, out, _ = run(t, environ, "token", "revoke", id[1])
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "revoked token")
	code, _, errs = run(t, environ, "token", "revoke", id[1])
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, "token not found")

	code, out, _ = run(t, environ, "migrate", "down", "--all")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "down")
}

// TestMissingSchemaIsNamed: pointing triad at a schema that does not
// exist names the schema and the fix instead of failing on
// triad_schema_migrations; with postgres.create_schema, migrate up makes
// it.
func TestMissingSchemaIsNamed(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	schema := ns.Schema + "_fresh"
	t.Cleanup(func() { _, _ = ns.Pool().Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) })
	env := append(configtest.Env(ns), "TRIAD_POSTGRES_SCHEMA="+schema) // the later value wins
	code, _, errs := run(t, env, "migrate", "up")
	require.Equal(t, ExitError, code)
	require.Contains(t, errs, fmt.Sprintf("schema does not exist: %q", schema))
	require.Contains(t, errs, "create_schema")
	require.NotContains(t, errs, "triad_schema_migrations")

	code, out, errs := run(t, append(env, "TRIAD_POSTGRES_CREATE_SCHEMA=true"), "migrate", "up")
	require.Equal(t, ExitOK, code, "%s %s", out, errs)
	code, out, _ = run(t, env, "migrate", "status")
	require.Equal(t, ExitOK, code)
	require.NotContains(t, out, "pending", "every migration applied in the new schema")
}

// TestFlagsAfterArguments: flags are parsed wherever they stand; "--" ends
// them; a negative number after a positional argument is an argument.
func TestFlagsAfterArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		json bool
		want []string
	}{
		{[]string{"a", "--json", "b"}, true, []string{"a", "b"}},
		{[]string{"--json", "a"}, true, []string{"a"}},
		{[]string{"a", "-5", "--json"}, true, []string{"a", "-5"}},
		{[]string{"a", "--", "--json"}, false, []string{"a", "--json"}},
		{[]string{"a", "b"}, false, []string{"a", "b"}},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		asJSON := fs.Bool("json", false, "")
		require.NoError(t, parse(fs, tc.args), "%v", tc.args)
		require.Equal(t, tc.json, *asJSON, "%v", tc.args)
		require.Equal(t, tc.want, fs.Args(), "%v", tc.args)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	require.Error(t, parse(fs, []string{"a", "--nope"}), "an unknown flag after an argument is still an error")
}
