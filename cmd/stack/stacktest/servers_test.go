package stacktest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServersFromConfigFileAndEnv: the servers' settings are read as
// `triad serve` reads them (the file TRIAD_CONFIG names, then TRIAD_*
// variables), ignoring the file's other keys.
func TestServersFromConfigFileAndEnv(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "triad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("postgres:\n  port: 5999\nredis:\n  addr: file:1\nserver:\n  listen: 127.0.0.1:1\n"), 0o600))
	s, err := loadServers(path, []string{"TRIAD_REDIS_ADDR=env:2", "TRIAD_STACK_ELASTICSEARCH_PORT=19999"})
	require.NoError(t, err)
	require.Equal(t, 5999, s.Postgres.Port)
	require.Equal(t, "env:2", s.Redis.Addr)
	require.Equal(t, 19999, s.Stack.ESPort)
	require.Equal(t, "127.0.0.1:12379", s.Etcd.Endpoints[0], "defaults: the local stack")
	_, err = loadServers("", []string{"TRIAD_POSTGRES_PORT=x"})
	require.ErrorContains(t, err, "TRIAD_POSTGRES_PORT (postgres.port)")
}

// TestImportsNoProductPackage: the test helpers import only the clients,
// the stack, the migrations and the leaf settings package, so a test in
// any package (config included) can use them without an import cycle.
func TestImportsNoProductPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	allowed := map[string]bool{
		"github.com/triad-dev/triad/cmd/stack/stacktest":   true,
		"github.com/triad-dev/triad/cmd/stack":             true,
		"github.com/triad-dev/triad/cmd/internal/clients":  true,
		"github.com/triad-dev/triad/cmd/internal/secret":   true,
		"github.com/triad-dev/triad/cmd/internal/settings": true,
		"github.com/triad-dev/triad/migrations":            true,
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/triad-dev/triad/") {
			require.True(t, allowed[pkg], "stacktest imports %s", pkg)
		}
	}
}
