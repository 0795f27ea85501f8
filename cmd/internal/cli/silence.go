package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/trace"
)

const silenceHelp = `Usage: triad silence add|list|preview|expire [flags] [MATCHER…|ID]

Silences alerts through a running triad's API (as amtool silence does):

  add MATCHER… --comment WHY [--for 2h]
        mute the alerts every matcher selects: label=value, or label=~regex
        (labels: alertname, entity, store, kind, severity, sweep, health)
  preview MATCHER…
        the active alerts such a silence would mute
  list  silences, active and pending first; expired ones are kept
  expire ID
        end a silence now (kept and listed, as expired)

Exit status: 0 done, 4 no such silence, 1 an error, 2 usage.
`

var matcherSyntax = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)(=~|=)(.*)$`)

// parseMatchers reads label=value and label=~regex arguments.
func parseMatchers(args []string) ([]alert.Matcher, error) {
	var out []alert.Matcher
	for _, a := range args {
		m := matcherSyntax.FindStringSubmatch(a)
		if m == nil {
			return nil, usagef("a matcher is label=value or label=~regex, got %q", a)
		}
		out = append(out, alert.Matcher{Name: m[1], Value: m[3], Regex: m[2] == "=~"})
	}
	return out, nil
}

func (e env) silence(ctx context.Context, args []string) error {
	var c common
	verb, fs, done, err := e.verbCommand("silence", silenceHelp, "add, list, preview or expire", args, &c)
	if done || err != nil {
		return err
	}
	comment := fs.String("comment", "", "add: why (a ticket, a name); required")
	dur := fs.Duration("for", 2*time.Hour, "add: how long the silence lasts")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	af := newAPIFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	switch verb {
	case "add", "list", "preview", "expire":
	default:
		return usagef("unknown silence command %q: want add, list, preview or expire", verb)
	}
	var matchers []alert.Matcher
	if verb == "add" || verb == "preview" {
		if fs.NArg() == 0 {
			return usagef("silence %s: give at least one matcher (label=value)", verb)
		}
		var err error
		if matchers, err = parseMatchers(fs.Args()); err != nil {
			return err
		}
	}
	if verb == "add" && strings.TrimSpace(*comment) == "" {
		return usagef("silence add: --comment is required (why, for whoever reads the list)")
	}
	if verb == "expire" && fs.NArg() != 1 {
		return usagef("silence expire: give one silence ID")
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	var out json.RawMessage
	switch verb {
	case "add":
		err = api.do(ctx, http.MethodPost, "/api/v1/silences", map[string]any{"matchers": matchers, "comment": *comment, "duration": dur.String()}, &out)
	case "preview":
		err = api.do(ctx, http.MethodPost, "/api/v1/silences/preview", map[string]any{"matchers": matchers}, &out)
	case "list":
		err = api.do(ctx, http.MethodGet, "/api/v1/silences", nil, &out)
	case "expire":
		err = api.do(ctx, http.MethodDelete, "/api/v1/silences/"+fs.Arg(0), nil, &out)
	}
	if err != nil {
		return err
	}
	return e.answer(*asJSON, out, func() error { return e.printSilence(verb, out) })
}

type silenceRow struct {
	alert.Silence
	State string `json:"state"`
}

func matchersText(ms []alert.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		op := "="
		if m.Regex {
			op = "=~"
		}
		parts[i] = m.Name + op + m.Value
	}
	return trace.Printable(strings.Join(parts, " "))
}

func (e env) printSilence(verb string, out json.RawMessage) error {
	switch verb {
	case "list":
		var ss []silenceRow
		if err := json.Unmarshal(out, &ss); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tENDS\tBY\tCOMMENT")
		for _, s := range ss {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, matchersText(s.Matchers), s.EndsAt.UTC().Format(time.RFC3339),
				trace.Printable(s.CreatedBy), trace.Printable(s.Comment))
		}
		return tw.Flush()
	case "preview":
		var as []alert.State
		if err := json.Unmarshal(out, &as); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "would mute %d active alert(s)\n", len(as))
		for _, a := range as {
			fmt.Fprintf(e.stdout, "  %s %s %s\n", trace.Printable(a.Rule), a.Status(), trace.Printable(a.Annotations["summary"]))
		}
		return nil
	default: // add, expire
		var s silenceRow
		if err := json.Unmarshal(out, &s); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "silence %d %s: %s until %s\n", s.ID, s.State, matchersText(s.Matchers), s.EndsAt.UTC().Format(time.RFC3339))
		return nil
	}
}
