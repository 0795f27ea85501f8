package app

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLeaderJobsTable: the runner starts every job that is on, skips those
// configuration turned off, and runs a periodic job only while leadership
// is proven (here it is not: a context without the elector's fence), so a
// replica that is not leader never purges or collects.
func TestLeaderJobsTable(t *testing.T) {
	t.Parallel()
	var loop, off, periodic atomic.Int32
	ctx, cancel := context.WithCancel(t.Context())
	jobs := []leaderJob{
		{name: "loop", run: func(ctx context.Context) error {
			loop.Add(1)
			cancel()
			<-ctx.Done()
			return errors.New("ignored once the term is over")
		}},
		{name: "off", off: true, run: func(context.Context) error { off.Add(1); return nil }},
		{name: "periodic", every: time.Millisecond, run: func(context.Context) error { periodic.Add(1); return nil }},
	}
	done := make(chan struct{})
	go func() { runLeaderJobs(ctx, jobs, slog.New(slog.DiscardHandler)); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not return when its term ended")
	}
	require.EqualValues(t, 1, loop.Load())
	require.Zero(t, off.Load(), "a job turned off does not run")
	require.Zero(t, periodic.Load(), "a periodic job runs only under a proven leadership")
}
