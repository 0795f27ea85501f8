package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
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

// apiClient talks to a running triad's API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiFlags are --server, --token and --token-file.
type apiFlags struct{ server, token, tokenFile *string }

func newAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{fs.String("server", "", "triad API base URL (default: http://<server.listen>)"),
		fs.String("token", "", "API token (default: TRIAD_TOKEN, then --token-file)"),
		fs.String("token-file", ".triad/admin-token", "file holding the API token")}
}

// connect loads the configuration (for server.listen) and returns a client
// of the API the flags name.
func (e env) connect(c common, f apiFlags) (*apiClient, error) {
	cfg, _, err := e.load(c)
	if err != nil {
		return nil, err
	}
	return e.newAPIClient(*f.server, *f.token, *f.tokenFile, cfg.Server.Listen)
}

func (e env) newAPIClient(serverURL, token, tokenFile, listen string) (*apiClient, error) {
	if serverURL == "" {
		serverURL = "http://" + listen
	}
	if token == "" {
		for _, kv := range e.environ {
			if v, ok := strings.CutPrefix(kv, "TRIAD_TOKEN="); ok {
				token = v
			}
		}
	}
	if token == "" && tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, usagef("no API token: pass --token, set TRIAD_TOKEN or --token-file (create one with `triad token create`)")
	}
	return &apiClient{base: strings.TrimSuffix(serverURL, "/"), token: token, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// do sends a request and decodes the envelope's data into out; an error
// envelope becomes an error carrying its message.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("triad API at %s: %w", a.base, err)
	}
	defer res.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  *struct {
			Code, Message string
		} `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return fmt.Errorf("triad API at %s: %s: %w", a.base, res.Status, err)
	}
	if env.Error != nil {
		return answerError(res, env.Error.Message)
	}
	return json.Unmarshal(env.Data, out)
}

// answerError is the error for an API answer that is not a success: a
// usage error for a 4xx the caller can fix (not 401 or 403).
func answerError(res *http.Response, message string) error {
	err := fmt.Errorf("%s (%s)", message, res.Status)
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
		return usageError{err}
	}
	return err
}

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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, sweepHelp)
		if len(args) == 0 {
			return usagef("want start, status, pause, resume or cancel")
		}
		return nil
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
