package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/trace"
)

const webhookHelp = `Usage: triad webhook add|list|test|remove|rotate [flags] [ID|NAME]

Manages alert webhooks through a running triad's API (an admin token):

  add --name N --url U [--format alertmanager|json] [--rule R]... [--no-resolved] [--secret S]
        create an endpoint; prints its secret once, in triad's form (X-Triad-Signature)
        and in the Standard Webhooks form (whsec_…, webhook-signature)
  list  the endpoints (never their secrets)
  test ID|NAME
        send a signed test notification now and print its delivery
  remove ID|NAME
        delete an endpoint and its delivery log
  rotate ID|NAME [--grace 24h]
        a new secret, printed once; the old one keeps signing beside it
        (two signatures per delivery) until the grace ends

Exit status: 0 done, 3 a test delivery was not accepted, 4 no such webhook, 1 an error, 2 usage.
`

// ruleFlags collects a repeated --rule.
type ruleFlags []string

func (r *ruleFlags) String() string     { return strings.Join(*r, ",") }
func (r *ruleFlags) Set(v string) error { *r = append(*r, v); return nil }

func (e env) webhook(ctx context.Context, args []string) error {
	var c common
	verb, fs, done, err := e.verbCommand("webhook", webhookHelp, "add, list, test, remove or rotate", args, &c)
	if done || err != nil {
		return err
	}
	name := fs.String("name", "", "add: the endpoint's name")
	target := fs.String("url", "", "add: where deliveries are posted")
	format := fs.String("format", alert.FormatAlertmanager, "add: alertmanager (Alertmanager's webhook JSON) or json")
	secret := fs.String("secret", "", "add: the signing secret (at least 16 characters; default: generated)")
	noResolved := fs.Bool("no-resolved", false, "add: do not send resolved notifications")
	grace := fs.Duration("grace", 24*time.Hour, "rotate: how long the old secret keeps signing")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	var rules ruleFlags
	fs.Var(&rules, "rule", "add: a rule this endpoint receives (repeatable; default: every rule)")
	af := newAPIFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	one := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usagef("webhook %s: give one webhook ID or name", verb)
		}
		return url.PathEscape(fs.Arg(0)), nil
	}
	switch verb {
	case "add", "list", "test", "remove", "rotate":
	default:
		return usagef("unknown webhook command %q: want add, list, test, remove or rotate", verb)
	}
	api, err := e.connect(c, af)
	if err != nil {
		return err
	}
	var out json.RawMessage
	switch verb {
	case "add":
		if *name == "" || *target == "" {
			return usagef("webhook add: --name and --url are required")
		}
		body := map[string]any{"name": *name, "url": *target, "format": *format, "rules": []string(rules), "send_resolved": !*noResolved}
		if *secret != "" {
			body["secret"] = *secret
		}
		err = api.do(ctx, http.MethodPost, "/api/v1/webhooks", body, &out)
	case "list":
		err = api.do(ctx, http.MethodGet, "/api/v1/webhooks", nil, &out)
	case "test", "remove", "rotate":
		id, uerr := one()
		if uerr != nil {
			return uerr
		}
		switch verb {
		case "test":
			err = api.do(ctx, http.MethodPost, "/api/v1/webhooks/"+id+"/test", nil, &out)
		case "remove":
			err = api.do(ctx, http.MethodDelete, "/api/v1/webhooks/"+id, nil, &out)
		default:
			err = api.do(ctx, http.MethodPost, "/api/v1/webhooks/"+id+"/rotate?grace="+url.QueryEscape(grace.String()), nil, &out)
		}
	}
	if err != nil {
		return err
	}
	return e.answer(*asJSON, out, func() error { return e.printWebhook(verb, out) })
}

// printWebhook prints an answer of the webhook API for a terminal (names
// and URLs escaped: they are other people's text).
func (e env) printWebhook(verb string, out json.RawMessage) error {
	type withSecret struct {
		alert.Webhook
		Secret         string `json:"secret"`
		StandardSecret string `json:"standard_webhooks_secret"`
	}
	switch verb {
	case "list":
		var hooks []alert.Webhook
		if err := json.Unmarshal(out, &hooks); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tFORMAT\tURL\tRULES\tRESOLVED\tPREVIOUS SECRET UNTIL")
		for _, w := range hooks {
			rules, until := "(all)", "-"
			if len(w.Rules) > 0 {
				rules = strings.Join(w.Rules, ",")
			}
			if w.PreviousUntil != nil && w.PreviousUntil.After(time.Now()) {
				until = w.PreviousUntil.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%v\t%s\n", w.ID, trace.Printable(w.Name), w.Format, trace.Printable(w.URL), trace.Printable(rules), w.SendResolved, until)
		}
		return tw.Flush()
	case "test":
		var d alert.Delivery
		if err := json.Unmarshal(out, &d); err != nil {
			return err
		}
		status, why := "none", ""
		if d.LastStatus != nil {
			status = fmt.Sprint(*d.LastStatus)
		}
		if d.LastError != nil {
			why = ": " + trace.Printable(*d.LastError)
		}
		fmt.Fprintf(e.stdout, "delivery %d to %s: %s after %d attempt(s), last status %s%s\n",
			d.ID, trace.Printable(d.Webhook), d.State, d.Attempts, status, why)
		if d.State != "delivered" {
			return exitError{ExitPartial, fmt.Errorf("the test delivery was not accepted (the leader retries it)")}
		}
		return nil
	case "remove":
		var w alert.Webhook
		if err := json.Unmarshal(out, &w); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed webhook %d (%s)\n", w.ID, trace.Printable(w.Name))
		return nil
	default: // add, rotate: the secret, once
		var w withSecret
		if err := json.Unmarshal(out, &w); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "webhook %d (%s)\n", w.ID, trace.Printable(w.Name))
		fmt.Fprintf(e.stdout, "secret (X-Triad-Signature):                    %s\n", w.Secret)
		fmt.Fprintf(e.stdout, "Standard Webhooks secret (webhook-signature):  %s\n", w.StandardSecret)
		if w.PreviousUntil != nil {
			fmt.Fprintf(e.stdout, "the previous secret signs too until %s\n", w.PreviousUntil.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(e.stdout, "shown once: store it where the receiver reads it")
		return nil
	}
}
