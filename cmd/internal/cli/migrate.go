package cli

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/migrations"
)

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
