// Package cli implements triad's subcommands. main only calls Main.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/trace"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/cmd/stack"
	"github.com/triad-dev/triad/migrations"
	"github.com/triad-dev/triad/server/auth"
)

// Version is set at build time with -ldflags "-X .../cli.Version=…".
var Version = "dev"

// Exit statuses.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitPartial (3, in ingest.go): finished, but something was left out.
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

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func (e env) flags(name string, c *common) *flag.FlagSet {
	fs := flag.NewFlagSet("triad "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&c.configPath, "config", "", "YAML configuration file (default $TRIAD_CONFIG)")
	fs.Var(&c.sets, "set", "override one key, e.g. --set redis.addr=10.0.0.5:6379 (repeatable)")
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
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

// ---- serve ----

func (e env) serve(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("serve", &c)
	listen := fs.String("listen", "", "address to serve on (overrides server.listen)")
	migrate := fs.Bool("migrate", true, "apply pending migrations at start (retried while Postgres is down)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *listen != "" {
		c.sets = append(c.sets, "server.listen="+*listen)
	}
	cfg, log, err := e.load(c)
	if err != nil {
		return err
	}
	if !cfg.Auth.AdminToken.IsSet() {
		log.Warn("no bootstrap admin token configured (TRIAD_ADMIN_TOKEN or auth.admin_token_file): only tokens created with `triad token create` work")
	}
	return app.Run(ctx, app.Options{Config: cfg, Logger: log, Version: Version, Migrate: *migrate})
}

// ---- migrate ----

func (e env) migrate(ctx context.Context, args []string) error {
	var all *bool
	verb, _, cfg, log, err := e.subcommand("migrate", "up, down or status", args, func(fs *flag.FlagSet) {
		all = fs.Bool("all", false, "down: roll back every migration")
	})
	if err != nil {
		return err
	}
	pool, err := clients.NewPostgres(cfg.Postgres)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.EnsureSchema(ctx, pool, cfg.Postgres.Schema, verb == "up" && cfg.Postgres.CreateSchema); err != nil {
		return err
	}
	m, err := migrations.New(pool, "", log)
	if err != nil {
		return err
	}
	defer m.Close()
	var res []migrations.Result
	switch verb {
	case "up":
		res, err = m.Up(ctx)
	case "down":
		if *all {
			res, err = m.DownTo(ctx, 0)
		} else {
			res, err = m.Down(ctx)
		}
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
		for _, s := range st {
			at := "pending"
			if s.Applied {
				at = s.At
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, s.Name, at)
		}
		return tw.Flush()
	default:
		return usagef("unknown migrate command %q: want up, down or status", verb)
	}
	for _, r := range res {
		fmt.Fprintf(e.stdout, "%s %d %s (%s)\n", r.Direction, r.Version, r.Name, r.Duration)
	}
	if err == nil && len(res) == 0 {
		fmt.Fprintln(e.stdout, "nothing to do")
	}
	return err
}

// ---- stack ----

func (e env) stack(ctx context.Context, args []string) error {
	var asJSON *bool
	verb, fs, cfg, log, err := e.subcommand("stack", "up, down or status", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print status as JSON")
	})
	if err != nil {
		return err
	}
	st, err := stack.New(cfg.Stack, log)
	if err != nil {
		return err
	}
	names := fs.Args()
	switch verb {
	case "up":
		start := time.Now()
		status, err := st.Up(ctx, names...)
		e.printStatus(status, *asJSON)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "stack up in %s; state in %s\n", time.Since(start).Round(time.Millisecond), cfg.Stack.Dir)
		return nil
	case "down":
		return st.Down(ctx, names...)
	case "status":
		status, err := st.Status(ctx)
		if err != nil {
			return err
		}
		e.printStatus(status, *asJSON)
		for _, s := range status {
			if !s.Up {
				return fmt.Errorf("%s is down", s.Name)
			}
		}
		return nil
	}
	return usagef("unknown stack command %q: want up, down or status", verb)
}

func (e env) printStatus(status []stack.ServerStatus, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status)
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATE\tVERSION\tENDPOINT\tPID")
	for _, s := range status {
		state := "up"
		if !s.Up {
			state = "down"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.Name, state, s.Version, s.Endpoint, s.Pid)
	}
	_ = tw.Flush()
}

// ---- token ----

func (e env) token(ctx context.Context, args []string) error {
	var name, role *string
	var ttl *time.Duration
	var all, asJSON *bool
	verb, fs, cfg, _, err := e.subcommand("token", "create, list or revoke", args, func(fs *flag.FlagSet) {
		name = fs.String("name", "", "create: token name (unique among active tokens)")
		role = fs.String("role", "viewer", "create: viewer, operator or admin")
		ttl = fs.Duration("ttl", 0, "create: lifetime, e.g. 720h (0: no expiry)")
		all = fs.Bool("all", false, "list: include revoked tokens")
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	pool, err := clients.NewPostgres(cfg.Postgres)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := requireSchema(ctx, pool); err != nil {
		return err
	}
	store := auth.NewStore(pool)
	switch verb {
	case "create":
		r, err := auth.ParseRole(*role)
		if err != nil {
			return usageError{err}
		}
		secret, tok, err := store.Create(ctx, *name, r, *ttl)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(map[string]any{"token": tok, "secret": secret})
		}
		fmt.Fprintln(e.stdout, secret)
		fmt.Fprintf(e.stderr, "created token %d %q with role %s; the secret above is shown only once\n", tok.ID, tok.Name, tok.Role)
		return nil
	case "list":
		toks, err := store.List(ctx, *all)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(toks)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tPREFIX\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s…\t%s\t%s\t%s\t%s\n", t.ID, trace.Printable(t.Name), t.Role, trace.Printable(t.Prefix),
				t.CreatedAt.UTC().Format(time.RFC3339), ts(t.ExpiresAt), ts(t.LastUsedAt), ts(t.RevokedAt))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usagef("revoke takes one token ID (`triad token list` shows them)")
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || id < 1 {
			return usagef("revoke takes a token ID, a positive integer (`triad token list` shows them), not %q: names are reused after a revoke", fs.Arg(0))
		}
		tok, err := store.Revoke(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked token %d %q\n", tok.ID, tok.Name)
		return nil
	}
	return usagef("unknown token command %q: want create, list or revoke", verb)
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

func ts(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
