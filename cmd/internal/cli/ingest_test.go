package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest/archive"
)

// TestIngestArchiveReplay runs the commands an operator runs: ingest a file
// with a bad line (exit 3, quarantine names it), verify the archive, flip a
// byte (verify names the chunk, exit 3), and replay the archive into empty
// stores of another namespace.
func TestIngestArchiveReplay(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	dir := t.TempDir()
	environ := append(configtest.Env(ns),
		"TRIAD_ARCHIVE_DIR="+filepath.Join(dir, "archive"),
		"TRIAD_ARCHIVE_CHUNK_BYTES=65536",
	)
	code, _, errs := run(t, environ, "migrate", "up")
	require.Equal(t, ExitOK, code, errs)

	code, gen, _ := run(t, nil, "loadgen", "--count", "2000", "--seed", "5")
	require.Equal(t, ExitOK, code)
	lines := strings.Split(gen, "\n")
	lines[9] = `{"user_id": "ten"}`
	input := filepath.Join(dir, "in.jsonl")
	require.NoError(t, os.WriteFile(input, []byte(strings.Join(lines, "\n")), 0o644))

	code, out, errs := run(t, environ, "ingest", input)
	require.Equal(t, ExitPartial, code, "some lines quarantined: %s %s", out, errs)
	require.Contains(t, out, "1999 applied")
	q, err := os.ReadFile(input + ".quarantine.jsonl")
	require.NoError(t, err)
	require.Contains(t, string(q), `"line":10`)

	files, err := archive.Files(filepath.Join(dir, "archive"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	code, out, _ = run(t, nil, "archive", "verify", files[0])
	require.Equal(t, ExitOK, code, out)
	require.Contains(t, out, "1999 records")

	// Replay into another namespace's empty stores.
	other := stacktest.New(t)
	env2 := configtest.Env(other)
	code, _, errs = run(t, env2, "migrate", "up")
	require.Equal(t, ExitOK, code, errs)
	code, out, errs = run(t, env2, "archive", "replay", files[0])
	require.Equal(t, ExitOK, code, errs)
	require.Contains(t, out, "1999 applied")
	var a, b int64
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profiles`).Scan(&a))
	require.NoError(t, other.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profiles`).Scan(&b))
	require.Equal(t, a, b)
	var same bool
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT (SELECT array_agg(digest ORDER BY user_id) FROM `+ns.Schema+`.profiles) = (SELECT array_agg(digest ORDER BY user_id) FROM `+other.Schema+`.profiles)`).Scan(&same))
	require.True(t, same, "replayed Postgres rows have the same digests")
	keys, err := stacktest.RedisKeys(t.Context(), other.Redis(), other.RedisPrefix+"profile:*")
	require.NoError(t, err)
	require.Len(t, keys, 1999, "replay reached Redis")

	// A flipped byte: verify names the chunk and reads the others.
	data, err := os.ReadFile(files[0])
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	bad := filepath.Join(dir, "bad.tca")
	require.NoError(t, os.WriteFile(bad, data, 0o644))
	code, out, errs = run(t, nil, "archive", "verify", bad)
	require.Equal(t, ExitPartial, code)
	require.Contains(t, errs, "bad chunk at offset")
	require.Contains(t, out, "1 BAD")
}
