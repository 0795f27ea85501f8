package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// catchupPage is how many entries one replay step handles.
const catchupPage = 1000

// ReplayCatchup replays every derived store's catch-up log once, until it
// is empty or the store fails again. It re-reads each profile from Postgres
// (the truth now, which may be newer than what failed) and writes that; a
// profile Postgres no longer has (a purged tombstone) is deleted. It returns
// how many entries were replayed.
func (p *Pipeline) ReplayCatchup(ctx context.Context) (int, error) {
	if p.catchup == nil {
		return 0, nil
	}
	total := 0
	var errs []error
	for _, ds := range p.derived {
		n, err := ds.replay(ctx)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ds.name, err))
		}
	}
	return total, errors.Join(errs...)
}

func (ds *derivedStore) replay(ctx context.Context) (int, error) {
	p := ds.p
	done := 0
	// One pass walks the log in user ID order from a cursor, so an entry
	// that cannot be removed (its recorded version is newer than what
	// Postgres holds) is left for the next pass instead of blocking this one.
	after := int64(0)
	for {
		pend, err := p.catchup.Pending(ctx, ds.name, after, catchupPage)
		if err != nil {
			return done, fmt.Errorf("read catch-up log: %w", err)
		}
		if len(pend) == 0 {
			ds.setDown(false)
			return done, nil
		}
		after = pend[len(pend)-1].UserID
		ids := make([]int64, len(pend))
		for i, e := range pend {
			ids[i] = e.UserID
		}
		gctx, cancel := context.WithTimeout(ctx, p.cfg.PrimaryTimeout)
		rows, err := p.primary.Get(gctx, ids)
		cancel()
		if err != nil {
			return done, fmt.Errorf("read postgres: %w", err)
		}
		have := make(map[int64]bool, len(rows))
		for _, r := range rows {
			have[r.UserID] = true
		}
		for _, e := range pend {
			if !have[e.UserID] {
				rows = append(rows, &Profile{UserID: e.UserID, Version: e.Version, Deleted: true})
			}
		}
		out := make([]WriteResult, len(rows))
		wctx, cancel := context.WithTimeout(ctx, p.cfg.DerivedTimeout)
		err = ds.store.Write(wctx, rows, out)
		cancel()
		if err != nil {
			ds.setDown(true)
			return done, err
		}
		since := make(map[int64]time.Time, len(pend))
		for _, e := range pend {
			since[e.UserID] = e.Since
		}
		var ok []*Profile
		var rejected []Rejection
		var itemErr error
		lag := p.m.consistentAfter.WithLabelValues(ds.name)
		for i, r := range out {
			if r.Err != nil {
				itemErr = r.Err
				continue
			}
			if r.Rejected != "" {
				rejected = append(rejected, Rejection{UserID: rows[i].UserID, Version: rows[i].Version, Reason: r.Rejected})
				continue
			}
			ok = append(ok, rows[i])
			if t := since[rows[i].UserID]; !t.IsZero() {
				lag.Observe(time.Since(t).Seconds())
			}
		}
		if err := p.catchup.Done(ctx, ds.name, ok); err != nil {
			return done, fmt.Errorf("update catch-up log: %w", err)
		}
		if len(rejected) > 0 {
			p.m.derived.WithLabelValues(ds.name, "rejected").Add(float64(len(rejected)))
			if err := p.catchup.Reject(ctx, ds.name, rejected); err != nil {
				return done, fmt.Errorf("record rejections: %w", err)
			}
		}
		done += len(ok)
		p.m.catchup.WithLabelValues(ds.name, "replayed").Add(float64(len(ok)))
		if itemErr != nil {
			return done, fmt.Errorf("%d of %d items failed: %w", len(rows)-len(ok), len(rows), itemErr)
		}
	}
}

// RunCatchup, every CatchupInterval until ctx ends, moves abandoned
// outbox entries to the catch-up log (RecoverOutbox), replays the log and
// exports its backlog.
func (p *Pipeline) RunCatchup(ctx context.Context) {
	if p.catchup == nil {
		return
	}
	t := time.NewTicker(p.cfg.CatchupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := p.RecoverOutbox(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("outbox recovery incomplete", "profiles", n, "err", err)
		}
		if n, err := p.ReplayCatchup(ctx); err != nil && ctx.Err() == nil {
			p.log.Debug("catch-up replay incomplete", "replayed", n, "err", err)
		} else if n > 0 {
			p.log.Info("catch-up replayed", "profiles", n)
		}
		for _, ds := range p.derived {
			cctx, cancel := context.WithTimeout(ctx, p.cfg.PrimaryTimeout)
			if n, err := p.catchup.Count(cctx, ds.name); err == nil {
				p.m.backlog.WithLabelValues(ds.name).Set(float64(n))
			}
			cancel()
		}
	}
}

// Rewarm records every live profile as owed to store, so the catch-up
// replay writes them all again (version-guarded: a key that still holds
// its version is left as is). It is the answer to a store that lost data,
// such as a Redis restarted without persistence.
func (p *Pipeline) Rewarm(ctx context.Context, store, reason string) (int64, error) {
	if p.catchup == nil {
		return 0, errors.New("no catch-up log to re-warm from")
	}
	n, err := p.catchup.OweAll(ctx, store, reason)
	if err == nil {
		p.m.catchup.WithLabelValues(store, "rewarm").Add(float64(n))
	}
	return n, err
}

// outboxPage is how many outbox entries one recovery step moves.
const outboxPage = 100

// RecoverOutbox moves every outbox entry older than OutboxGrace to the
// catch-up log of each store it owes: its writer crashed (or stalled past
// the grace) before the writes reached their stores. Any triad sharing
// the database may do it, once per entry (the entries are locked). It
// returns how many profiles it moved.
func (p *Pipeline) RecoverOutbox(ctx context.Context) (int64, error) {
	if p.catchup == nil {
		return 0, nil
	}
	var total int64
	for {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.PrimaryTimeout)
		n, err := p.catchup.Recover(rctx, p.cfg.OutboxGrace, outboxPage)
		cancel()
		total += n
		if err != nil {
			return total, fmt.Errorf("recover outbox: %w", err)
		}
		if n > 0 {
			p.m.catchup.WithLabelValues("outbox", "recovered").Add(float64(n))
			p.log.Warn("moved writes owed by an unfinished writer to the catch-up log", "profiles", n)
		}
		if n == 0 {
			return total, nil
		}
	}
}

// settled counts one finished write of an outbox entry; the last one
// queues the entry for deletion.
func (p *Pipeline) settled(o *owed) {
	if o != nil && o.left.Add(-1) == 0 {
		p.settle <- o.id
	}
}

// settler deletes finished outbox entries in batches until the settle
// channel closes. A failed delete leaves entries that RecoverOutbox later
// moves to the catch-up log: a replay of writes that already landed,
// which the stores' version guards make harmless.
func (p *Pipeline) settler() {
	defer close(p.sdone)
	var ids []int64
	flush := func() {
		if len(ids) == 0 || p.catchup == nil {
			ids = ids[:0]
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PrimaryTimeout)
		if err := p.catchup.Settle(ctx, ids); err != nil {
			p.log.Warn("outbox settle failed; the entries will be recovered and replayed", "entries", len(ids), "err", err)
		}
		cancel()
		ids = ids[:0]
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case id, ok := <-p.settle:
			if !ok {
				flush()
				return
			}
			if ids = append(ids, id); len(ids) >= 1000 {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}
