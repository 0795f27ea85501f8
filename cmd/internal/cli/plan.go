package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/trace"
)

const planHelp = `Usage: triad plan create|list|show|entries|apply [flags] [KEY…|ID]

Reviewed repairs through a running triad's API: a dry run saved as a plan,
reviewed, then applied exactly (a record changed since the review is
skipped and reported).

  create [--entity E] KEY…           plan a repair of these records
  create --sweep ID                  plan a repair of a sweep's findings
  create [--entity E] --store S [--class C] [--outcome O] [--run N]
                                     plan a repair of the records a repair-log filter selects
  list                               plans, newest first
  show ID                            counts by store, class and action, and a sample
  entries ID [--format csv|ndjson]   the whole list
  apply ID                           write exactly the plan, once

Exit status: 0 done, 3 apply skipped or failed some entries, 4 no such plan,
1 an error, 2 usage.
`

func (e env) plan(ctx context.Context, args []string) error {
	var c common
	verb, fs, done, err := e.verbCommand("plan", planHelp, "create, list, show, entries or apply", args, &c)
	if done || err != nil {
		return err
	}
	entity := fs.String("entity", "profile", "create: the entity")
	sweepID := fs.Int64("sweep", 0, "create: plan a sweep's findings")
	store := fs.String("store", "", "create: a repair-log filter's store")
	class := fs.String("class", "", "create: a repair-log filter's class")
	outcome := fs.String("outcome", "", "create: a repair-log filter's outcome")
	run := fs.Int64("run", 0, "create: a repair-log filter's run")
	format := fs.String("format", "csv", "entries: csv or ndjson")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	af := newAPIFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch verb {
	case "create", "list", "show", "entries", "apply":
	default:
		return usagef("unknown plan command %q: want create, list, show, entries or apply", verb)
	}
	id := ""
	if verb == "show" || verb == "entries" || verb == "apply" {
		if fs.NArg() != 1 {
			return usagef("plan %s: give one plan ID", verb)
		}
		if _, err := strconv.ParseInt(fs.Arg(0), 10, 64); err != nil {
			return usagef("plan %s: a plan ID is a number, got %q", verb, fs.Arg(0))
		}
		id = fs.Arg(0)
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	var out json.RawMessage
	switch verb {
	case "create":
		body := map[string]any{"entity": *entity, "trigger": "cli"}
		filter := map[string]any{}
		for k, v := range map[string]string{"store": *store, "class": *class, "outcome": *outcome} {
			if v != "" {
				filter[k] = v
			}
		}
		if *run > 0 {
			filter["run"] = *run
		}
		switch {
		case *sweepID > 0:
			body["sweep"] = *sweepID
			delete(body, "entity")
		case len(filter) > 0:
			body["filter"] = filter
		case fs.NArg() > 0:
			body["ids"] = fs.Args()
		default:
			return usagef("plan create: give keys, --sweep ID, or a filter (--store, --class, --outcome, --run)")
		}
		err = api.do(ctx, http.MethodPost, "/api/v1/plans", body, &out)
	case "list":
		err = api.do(ctx, http.MethodGet, "/api/v1/plans", nil, &out)
	case "show":
		err = api.do(ctx, http.MethodGet, "/api/v1/plans/"+id, nil, &out)
	case "entries":
		if *format != "csv" && *format != "ndjson" {
			return usagef("plan entries: --format is csv or ndjson")
		}
		return api.raw(ctx, "/api/v1/plans/"+id+"/entries?format="+url.QueryEscape(*format), e.stdout)
	case "apply":
		err = api.do(ctx, http.MethodPost, "/api/v1/plans/"+id+"/apply?trigger=cli", nil, &out)
	}
	if err != nil {
		return err
	}
	return e.answer(*asJSON, out, func() error { return e.printPlan(verb, out) })
}

func (e env) printPlan(verb string, out json.RawMessage) error {
	switch verb {
	case "list":
		var ps []repair.SavedPlan
		if err := json.Unmarshal(out, &ps); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tENTITY\tSOURCE\tRECORDS\tWRITES\tBY\tAPPLIED")
		for _, p := range ps {
			applied := "-"
			if p.AppliedAt != nil {
				applied = trace.Printable(p.AppliedBy) + " " + p.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", p.ID, p.Entity, trace.Printable(p.Source), p.Keys, p.Entries, trace.Printable(p.CreatedBy), applied)
		}
		return tw.Flush()
	case "apply":
		var r struct {
			Run        repair.Run     `json:"run"`
			NotWritten []repair.Entry `json:"not_written"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "run %d: %d repaired, %d skipped (changed since review), %d conflicts, %d failed\n",
			r.Run.ID, r.Run.Repaired, r.Run.Skipped, r.Run.Conflicts, r.Run.Failed)
		for _, en := range r.NotWritten {
			fmt.Fprintf(e.stdout, "  %s %s %s: %s\n", en.Key, en.Store, en.Outcome, trace.Printable(en.Error))
		}
		if len(r.NotWritten) > 0 {
			return exitError{ExitPartial, fmt.Errorf("%d entries were not written", len(r.NotWritten))}
		}
		return nil
	default: // create, show
		var p repair.SavedPlan
		if err := json.Unmarshal(out, &p); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "plan %d · %s · %s: %d records, %d writes planned (dry run %v)\n", p.ID, p.Entity, trace.Printable(p.Source), p.Keys, p.Entries, deref(p.DryRunID))
		if p.AppliedAt != nil {
			fmt.Fprintf(e.stdout, "applied by %s at %s (run %v)\n", trace.Printable(p.AppliedBy), p.AppliedAt.UTC().Format(time.RFC3339), deref(p.AppliedRun))
		}
		if len(p.Counts) > 0 {
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "STORE\tCLASS\tACTION\tWRITES")
			for _, c := range p.Counts {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", c.Store, c.Class, c.Action, c.Count)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if verb == "create" {
			fmt.Fprintf(e.stdout, "review: triad plan show %d; triad plan entries %d; then: triad plan apply %d\n", p.ID, p.ID, p.ID)
		}
		return nil
	}
}

func deref(p *int64) any {
	if p == nil {
		return "-"
	}
	return *p
}
