package cli

import (
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config"
)

func TestApplyRuntime(t *testing.T) {
	limit, gc := debug.SetMemoryLimit(-1), debug.SetGCPercent(-1)
	debug.SetGCPercent(gc)
	t.Cleanup(func() { debug.SetMemoryLimit(limit); debug.SetGCPercent(gc) })
	log := slog.New(slog.DiscardHandler)

	applyRuntime(config.Runtime{MemoryLimitBytes: 3 << 30, GCPercent: 150}, nil, log)
	require.Equal(t, int64(3<<30), debug.SetMemoryLimit(-1))
	require.Equal(t, 150, debug.SetGCPercent(150))

	// The environment wins: GOMEMLIMIT and GOGC were read by the runtime.
	applyRuntime(config.Runtime{MemoryLimitBytes: 1 << 30, GCPercent: 50}, []string{"GOMEMLIMIT=2GiB", "GOGC=120"}, log)
	require.Equal(t, int64(3<<30), debug.SetMemoryLimit(-1), "unchanged")
	require.Equal(t, 150, debug.SetGCPercent(150), "unchanged")
}
