package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/triad-dev/triad/repair"
)

const repairHelp = `Usage: triad repair [--entity profile] [--dry-run] [--budget N] [--server URL] [--token T] [--json] KEY...

Asks a running triad to repair records by key from Postgres: each derived
store's copy is re-read, classified, and fixed through guarded writes that
never replace a newer write. --dry-run prints the plan (the entries a real
run would make) and writes nothing. Every entry goes to the repair log
(GET /api/v1/repairs). Needs an operator token.

Exit status: 0 nothing left to repair, 3 some entries failed, conflicted
or were skipped, 1 the run could not run, 2 usage.
`

func (e env) repairCmd(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("repair", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, repairHelp); fs.PrintDefaults() }
	entity := fs.String("entity", "profile", "entity to repair")
	dryRun := fs.Bool("dry-run", false, "plan only: print what a real run would do")
	budget := fs.Int("budget", 0, "most writes in the run (0: no limit)")
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
		Run     repair.Run     `json:"run"`
		Entries []repair.Entry `json:"entries"`
	}
	body := map[string]any{"entity": *entity, "ids": fs.Args(), "dry_run": *dryRun, "budget": *budget, "trigger": repair.TriggerCLI}
	if err := api.do(ctx, http.MethodPost, "/api/v1/repairs", body, &out); err != nil {
		return err
	}
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(out); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tSTORE\tCLASS\tACTION\tPRIORITY\tBEFORE\tAFTER\tOUTCOME\tNOTE")
		st := func(s *repair.State) string {
			if s == nil {
				return "-"
			}
			return fmt.Sprintf("v%d/%d", s.Version, s.Digest)
		}
		for _, en := range out.Entries {
			if en.Outcome == repair.OutcomeNoop && !*dryRun && en.Class != "" && !en.Class.Drift() {
				continue // consistent copies: counted below, not listed
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", en.Key, en.Store, en.Class, en.Action, en.Priority, st(en.Before), st(en.After), en.Outcome, en.Error)
		}
		_ = tw.Flush()
		r := out.Run
		fmt.Fprintf(e.stdout, "run %d (%s): %d planned, %d repaired, %d no-op, %d conflicts, %d failed, %d skipped\n",
			r.ID, map[bool]string{true: "dry run", false: "real run"}[r.DryRun], r.Planned, r.Repaired, r.Noop, r.Conflicts, r.Failed, r.Skipped)
	}
	if r := out.Run; r.Failed+r.Conflicts+r.Skipped > 0 {
		return exitError{ExitPartial, fmt.Errorf("%d failed, %d conflicts, %d skipped", r.Failed, r.Conflicts, r.Skipped)}
	}
	return nil
}
