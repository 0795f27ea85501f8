package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/dataset"
)

// ExitPartial is the status of a run that finished but left something out:
// `ingest` quarantined lines, `archive verify` found bad chunks.
const ExitPartial = 3

// exitError carries a specific exit status.
type exitError struct {
	code int
	error
}

// pipelineRun is an open pipeline for a command, with its clients.
type pipelineRun struct {
	set    *clients.Set
	pipe   *app.Pipeline
	log    *slog.Logger
	cfg    config.Config
	cancel context.CancelFunc // stops the dataset follower
	done   chan struct{}
}

func openPipeline(ctx context.Context, cfg config.Config, log *slog.Logger) (*pipelineRun, error) {
	set, err := openMigrated(ctx, cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	stores := app.NewStores(cfg, set, reg)
	// Follow the dataset state like a serving replica, so writes go to
	// every version being written (a build in progress included), and
	// report under a lease so a build waits for this process too.
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	follower := dataset.NewFollower(cfg.Dataset, set.Etcd, dataset.FollowerOptions{
		ID: app.MemberID(), Kind: "ingest", Logger: log, Registerer: reg, Apply: stores.SetVersions,
	})
	run := &pipelineRun{set: set, log: log, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() { follower.Run(fctx); close(run.done) }()
	select {
	case <-follower.Known():
	case <-time.After(cfg.Dataset.ConfirmTimeout):
		run.stop()
		return nil, fmt.Errorf("etcd (%v) did not answer within dataset.confirm_timeout (%s): without it triad cannot tell which dataset versions to write", cfg.Etcd.Endpoints, cfg.Dataset.ConfirmTimeout)
	case <-ctx.Done():
		run.stop()
		return nil, ctx.Err()
	}
	p, err := app.BuildPipeline(ctx, cfg, stores, log, reg)
	if err != nil {
		run.stop()
		return nil, err
	}
	run.pipe = p
	return run, nil
}

// stop ends the follower (revoking its report) and closes the clients.
func (r *pipelineRun) stop() {
	r.cancel()
	<-r.done
	r.set.Close()
}

// finish drains the pipeline, then replays the catch-up log for up to wait
// (a derived store that was down may be back; the replay itself runs
// under that deadline); what remains is left to a running `triad serve`.
// It fills sum's catch-up counts.
func (r *pipelineRun) finish(ctx context.Context, stderr io.Writer, wait time.Duration, sum *ingest.Summary) error {
	defer r.stop()
	err := r.pipe.Close()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stores := r.pipe.Pipeline.Stores()
	for {
		pending, total := map[string]int64{}, int64(0)
		for _, st := range stores {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			n, cerr := r.pipe.Postgres.Count(cctx, st)
			ccancel()
			if cerr != nil {
				return errors.Join(err, fmt.Errorf("count the catch-up log: %w", cerr))
			}
			if n > 0 {
				pending[st] = n
			}
			total += n
		}
		if sum != nil {
			sum.Recorded, sum.Pending = nonzero(r.pipe.Recorded()), pending
		}
		if total == 0 {
			return err
		}
		if rctx.Err() != nil {
			fmt.Fprintf(stderr, "%d derived-store writes wait in the catch-up log (%v); a running `triad serve` (with the same archive.dir for the archive's) replays them\n", total, pending)
			return err
		}
		if _, rerr := r.pipe.ReplayCatchup(rctx); rerr != nil {
			select {
			case <-rctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func nonzero(m map[string]int64) map[string]int64 {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

// owedError is the partial exit of a run that ended with writes its
// stores still owe: Postgres holds them, the catch-up log will replay
// them, but the run itself did not finish its job.
func owedError(sum ingest.Summary) error {
	if len(sum.Pending) == 0 {
		return nil
	}
	return exitError{ExitPartial, fmt.Errorf("writes still owed in the catch-up log: %v", sum.Pending)}
}
