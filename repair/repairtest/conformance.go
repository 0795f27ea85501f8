package repairtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
)

// Injected is one drift another writer made, through a store's own API,
// and the class the engine must give it.
type Injected struct {
	Key, Store string
	Class      repair.Class
}

// Suite is one entity on its real stores with drift injected: what the
// conformance suite needs to judge the engine on it.
type Suite struct {
	Entity   string
	Checker  *repair.Checker
	Repairer *repair.Repairer
	Sweeper  *sweep.Sweeper
	Log      repair.Log
	Injected []Injected
	// Clean are keys of consistent records, checked beside the drift.
	Clean []string
}

// Conformance is the suite every entity passes on its real stores,
// whatever their encodings:
//  1. one check by ID of every injected key (garbage included) answers,
//     and names exactly the injected drift, each corrupt copy with why
//     and its size;
//  2. a default (auto) sweep finds exactly the same;
//  3. a dry run plans exactly what the repair then writes, every
//     entry naming differing fields or what was observed, a skip writing
//     nothing;
//  4. a second repair writes nothing, and every copy (but one the store
//     holds ahead of the primary, never lowered) agrees;
//  5. the run's entries are all listed under the run.
//
// It returns the sweep's report.
func Conformance(t *testing.T, s Suite) sweep.Report {
	t.Helper()
	ctx := t.Context()
	var keys, expect []string
	for _, w := range s.Injected {
		keys = append(keys, w.Key)
		expect = append(expect, fmt.Sprintf("%s/%s/%s", w.Key, w.Store, w.Class))
	}
	slices.Sort(expect)

	res, err := s.Checker.Check(ctx, s.Entity, append(slices.Clone(keys), s.Clean...))
	require.NoError(t, err, "garbage never fails a check batch")
	var got []string
	for _, r := range res {
		for store, v := range r.Stores {
			if store != "postgres" && v.Class.Drift() {
				got = append(got, fmt.Sprintf("%s/%s/%s", r.Key, store, v.Class))
			}
			if v.Class == repair.ClassCorrupt {
				require.NotEmpty(t, v.Corrupt, "a corrupt copy says why")
				require.Positive(t, v.Bytes, "and how large it is")
			}
		}
	}
	slices.Sort(got)
	require.Equal(t, expect, got, "check finds exactly the injected drift")

	rep, err := s.Sweeper.Sweep(ctx, sweep.Options{Entity: s.Entity, SegmentSize: 100, Recheck: 50 * time.Millisecond})
	require.NoError(t, err)
	require.True(t, rep.ContentTrue)
	got = got[:0]
	for _, f := range rep.Findings {
		got = append(got, fmt.Sprintf("%s/%s/%s", f.Key, f.Store, f.Class))
	}
	slices.Sort(got)
	require.Equal(t, expect, got, "the default sweep finds exactly the injected drift (mode %s)", rep.Mode)

	dry, _, err := s.Repairer.Repair(ctx, repair.Request{Entity: s.Entity, Keys: keys, DryRun: true, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	run, entries, err := s.Repairer.Repair(ctx, repair.Request{Entity: s.Entity, Keys: keys, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	ahead := 0
	for _, e := range entries {
		if e.Class == repair.ClassAhead && e.Store != "postgres" {
			ahead++
			require.Equal(t, repair.OutcomeSkipped, e.Outcome)
			require.Nil(t, e.After, "a skip wrote nothing")
			continue
		}
		if e.Class.Drift() {
			require.Equal(t, repair.OutcomeRepaired, e.Outcome, "%+v", e)
			require.NotNil(t, e.After)
		}
		if e.Class == repair.ClassFieldMismatch {
			require.NotEmpty(t, e.Fields, "the entry names the fields that differed")
		}
		if e.Class == repair.ClassCorrupt {
			require.NotEmpty(t, e.Observed)
		}
	}
	require.Equal(t, dry.Planned, run.Repaired, "the dry run planned exactly what the run wrote")
	require.Equal(t, len(s.Injected)-ahead, run.Repaired)

	again, _, err := s.Repairer.Repair(ctx, repair.Request{Entity: s.Entity, Keys: keys, Trigger: repair.TriggerAPI, Actor: "test"})
	require.NoError(t, err)
	require.Zero(t, again.Repaired+again.Failed+again.Conflicts, "a second repair writes nothing: %+v", again)
	res, err = s.Checker.Check(ctx, s.Entity, keys)
	require.NoError(t, err)
	for _, r := range res {
		for store, v := range r.Stores {
			if store == "postgres" || v.Class == repair.ClassAhead {
				continue
			}
			require.False(t, v.Class.Drift(), "%s %s: %+v", r.Key, store, v)
		}
	}
	listed, _, err := s.Log.List(ctx, repair.LogFilter{RunID: run.ID, Limit: 1000})
	require.NoError(t, err)
	require.Len(t, listed, len(entries))
	return rep
}
