// Package cli implements triad's subcommands, one file each (serve.go,
// ingest.go, check.go, sweep.go, trace.go, …): Main parses the command
// line and maps outcomes to exit codes. api.go is the HTTP client of the
// API the check, repair, sweep and trace commands talk to; pipeline.go the
// ingest pipeline the ingest, loadgen and archive commands share. main only
// calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/triad-dev/triad/trace"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
)

// Version is set at build time with -ldflags "-X .../cli.Version=…".
var Version = "dev"

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitPartial (3, in pipeline.go): finished, but something was left out.
	// ExitNotFound: the server has no such trace, sweep, entity or token.
	// A well-formed ID the server does not know is not a usage error.
	ExitNotFound = 4
)

type env struct {
	stdout, stderr io.Writer
	environ        []string
}

const usage = `triad — consistency control plane for Postgres, Redis and Elasticsearch

Usage: triad <command> [flags]

Commands:
  serve                       serve the API, dashboard, health and metrics
  migrate up|down|status      apply, roll back (one, or --all) or list Postgres migrations
  stack up|down|status        run the local Postgres, Redis, etcd and Elasticsearch stack
  token create|list|revoke    manage API tokens (talks to Postgres directly)
  ingest [--format F] FILE|-  write profiles (TSV/JSONL, gzip) to Postgres, Redis, Elasticsearch
  loadgen [--count N]         deterministic synthetic profiles to stdout, or --ingest
  archive verify|cat|replay   check, print or replay ChunkedWriter archive files
  check [--entity E] KEY...    check records across the three stores (asks a running triad)
  repair [--dry-run] KEY...    repair records from Postgres, guarded and logged (asks a running triad)
  sweep start|status|pause|resume|cancel
                              compare a whole entity across the stores (asks a running triad)
  trace TRACE_ID | trace search
                              one trace as a tree with an ASCII timeline (json, otlp), or find traces
  dataset status|build|switch|rollback|verify|gc
                              dataset versions (Redis keyspace + ES index) through etcd
  webhook add|list|test|remove|rotate
                              alert webhooks: endpoints, test deliveries, secret rotation (asks a running triad)
  silence add|list|preview|expire
                              mute alerts by label matchers for a while (asks a running triad)
  plan create|list|show|entries|apply
                              reviewed repairs: a dry run saved, reviewed, applied exactly (asks a running triad)
  version                     print the version

Every command takes --config FILE (or TRIAD_CONFIG) and --set key=value
(repeatable); TRIAD_* environment variables override the file.
Run 'triad <command> -h' for a command's flags.
`

// Main runs the command in args and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return env{stdout: stdout, stderr: stderr, environ: os.Environ()}.main(ctx, args)
}

func (e env) main(ctx context.Context, args []string) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	var err error
	switch args[0] {
	case "serve":
		err = e.serve(ctx, args[1:])
	case "migrate":
		err = e.migrate(ctx, args[1:])
	case "stack":
		err = e.stack(ctx, args[1:])
	case "token":
		err = e.token(ctx, args[1:])
	case "ingest":
		err = e.ingest(ctx, args[1:])
	case "loadgen":
		err = e.loadgen(ctx, args[1:])
	case "archive":
		err = e.archive(ctx, args[1:])
	case "dataset":
		err = e.dataset(ctx, args[1:])
	case "check":
		err = e.check(ctx, args[1:])
	case "repair":
		err = e.repairCmd(ctx, args[1:])
	case "sweep":
		err = e.sweep(ctx, args[1:])
	case "trace":
		err = e.traceCmd(ctx, args[1:])
	case "webhook":
		err = e.webhook(ctx, args[1:])
	case "silence":
		err = e.silence(ctx, args[1:])
	case "plan":
		err = e.plan(ctx, args[1:])
	case "version":
		fmt.Fprintln(stdout, versionString())
		return ExitOK
	default:
		fmt.Fprintf(stderr, "triad: unknown command %q\n\n%s", args[0], usage)
		return ExitUsage
	}
	var ue usageError
	var xe exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &xe):
		fmt.Fprintf(stderr, "triad %s: %v\n", args[0], err)
		return xe.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "triad %s: %v\n", args[0], err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "triad %s: %v\n", args[0], err)
		return ExitError
	}
}

type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " (" + bi.GoVersion + ")"
	}
	return "triad " + v
}

// common holds the flags every command takes.
type common struct {
	configPath string
	sets       multiFlag
}

type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (e env) flags(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("triad "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&c.configPath, "config", "", "YAML configuration file (default $TRIAD_CONFIG)")
	fs.Var(&c.sets, "set", "override one key, e.g. --set redis.addr=10.0.0.5:6379 (repeatable)")
	return fs
}

// negative reports whether s reads as a negative number.
func negative(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.HasPrefix(s, "-")
}

// verbHelp answers a command of verbs (`triad sweep start`, …) called bare
// or with -h: it prints help and reports the call done (a usage error,
// naming the verbs, when none was given).
func (e env) verbHelp(help, verbs string, args []string) (bool, error) {
	if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
		return false, nil
	}
	fmt.Fprint(e.stdout, help)
	if len(args) == 0 {
		return true, usagef("want %s", verbs)
	}
	return true, nil
}

// verbCommand starts a command of verbs (`triad NAME VERB …`): help when
// asked for (or no verb), else the verb and its flag set, whose usage
// prints help and the flags.
func (e env) verbCommand(name, help, verbs string, args []string, c *common) (verb string, fs *flag.FlagSet, done bool, err error) {
	if done, err := e.verbHelp(help, verbs, args); done {
		return "", nil, true, err
	}
	fs = e.flags(name+" "+args[0], c)
	fs.Usage = func() { fmt.Fprint(e.stderr, help); fs.PrintDefaults() }
	return args[0], fs, false, nil
}

// parse parses flags wherever they stand, before or after the positional
// arguments (`triad webhook test pager --server URL`), as operators type
// them; "--" ends the flags, and after the first positional argument one
// that reads as a negative number is positional too (`triad check 1 -5`
// is a bad key, not an unknown flag).
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageError{err}
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		i := 0
		for i < len(rest) && (rest[i] == "-" || !strings.HasPrefix(rest[i], "-") || negative(rest[i])) {
			i++
		}
		pos = append(pos, rest[:i]...)
		if i == len(rest) {
			break
		}
		args = rest[i:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func (e env) load(c common) (config.Config, *slog.Logger, error) {
	path := c.configPath
	if path == "" {
		for _, kv := range e.environ {
			if v, ok := strings.CutPrefix(kv, "TRIAD_CONFIG="); ok {
				path = v
			}
		}
	}
	cfg, err := config.Load(path, e.environ, c.sets)
	if err != nil {
		return cfg, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := newLogger(cfg.Log, e.stderr)
	applyRuntime(cfg.Runtime, e.environ, log)
	return cfg, log, nil
}

// subcommand parses "VERB [flags] [args]" for a command group: define
// registers the verb's flags, then the configuration is loaded.
func (e env) subcommand(group, verbs string, args []string, define func(fs *flag.FlagSet)) (string, *flag.FlagSet, config.Config, *slog.Logger, error) {
	if len(args) == 0 {
		return "", nil, config.Config{}, nil, usagef("want %s", verbs)
	}
	var c common
	fs := e.flags(group+" "+args[0], &c)
	define(fs)
	if err := parse(fs, args[1:]); err != nil {
		return "", nil, config.Config{}, nil, err
	}
	cfg, log, err := e.load(c)
	return args[0], fs, cfg, log, err
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(trace.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(trace.LogHandler(slog.NewTextHandler(w, opts)))
}

// openMigrated connects to every store of cfg and checks that the schema
// is migrated; the caller closes the set.
func openMigrated(ctx context.Context, cfg config.Config) (*clients.Set, error) {
	set, err := clients.Build(cfg.Postgres, cfg.Redis, cfg.Elasticsearch, cfg.Etcd)
	if err != nil {
		return nil, err
	}
	if err := requireSchema(ctx, set.Postgres); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

// requireSchema turns "relation does not exist" into advice.
func requireSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('api_tokens') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if !exists {
		return errors.New("the database has no api_tokens table: run `triad migrate up` first")
	}
	return nil
}
