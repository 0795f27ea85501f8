package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest/dataset"
)

// applyRuntime applies runtime.memory_limit_bytes and runtime.gc_percent
// unless GOMEMLIMIT or GOGC are set in the environment (which win).
func applyRuntime(r config.Runtime, environ []string, log *slog.Logger) {
	has := func(name string) bool {
		return slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	}
	if r.MemoryLimitBytes > 0 && !has("GOMEMLIMIT") {
		debug.SetMemoryLimit(r.MemoryLimitBytes)
		log.Debug("memory limit set", "bytes", r.MemoryLimitBytes)
	}
	if r.GCPercent != 0 && !has("GOGC") {
		debug.SetGCPercent(r.GCPercent)
		log.Debug("gc percent set", "percent", r.GCPercent)
	}
}

// pauseEnv names a step at which `dataset switch` stops and waits to be
// killed: a failure-injection point for the tests of a lock holder dying
// mid-switch (before-activate, before-alias).
const pauseEnv = "TRIAD_TEST_DATASET_PAUSE"

const datasetHelp = `Usage: triad dataset <command> [flags]

  status            the active version, every version's state, live builds,
                    members (serving replicas and ingest runs) and the alias
  build             build the next version from Postgres (new Redis key
                    prefix and ES index); writes during the build go to both.
                    --shards N, --replicas N: the new index's shape (default
                    profile_index.shards and .replicas)
  switch N          verify N against Postgres, make it active (etcd lock,
                    active key, ES alias); waits for every replica to follow
  rollback          switch back to the previous version
  verify N          compare version N's Redis keys and ES index with Postgres
  gc                remove versions past dataset.retire_after, failed builds
`

func (e env) dataset(ctx context.Context, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(e.stdout, datasetHelp)
		return nil
	}
	var asJSON, redisMissingOK *bool
	var shards, replicas *int
	verb, fs, cfg, log, err := e.subcommand("dataset", "status, build, switch N, rollback, verify N or gc", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
		shards = fs.Int("shards", 0, "build: primary shards of the new index (0: profile_index.shards)")
		replicas = fs.Int("replicas", -1, "build: replicas of each shard of the new index (-1: profile_index.replicas)")
		redisMissingOK = fs.Bool("redis-missing-ok", false, "switch, rollback, verify: accept profiles absent from Redis (expired cache keys); stale ones are never accepted")
	})
	if err != nil {
		return err
	}
	set, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer set.Close()
	m := app.NewStores(cfg, set, nil).Manager(cfg, set, log)
	for _, kv := range e.environ {
		if step, ok := strings.CutPrefix(kv, pauseEnv+"="); ok && step != "" {
			m.Pause = func(at string) {
				if at == step {
					fmt.Fprintf(e.stderr, "paused at %s\n", at)
					<-ctx.Done()
				}
			}
		}
	}
	vo := dataset.VerifyOptions{RedisMissingOK: *redisMissingOK}
	version := func() (int, error) {
		if fs.NArg() != 1 {
			return 0, usagef("%s takes one version number", verb)
		}
		n, err := strconv.Atoi(fs.Arg(0))
		if err != nil || n < 1 {
			return 0, usagef("version must be a positive integer, got %q", fs.Arg(0))
		}
		return n, nil
	}
	out := func(v any, text func()) error {
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(v)
		}
		text()
		return nil
	}
	switch verb {
	case "status":
		st, err := m.State(ctx)
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		alias, aerr := m.AliasVersion(ctx)
		return out(map[string]any{"active": st.Active, "serving": st.Serving(), "versions": st.Versions, "builds": st.Builds, "members": st.Members, "alias_version": alias},
			func() { e.printDatasetStatus(st, alias, aerr) })
	case "build":
		start := time.Now()
		var mu sync.Mutex
		next := int64(100_000)
		shape := cfg.ProfileIndex.Shape
		if *shards != 0 {
			shape.Shards = *shards
		}
		if *replicas >= 0 {
			shape.Replicas = *replicas
		}
		if err := shape.Validate("--"); err != nil {
			return usagef("%v", err)
		}
		info, ver, err := m.Build(ctx, shape, func(n int64) { // called from the copy workers
			mu.Lock()
			defer mu.Unlock()
			if n >= next {
				fmt.Fprintf(e.stderr, "copied %d profiles (%s)\n", n, time.Since(start).Round(time.Second))
				next = (n/100_000 + 1) * 100_000
			}
		})
		if err != nil {
			return err
		}
		return out(map[string]any{"version": info, "verification": ver}, func() {
			fmt.Fprintf(e.stdout, "built version %d: %d profiles in %s, index of %d shards with %d replicas each; ready to switch (triad dataset switch %d)\n%s\n",
				info.Version, info.Rows, time.Since(start).Round(time.Millisecond), shape.Shards, shape.Replicas, info.Version, ver.Summary())
		})
	case "switch", "rollback":
		var rep dataset.SwitchReport
		if verb == "switch" {
			n, verr := version()
			if verr != nil {
				return verr
			}
			rep, err = m.Switch(ctx, n, vo)
		} else {
			rep, err = m.Rollback(ctx, vo)
		}
		if err != nil {
			return err
		}
		return out(rep, func() {
			fmt.Fprintf(e.stdout, "switched from version %d to %d in %s\n%s\nmembers serving %d: %v\n",
				rep.From, rep.To, rep.Took.Round(time.Millisecond), rep.Verification.Summary(), rep.To, rep.Moved)
			if len(rep.Lagging) > 0 {
				fmt.Fprintf(e.stdout, "members NOT serving %d after %s: %v\n", rep.To, cfg.Dataset.ConfirmTimeout, rep.Lagging)
			}
		})
	case "verify":
		n, err := version()
		if err != nil {
			return err
		}
		v, err := m.Verify(ctx, n, vo)
		if err != nil {
			return err
		}
		if err := out(v, func() { fmt.Fprintln(e.stdout, v.Summary()) }); err != nil {
			return err
		}
		if !v.Complete {
			return exitError{ExitPartial, errors.New("version is not complete")}
		}
		return nil
	case "gc":
		removed, err := m.Collect(ctx)
		if err != nil {
			return err
		}
		return out(removed, func() { fmt.Fprintf(e.stdout, "removed versions %v\n", removed) })
	}
	return usagef("unknown dataset command %q: want status, build, switch N, rollback, verify N or gc", verb)
}

func (e env) printDatasetStatus(st dataset.State, alias int, aerr error) {
	fmt.Fprintf(e.stdout, "active version %d", st.Serving())
	if st.Active.Version != 0 {
		fmt.Fprintf(e.stdout, " (switched %s by %s; previous %d)", st.Active.SwitchedAt.Format(time.RFC3339), st.Active.By, st.Active.Previous)
	}
	fmt.Fprintln(e.stdout)
	switch {
	case aerr != nil:
		fmt.Fprintf(e.stdout, "elasticsearch alias: unknown (%v)\n", aerr)
	case alias != st.Serving():
		fmt.Fprintf(e.stdout, "elasticsearch alias: points at version %d, NOT the active one (a switch did not finish; serving replicas repair it)\n", alias)
	default:
		fmt.Fprintf(e.stdout, "elasticsearch alias: version %d\n", alias)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVERSION\tSTATE\tROWS\tCREATED\tBUILT\tRETIRE AT\tNOTE")
	vs := make([]int, 0, len(st.Versions))
	for v := range st.Versions {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	for _, v := range vs {
		i := st.Versions[v]
		state := i.State
		if by, live := st.Builds[v]; live {
			state += " (by " + by + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", v, state, i.Rows, i.CreatedAt.Format(time.RFC3339), ts(i.BuiltAt), ts(i.RetireAt), i.Note)
	}
	fmt.Fprintln(tw, "\nMEMBER\tKIND\tADDR\tSERVING\tWRITING\tSINCE")
	for _, mb := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%v\t%s\n", mb.ID, mb.Kind, mb.Addr, mb.Serving, mb.Writing, mb.Since.Format(time.RFC3339))
	}
	_ = tw.Flush()
}
