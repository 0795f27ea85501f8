// Package cli implements triad's subcommands. main only calls Main.
package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/triad-dev/triad/cmd/stack"
)

func (e env) stack(ctx context.Context, args []string) error {
	var asJSON *bool
	var profile *string
	verb, fs, cfg, log, err := e.subcommand("stack", "up, down or status", args, func(fs *flag.FlagSet) {
		asJSON = fs.Bool("json", false, "print status as JSON")
		profile = fs.String("profile", "", "single, or cluster: a Redis Cluster (3 masters, 3 replicas), 3 etcd members and 2 Elasticsearch nodes (stack.profile)")
	})
	if err != nil {
		return err
	}
	if *profile != "" {
		cfg.Stack.Profile = *profile
	}
	st, err := stack.New(cfg.Stack, log)
	if err != nil {
		return err
	}
	names := fs.Args()
	switch verb {
	case "up":
		start := time.Now()
		status, err := st.Up(ctx, names...)
		e.printStatus(status, *asJSON)
		if err != nil {
			return err
		}
		dir := cfg.Stack.Dir
		if cfg.Stack.Profile == stack.ProfileCluster {
			dir = cfg.Stack.ClusterDir
		}
		fmt.Fprintf(e.stdout, "stack up in %s; state in %s\n", time.Since(start).Round(time.Millisecond), dir)
		return nil
	case "down":
		return st.Down(ctx, names...)
	case "status":
		status, err := st.Status(ctx)
		if err != nil {
			return err
		}
		e.printStatus(status, *asJSON)
		for _, s := range status {
			if !s.Up {
				return fmt.Errorf("%s is down", s.Name)
			}
		}
		return nil
	}
	return usagef("unknown stack command %q: want up, down or status", verb)
}

func (e env) printStatus(status []stack.ServerStatus, asJSON bool) {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status)
		return
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVER\tSTATE\tVERSION\tENDPOINT\tPID")
	for _, s := range status {
		state := "up"
		if !s.Up {
			state = "down"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", s.Name, state, s.Version, s.Endpoint, s.Pid)
	}
	_ = tw.Flush()
}
