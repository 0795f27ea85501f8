package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest/archive"
)

var archivedID = regexp.MustCompile(`"user_id": ?(\d+)`)

// archivedIDs reads every record's user ID from the archive segments in
// dir, counting each segment's chunks; a torn last chunk (a writer killed
// mid-write) ends that segment's reading and is counted as torn.
func archivedIDs(t *testing.T, dir string) (ids map[int64]bool, torn int) {
	t.Helper()
	files, err := archive.Files(dir)
	require.NoError(t, err)
	ids = map[int64]bool{}
	for _, path := range files {
		f, err := os.Open(path)
		require.NoError(t, err)
		r, err := archive.NewReader(bufio.NewReader(f))
		if err != nil {
			f.Close()
			torn++ // not even a whole header
			continue
		}
		for {
			c, err := r.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					torn++
				}
				break
			}
			for _, line := range bytes.Split(c.Payload, []byte{'\n'}) {
				if m := archivedID.FindSubmatch(line); m != nil {
					id, _ := strconv.ParseInt(string(m[1]), 10, 64)
					ids[id] = true
				}
			}
		}
		r.Close()
		f.Close()
	}
	return ids, torn
}

func namespaceEnv(ns *stacktest.Namespace, archiveDir string) []string {
	return append(configtest.Env(ns), "TRIAD_ARCHIVE_DIR="+archiveDir)
}

// TestArchiveDiskFull: the archive sits on a 1 MiB filesystem that fills
// mid-run. Postgres, Redis and Elasticsearch take every row; the summary
// counts the rows not archived and the run exits 3 (partial); every
// segment left behind reads whole (a failed write is cut back to its last
// whole chunk); and the archived rows plus those the catch-up log still
// owes the archive are exactly the input.
func TestArchiveDiskFull(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	dir := stacktest.PrivateDir(t)
	require.NoError(t, exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).Run(), "mount a 1 MiB tmpfs (the tests run as root)")
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	env := append(namespaceEnv(ns, dir), "TRIAD_ARCHIVE_CHUNK_BYTES=65536")
	code, _, errs := run(t, env, "migrate", "up")
	require.Equal(t, ExitOK, code, errs)

	const rows = 20000
	code, out, errs := run(t, env, "loadgen", "--count", strconv.Itoa(rows), "--seed", "9", "--ingest", "--progress", "never")
	t.Logf("summary: %s", out)
	require.Equal(t, ExitPartial, code, "a run that could not archive everything is not a success: %s %s", out, errs)
	m := regexp.MustCompile(`(\d+) rows not archived during the run \(recorded in the catch-up log; (\d+) still wait there\)`).FindStringSubmatch(out)
	require.Len(t, m, 3, "the summary counts the unarchived rows: %s", out)
	recorded, _ := strconv.Atoi(m[1])
	require.Positive(t, recorded)
	require.Contains(t, out, fmt.Sprintf("%d applied", rows), "Postgres took every row")

	ids, torn := archivedIDs(t, dir)
	require.Zero(t, torn, "no segment ends torn")
	var owed []int64
	rowsOwed, err := ns.Pool().Query(t.Context(), `SELECT user_id FROM profile_catchup WHERE store = 'archive'`)
	require.NoError(t, err)
	for rowsOwed.Next() {
		var id int64
		require.NoError(t, rowsOwed.Scan(&id))
		owed = append(owed, id)
	}
	require.NoError(t, rowsOwed.Err())
	for _, id := range owed {
		require.False(t, ids[id], "profile %d is both archived and owed", id)
		ids[id] = true
	}
	var total int64
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profiles WHERE user_id = ANY($1)`, keys(ids)).Scan(&total))
	require.EqualValues(t, rows, len(ids), "archived (%d) + owed (%d) = the input", len(ids)-len(owed), len(owed))
	require.EqualValues(t, rows, total)
	t.Logf("measured: %d rows archived on the full disk, %d recorded as not archived by the run, %d owed in the catch-up log at its end", rows-len(owed), recorded, len(owed))

	// Room again: `triad archive backfill` writes what the archive is owed.
	require.NoError(t, exec.Command("mount", "-o", "remount,size=64m", dir).Run())
	code, out, errs = run(t, env, "archive", "backfill", "--wait", "1m")
	require.Equal(t, ExitOK, code, "%s %s", out, errs)
	require.Contains(t, out, fmt.Sprintf("archive: %d rows were owed; 0 still wait", len(owed)))
	ids, torn = archivedIDs(t, dir)
	require.Zero(t, torn)
	require.Len(t, ids, rows, "every row archived after the backfill")
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestKilledIngestConverges: `triad ingest` (loadgen) is killed with
// SIGKILL mid-run. Without a rerun, a running triad with the same
// archive.dir finds the writes the killed process owed in the outbox
// (after outbox_grace), and Redis, Elasticsearch and the archive come to
// hold every row Postgres committed.
func TestKilledIngestConverges(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	dir := t.TempDir()
	env := namespaceEnv(ns, dir)
	cfg := replicaConfig(t, ns)
	cfg.Archive.Dir = dir
	cfg.Ingest.DerivedAttempts, cfg.Ingest.DerivedTimeout, cfg.Ingest.PrimaryTimeout = 2, time.Second, 3*time.Second
	cfg.Ingest.OutboxGrace = 5 * time.Second
	a := startReplica(t, cfg)
	awaitReady(t, a)

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), env...), "TRIAD_HELPER_ARGS=loadgen --count 300000 --seed 12 --ingest --progress never")
	require.NoError(t, cmd.Start())
	count := func() int64 {
		var n int64
		_ = ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profiles`).Scan(&n)
		return n
	}
	until(t, 2*time.Minute, "the ingest committed rows", func() bool { return count() > 30000 })
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	killed := time.Now()
	committed := count()
	var owed int64
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `SELECT coalesce(sum(cardinality(user_ids)), 0) FROM profile_outbox`).Scan(&owed))
	t.Logf("killed the ingest with %d rows committed and %d profile writes owed in its outbox", committed, owed)

	redisKeys := func() int64 {
		keys, err := stacktest.RedisKeys(t.Context(), ns.Redis(), ns.RedisPrefix+"profile:*")
		if err != nil {
			return -1
		}
		return int64(len(keys))
	}
	esDocs := func() int64 {
		_, _ = ns.ES().Indices.Refresh(ns.ES().Indices.Refresh.WithIndex(ns.IndexPrefix + "*"))
		res, err := ns.ES().Count(ns.ES().Count.WithIndex(ns.IndexPrefix+"profiles"), ns.ES().Count.WithContext(t.Context()))
		if err != nil {
			return -1
		}
		defer res.Body.Close()
		var c struct {
			Count int64 `json:"count"`
		}
		_ = json.NewDecoder(res.Body).Decode(&c)
		return c.Count
	}
	var lastState string
	converged := func() bool {
		ids, _ := archivedIDs(t, dir)
		var pending, outbox int64
		_ = ns.Pool().QueryRow(context.WithoutCancel(t.Context()), `SELECT (SELECT count(*) FROM profile_catchup), (SELECT count(*) FROM profile_outbox)`).Scan(&pending, &outbox)
		// Statements the killed process had sent commit after it died:
		// Postgres finishes them before noticing the closed connection.
		committed := count()
		r, e := redisKeys(), esDocs()
		lastState = fmt.Sprintf("postgres %d, redis %d, elasticsearch %d, archive %d, catch-up %d, outbox %d", committed, r, e, len(ids), pending, outbox)
		if r != committed || e != committed || int64(len(ids)) < committed || pending != 0 || outbox != 0 {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		var missing int64
		_ = ns.Pool().QueryRow(t.Context(), `SELECT count(*) FROM profiles WHERE NOT (user_id = ANY($1))`, keys(ids)).Scan(&missing)
		return missing == 0
	}
	for !converged() {
		require.Less(t, time.Since(killed), 5*time.Minute, "not converged: %s", lastState)
	}
	t.Logf("measured: converged %.1fs after the kill (outbox_grace 5s): %s", time.Since(killed).Seconds(), lastState)
}
