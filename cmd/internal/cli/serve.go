// Package cli implements triad's subcommands. main only calls Main.
package cli

import (
	"context"

	"github.com/triad-dev/triad/cmd/internal/app"
)

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
