package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/triad-dev/triad/repair"
)

const checkHelp = `Usage: triad check [--entity profile] [--server URL] [--token T] [--json] KEY...

Asks a running triad (its API, with a token: as etcdctl asks etcd) to check
records by key across Postgres, Redis and Elasticsearch, and prints each
store's copy and class: ok, absent, absent_allowed, missing, stale, ahead,
orphan, orphan_deleted, field_mismatch (with the fields that differ).

The token comes from --token, TRIAD_TOKEN, or --token-file (default
.triad/admin-token when it exists). Exit status: 0 every key consistent, 3
some key inconsistent, 1 the check could not run, 2 usage.
`

func (e env) check(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("check", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, checkHelp); fs.PrintDefaults() }
	entity := fs.String("entity", "profile", "entity to check")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	af := newAPIFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give one or more keys")
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	var out struct {
		Checked      int             `json:"checked"`
		Inconsistent int             `json:"inconsistent"`
		Results      []repair.Result `json:"results"`
	}
	if err := api.do(ctx, http.MethodPost, "/api/v1/checks", map[string]any{"entity": *entity, "ids": fs.Args()}, &out); err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSTORE\tPRESENT\tVERSION\tDIGEST\tCLASS\tDIFF")
		for _, r := range out.Results {
			for _, st := range []string{"postgres", "redis", "elasticsearch"} {
				v, ok := r.Stores[st]
				if !ok {
					continue
				}
				present := "no"
				switch {
				case v.Deleted:
					present = "tombstone"
				case v.Present:
					present = "yes"
				}
				class := string(v.Class)
				if st == "postgres" {
					class = "(truth)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Key, st, present, v.Version, v.Digest, class, strings.Join(v.Diff, ","))
			}
		}
		_ = tw.Flush()
		fmt.Fprintf(e.stdout, "%d checked, %d inconsistent\n", out.Checked, out.Inconsistent)
	}
	if out.Inconsistent > 0 {
		return exitError{ExitPartial, fmt.Errorf("%d of %d keys inconsistent", out.Inconsistent, out.Checked)}
	}
	return nil
}
