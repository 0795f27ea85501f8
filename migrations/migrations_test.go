package migrations_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/migrations"
)

func tables(t *testing.T, ns *stacktest.Namespace) []string {
	rows, err := ns.Pool().Query(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, ns.Schema)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestUpDownUp applies every migration, rolls all of them back, and applies
// them again: each down must undo its up exactly.
func TestUpDownUp(t *testing.T) {
	ns := stacktest.New(t)
	ctx := t.Context()
	m, err := migrations.New(ns.Pool(), ns.ID, stacktest.Logger(t))
	require.NoError(t, err)
	defer m.Close()

	up, err := m.Up(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, up)
	after := tables(t, ns)
	require.Contains(t, after, "api_tokens")
	require.Contains(t, after, "triad_schema_migrations")

	st, err := m.Status(ctx)
	require.NoError(t, err)
	for _, s := range st {
		require.True(t, s.Applied, "migration %d applied", s.Version)
	}

	again, err := m.Up(ctx)
	require.NoError(t, err)
	require.Empty(t, again, "a second up is a no-op")

	down, err := m.DownTo(ctx, 0)
	require.NoError(t, err)
	require.Len(t, down, len(up))
	require.Equal(t, []string{"triad_schema_migrations"}, tables(t, ns), "down removes everything up created")

	up2, err := m.Up(ctx)
	require.NoError(t, err)
	require.Len(t, up2, len(up))
	require.Equal(t, after, tables(t, ns))
}

// TestConcurrentUp runs two migrators at once: the advisory lock makes one
// wait, and every migration is applied exactly once.
func TestConcurrentUp(t *testing.T) {
	ns := stacktest.New(t)
	errs := make(chan error, 2)
	counts := make(chan int, 2)
	for range 2 {
		go func() {
			m, err := migrations.New(ns.Pool(), ns.ID, stacktest.Logger(t))
			if err != nil {
				counts <- 0
				errs <- err
				return
			}
			defer m.Close()
			res, err := m.Up(t.Context())
			counts <- len(res)
			errs <- err
		}()
	}
	total := 0
	for range 2 {
		require.NoError(t, <-errs)
		total += <-counts
	}
	st, err := func() ([]migrations.Status, error) {
		m, err := migrations.New(ns.Pool(), ns.ID, stacktest.Logger(t))
		require.NoError(t, err)
		defer m.Close()
		return m.Status(t.Context())
	}()
	require.NoError(t, err)
	require.Equal(t, len(st), total, "each migration applied once across both migrators")
}
