package sweep_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/leader"
	repairpg "github.com/triad-dev/triad/repair/postgres"
	"github.com/triad-dev/triad/repair/repairtest"
	"github.com/triad-dev/triad/repair/sweep"
)

// TestSeqNoCheckpointOnRealIndex pins what the index checkpoint relies on,
// on the real server: every kind of write gets a _seq_no above the
// checkpoint taken before it (update, plain index, delete and re-create),
// while refreshes and merges leave the documents' numbers alone.
func TestSeqNoCheckpointOnRealIndex(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 50, "ok")
	require.NoError(t, s.ES.Refresh(ctx))
	cp, err := s.ES.Checkpoint(ctx)
	require.NoError(t, err)
	seqs := func() map[int64]int64 {
		out := map[int64]int64{}
		require.NoError(t, s.ES.Scan(ctx, 1, 50, -1, func(docs []esstore.Doc) error {
			for _, d := range docs {
				out[d.ID] = d.SeqNo
			}
			return nil
		}))
		return out
	}
	before := seqs()
	require.Len(t, before, 50)
	for _, n := range before {
		require.LessOrEqual(t, n, cp.SeqNo)
	}
	// A refresh and a merge to one segment renumber nothing.
	res, err := s.NS.ES().Indices.Forcemerge(s.NS.ES().Indices.Forcemerge.WithIndex(s.ES.Alias()), s.NS.ES().Indices.Forcemerge.WithMaxNumSegments(1))
	require.NoError(t, err)
	res.Body.Close()
	require.NoError(t, s.ES.Refresh(ctx))
	require.Equal(t, before, seqs())

	s.ESUpdate(t, s.ES.Alias(), "3", `{"tags":["changed"]}`)
	src := s.ESSource(t, s.ES.Alias(), "4")
	body, _ := json.Marshal(src)
	s.ESPlainIndex(t, s.ES.Alias(), "4", string(body))
	res, err = s.NS.ES().Delete(s.ES.Alias(), "5", s.NS.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	res.Body.Close()
	src = s.ESSource(t, s.ES.Alias(), "6")
	res, err = s.NS.ES().Delete(s.ES.Alias(), "6", s.NS.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	res.Body.Close()
	body, _ = json.Marshal(src)
	s.ESPlainIndex(t, s.ES.Alias(), "6", string(body))

	var changed []int64
	n, err := s.ES.Changed(ctx, cp.Index, cp.Shards, cp.SeqNo, func(docs []esstore.Doc) error {
		for _, d := range docs {
			changed = append(changed, d.ID)
		}
		return nil
	})
	require.NoError(t, err)
	slices.Sort(changed)
	require.Equal(t, []int64{3, 4, 6}, changed, "updated, re-indexed and re-created documents; the deleted one is gone")
	require.EqualValues(t, 3, n)
	after := seqs()
	for id, seq := range after {
		if id != 3 && id != 4 && id != 6 {
			require.Equal(t, before[id], seq, "document %d was not written", id)
		}
	}
	now, err := s.ES.Checkpoint(ctx)
	require.NoError(t, err)
	require.Equal(t, cp.UUID, now.UUID)
	require.Greater(t, now.SeqNo, cp.SeqNo)
}

// TestCheckpointedSweep: the first content-true sweep reads every document
// whole and verifies the index's checkpoint; the next reads whole only the
// documents written since (by anyone), compares the rest by their labels,
// and still finds every kind of drift: a lying _update, a plain re-index,
// a delete. A label-only sweep misses what left the labels alone and says
// it is not content-true.
func TestCheckpointedSweep(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 3000, "ok")
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	sw := sweep.New(c, repair.NewRepairer(c, repairpg.NewLog(s.NS.Pool())))
	sw.Checkpoints = repairpg.NewSweeps(s.NS.Pool())
	run := func(mode string, fix bool) sweep.Report {
		t.Helper()
		rep, err := sw.Sweep(ctx, sweep.Options{Entity: "profile", Mode: mode, SegmentSize: 200, Recheck: 50 * time.Millisecond, Repair: fix})
		require.NoError(t, err)
		t.Logf("%s sweep: %d records, %d findings, took %s, checkpoint %+v, orphans %s", mode, rep.Records, len(rep.Findings), rep.Took, rep.Checkpoint, rep.OrphanScan)
		return rep
	}
	found := func(rep sweep.Report) []string {
		var out []string
		for _, f := range rep.Findings {
			out = append(out, f.Key+"/"+f.Store+"/"+string(f.Class))
		}
		slices.Sort(out)
		return out
	}

	first := run(sweep.ModeDigest, false)
	require.True(t, first.ContentTrue)
	require.NotNil(t, first.Checkpoint)
	require.Nil(t, first.Checkpoint.Base, "no verified checkpoint yet: a full content pass")
	require.True(t, first.Checkpoint.Advanced)
	require.Empty(t, first.Findings)

	// Nothing written: the next sweep reads no document whole.
	quiet := run(sweep.ModeDigest, false)
	require.NotNil(t, quiet.Checkpoint.Base)
	require.Equal(t, first.Checkpoint.Taken.SeqNo, quiet.Checkpoint.Base.SeqNo)
	require.Zero(t, quiet.Checkpoint.Changed)
	require.Empty(t, quiet.Findings)

	// Other writers, through Elasticsearch's and Redis's own APIs.
	s.ESUpdate(t, s.ES.Alias(), "100", `{"tags":["changed-by-update"]}`) // labels kept: they lie
	src := s.ESSource(t, s.ES.Alias(), "200")
	src["props"] = json.RawMessage(`{"k":"reindexed"}`)
	body, _ := json.Marshal(src)
	s.ESPlainIndex(t, s.ES.Alias(), "200", string(body)) // same version, other content
	src = s.ESSource(t, s.ES.Alias(), "300")
	body, _ = json.Marshal(src)
	s.ESPlainIndex(t, s.ES.Alias(), "300", string(body)) // same content again: not drift
	res, err := s.NS.ES().Delete(s.ES.Alias(), "400", s.NS.ES().Delete.WithRefresh("true"))
	require.NoError(t, err)
	res.Body.Close()
	require.NoError(t, s.Redis.HSet(ctx, s.RS.KeyAt(1, 500), "tags", `["changed-by-hset"]`).Err())

	quick := run(sweep.ModeLabels, false)
	require.False(t, quick.ContentTrue)
	require.Nil(t, quick.Checkpoint, "the quick mode neither uses nor proves a checkpoint")
	require.Equal(t, []string{"400/elasticsearch/missing"}, found(quick), "labels see only the delete")

	want := []string{"100/elasticsearch/field_mismatch", "200/elasticsearch/field_mismatch", "400/elasticsearch/missing", "500/redis/field_mismatch"}
	dry := run(sweep.ModeDigest, false)
	require.Equal(t, want, found(dry))
	require.EqualValues(t, 3, dry.Checkpoint.Changed, "the updated and the two re-indexed documents were read whole")
	require.False(t, dry.Checkpoint.Advanced, "an unrepaired document whose labels lie holds the checkpoint back")

	fixed := run(sweep.ModeAuto, true)
	require.Equal(t, want, found(fixed))
	require.NotNil(t, fixed.Repair)
	if fixed.Repair.Repaired != 4 {
		entries, _, err := repairpg.NewLog(s.NS.Pool()).List(ctx, repair.LogFilter{Limit: 50})
		require.NoError(t, err)
		for _, e := range entries {
			t.Logf("%s %s %s %s", e.Key, e.Store, e.Outcome, e.Error)
		}
	}
	require.Equal(t, 4, fixed.Repair.Repaired, "%+v", *fixed.Repair)
	require.True(t, fixed.Checkpoint.Advanced)

	clean := run(sweep.ModeDigest, false)
	require.Empty(t, clean.Findings)
	require.Equal(t, fixed.Checkpoint.Taken.SeqNo, clean.Checkpoint.Base.SeqNo)
	require.EqualValues(t, 3, clean.Checkpoint.Changed, "only the three repair writes (100, 200, 400)")
}

// TestPersistedSweepVerifiesCheckpoint: the persisted sweep (planned into
// ranges, run and finished by a worker) takes the checkpoint when it is
// planned, verifies it when clean, and reads whole only what was written
// since on the next run; a lying document found there holds it back.
func TestPersistedSweepVerifiesCheckpoint(t *testing.T) {
	t.Parallel()
	s := repairtest.New(t)
	ctx := t.Context()
	s.Consistent(t, 1, 1500, "ok")
	require.NoError(t, s.ES.Refresh(ctx))
	c := repair.NewChecker(repair.NewProfile(s.PG, s.RS, s.ES))
	st := repairpg.NewSweeps(s.NS.Pool())
	sw := sweep.New(c, nil)
	sw.Checkpoints = st
	claims := leader.NewClaims(s.NS.Etcd(), s.NS.EtcdPrefix, "a", time.Second)
	t.Cleanup(func() { claims.Close() })
	w := sweep.NewWorker(sw, st, claims, sweep.WorkerConfig{Owner: "a", Poll: 50 * time.Millisecond, Recheck: 50 * time.Millisecond, RangeSegments: 4},
		stacktest.Logger(t))
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)
	run := func() sweep.Record {
		t.Helper()
		rec, err := w.Start(ctx, sweep.Record{Entity: "profile", Mode: sweep.ModeDigest, SegmentSize: 100, Trigger: repair.TriggerAPI, Actor: "test"})
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			rec, err = st.GetSweep(ctx, rec.ID)
			return err == nil && rec.State != sweep.Running
		}, 60*time.Second, 50*time.Millisecond)
		require.Equal(t, sweep.Done, rec.State, rec.Error)
		require.True(t, rec.ContentTrue)
		require.NotNil(t, rec.Checkpoint)
		return rec
	}
	first := run()
	require.Nil(t, first.Checkpoint.Base)
	require.True(t, first.Checkpoint.Advanced)
	require.Zero(t, first.Findings)
	require.NotEmpty(t, first.OrphanScan)

	s.ESUpdate(t, s.ES.Alias(), "700", `{"tags":["changed-by-update"]}`)
	second := run()
	require.NotNil(t, second.Checkpoint.Base)
	require.Equal(t, first.Checkpoint.Taken.SeqNo, second.Checkpoint.Base.SeqNo)
	require.EqualValues(t, 1, second.Checkpoint.Changed)
	require.Equal(t, 1, second.Findings)
	require.False(t, second.Checkpoint.Advanced, "the lying document was not repaired")
	got, err := st.Findings(ctx, second.ID, 10)
	require.NoError(t, err)
	require.Equal(t, []sweep.Finding{{Key: "700", Store: "elasticsearch", Class: repair.ClassFieldMismatch}}, got)
}
