package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
)

const sweepHelp = `Usage: triad sweep <command> [flags]

  start [--entity profile] [--repair] [--dry-run] [--segment-size N] [--wait]
                 start a sweep on the replica the API answers from
  status [ID]    one sweep (progress, findings) or the latest sweeps
  pause ID | resume ID | cancel ID
                 takes effect after the current segment

Talks to a running triad's API (--server, --token; operator role to start
or control). Exit status of start --wait and status ID: 0 no drift found,
3 drift found, 1 the sweep failed.
`

func (e env) sweep(ctx context.Context, args []string) error {
	if done, err := e.verbHelp(sweepHelp, "start, status, pause, resume or cancel", args); done {
		return err
	}
	verb := args[0]
	var c common
	fs := e.flags("sweep "+verb, &c)
	entity := fs.String("entity", "profile", "start: entity to sweep")
	doRepair := fs.Bool("repair", false, "start: repair what the sweep finds")
	dryRun := fs.Bool("dry-run", false, "start: with --repair, plan only")
	segment := fs.Int("segment-size", 1000, "start: primary rows per segment")
	mode := fs.String("mode", "auto", "start: records (read every record whole), digest (segment digests of content; the index from its verified checkpoint), auto (digest, falling back to records where drift is dense) or labels (quick: triad's own labels only, not content-true)")
	rate := fs.Int("rate", 0, "start: at most this many records per second per replica (0: unlimited)")
	wait := fs.Bool("wait", false, "start: wait until the sweep ends and print its findings")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	af := newAPIFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	type detail struct {
		sweep.Record
		FindingsList []sweep.Finding `json:"findings_list"`
		RangesList   []sweep.Range   `json:"ranges_list"`
	}
	show := func(d detail) error {
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(d)
		}
		stuck := ""
		if d.Stuck {
			stuck = " (STUCK: no progress)"
		}
		fmt.Fprintf(e.stdout, "sweep %d (%s, %s, dataset v%d): %s%s; ranges %d/%d, %d segments (%d dirty), %d records, %d suspects, %d in flight, %d findings, %d repaired\n",
			d.ID, d.Entity, d.Mode, d.DatasetVersion, d.State, stuck, d.RangesDone, d.Ranges, d.Segments, d.Dirty, d.Records, d.Suspects, d.InFlight, d.Findings, d.Repaired)
		if d.Error != "" {
			fmt.Fprintf(e.stdout, "error: %s\n", d.Error)
		}
		for _, f := range d.FindingsList {
			fmt.Fprintf(e.stdout, "  %s\t%s\t%s\n", f.Key, f.Store, f.Class)
		}
		return nil
	}
	get := func(id int64) (detail, error) {
		var d detail
		err := api.do(ctx, http.MethodGet, fmt.Sprintf("/api/v1/sweeps/%d", id), nil, &d)
		return d, err
	}
	outcome := func(d detail) error {
		switch {
		case d.State == sweep.Failed:
			return fmt.Errorf("sweep %d failed: %s", d.ID, d.Error)
		case d.Findings > 0:
			return exitError{ExitPartial, fmt.Errorf("sweep %d found %d drifted copies", d.ID, d.Findings)}
		}
		return nil
	}
	id := func() (int64, error) {
		var n int64
		if fs.NArg() != 1 {
			return 0, usagef("%s takes one sweep ID", verb)
		}
		if _, err := fmt.Sscan(fs.Arg(0), &n); err != nil || n <= 0 {
			return 0, usagef("sweep ID must be a positive integer, got %q", fs.Arg(0))
		}
		return n, nil
	}
	switch verb {
	case "start":
		var rec sweep.Record
		body := map[string]any{"entity": *entity, "repair": *doRepair, "dry_run": *dryRun, "segment_size": *segment, "mode": *mode, "rate": *rate, "trigger": repair.TriggerCLI}
		if err := api.do(ctx, http.MethodPost, "/api/v1/sweeps", body, &rec); err != nil {
			return err
		}
		if !*wait {
			return show(detail{Record: rec})
		}
		for {
			d, err := get(rec.ID)
			if err != nil {
				return err
			}
			if d.FinishedAt != nil {
				if err := show(d); err != nil {
					return err
				}
				return outcome(d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
		}
	case "status":
		if fs.NArg() == 0 {
			var recs []sweep.Record
			if err := api.do(ctx, http.MethodGet, "/api/v1/sweeps?limit=20", nil, &recs); err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(e.stdout).Encode(recs)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENTITY\tMODE\tSTATE\tRANGES\tSEGMENTS\tRECORDS\tFINDINGS\tREPAIRED\tTRIGGER\tSTARTED")
			for _, r := range recs {
				state := r.State
				if r.Stuck {
					state += " (stuck)"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r.ID, r.Entity, r.Mode, state, r.RangesDone, r.Ranges, r.Segments, r.Records,
					r.Findings, r.Repaired, r.Trigger, r.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		}
		n, err := id()
		if err != nil {
			return err
		}
		d, err := get(n)
		if err != nil {
			return err
		}
		if err := show(d); err != nil {
			return err
		}
		if d.FinishedAt != nil {
			return outcome(d)
		}
		return nil
	case "pause", "resume", "cancel":
		n, err := id()
		if err != nil {
			return err
		}
		var rec sweep.Record
		if err := api.do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/sweeps/%d/%s", n, verb), nil, &rec); err != nil {
			return err
		}
		return show(detail{Record: rec})
	}
	return usagef("unknown sweep command %q: want start, status, pause, resume or cancel", verb)
}
