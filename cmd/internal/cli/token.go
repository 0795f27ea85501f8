// Package cli implements triad's subcommands. main only calls Main.
package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/trace"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/server/auth"
)

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

func ts(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
