package ingest

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// derivedStore is one derived store and its writers.
type derivedStore struct {
	p       *Pipeline
	store   Derived
	name    string
	workers []*derivedWorker
	// down is set when a batch still failed after every attempt, or the
	// store did not answer within DerivedTimeout: later batches go
	// straight to the catch-up log (ingest keeps Postgres speed) until a
	// catch-up replay succeeds.
	down atomic.Bool
	// recorded counts the writes this pipeline recorded for catch-up.
	recorded atomic.Int64
}

func (ds *derivedStore) setDown(down bool) {
	if ds.down.Swap(down) != down {
		v := 1.0
		if down {
			v = 0
			ds.p.log.Warn("derived store unavailable; recording its writes for catch-up", "store", ds.name)
		} else {
			ds.p.log.Info("derived store back; catch-up replay succeeded", "store", ds.name)
		}
		ds.p.m.storeUp.WithLabelValues(ds.name).Set(v)
	}
}

// owed is one outbox entry in flight: how many (profile, store) writes of
// its batch have not yet reached their store or the catch-up log.
type owed struct {
	id   int64
	left atomic.Int64
}

// derivedItem is a profile Postgres holds, on its way to a derived store,
// with when Postgres committed it and the outbox entry that owes it.
type derivedItem struct {
	p         *Profile
	committed time.Time
	owed      *owed
}

type derivedWorker struct {
	ds    *derivedStore
	id    int
	in    chan derivedItem
	batch []*Profile
	at    []time.Time // committed, parallel to batch
	owed  []*owed     // parallel to batch
}

func (w *derivedWorker) run() {
	defer w.ds.p.dwg.Done()
	cfg := w.ds.p.cfg
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case it, ok := <-w.in:
			if !ok {
				w.flush()
				return
			}
			w.batch = append(w.batch, it.p)
			w.at = append(w.at, it.committed)
			w.owed = append(w.owed, it.owed)
			if len(w.batch) == 1 {
				timer.Reset(cfg.DerivedBatchDelay)
			}
			if len(w.batch) >= cfg.DerivedBatchSize {
				timer.Stop()
				w.flush()
			}
		case <-timer.C:
			w.flush()
		}
	}
}

// pendingWrites are the items of a worker's batch not yet written.
type pendingWrites struct {
	batch []*Profile
	at    []time.Time
	owed  []*owed
}

func (w *derivedWorker) flush() {
	if len(w.batch) == 0 {
		return
	}
	defer func() { w.batch, w.at, w.owed = w.batch[:0], w.at[:0], w.owed[:0] }()
	ds, p := w.ds, w.ds.p
	if ds.down.Load() {
		ds.record(pendingWrites{w.batch, w.at, w.owed}, "store marked down after failed retries")
		return
	}
	sctx, span := tracer.Start(context.Background(), "ingest.derived_write", oteltrace.WithAttributes(
		attribute.String("triad.store", ds.name), attribute.Int("triad.profiles", len(w.batch))))
	pending := pendingWrites{w.batch, w.at, w.owed}
	var lastErr error
	hung := false
	defer func() {
		span.SetAttributes(attribute.Int("triad.recorded_for_catchup", len(pending.batch)))
		if len(pending.batch) == 0 {
			lastErr = nil
		}
		endSpan(span, lastErr)
	}()
	out := make([]WriteResult, len(pending.batch))
	for attempt := 0; attempt < p.cfg.DerivedAttempts && !hung; attempt++ {
		if attempt > 0 {
			backoff(context.Background(), p.cfg.RetryBackoff, attempt-1)
		}
		out = out[:len(pending.batch)]
		clear(out)
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.DerivedTimeout)
		err := ds.store.Write(ctx, pending.batch, out)
		cancel()
		if err != nil {
			lastErr = err
			p.m.derived.WithLabelValues(ds.name, "failed").Add(float64(len(pending.batch)))
			// A store that did not answer in time is hung or overloaded:
			// more attempts would hold the shard writers behind it.
			hung = errors.Is(err, context.DeadlineExceeded)
			continue
		}
		var retry pendingWrites
		var rejected []Rejection
		var rejectedOwed []*owed
		lag := p.m.consistentAfter.WithLabelValues(ds.name)
		done := 0
		for i, r := range out {
			switch {
			case r.Rejected != "":
				rejected = append(rejected, Rejection{UserID: pending.batch[i].UserID, Version: pending.batch[i].Version, Reason: r.Rejected})
				rejectedOwed = append(rejectedOwed, pending.owed[i])
				continue
			case r.Err != nil:
				lastErr = r.Err
				retry.batch, retry.at, retry.owed = append(retry.batch, pending.batch[i]), append(retry.at, pending.at[i]), append(retry.owed, pending.owed[i])
				continue
			case r.Stale:
				p.m.derived.WithLabelValues(ds.name, "stale").Inc()
			default:
				p.m.derived.WithLabelValues(ds.name, "written").Inc()
			}
			done++
			p.settled(pending.owed[i])
			lag.Observe(time.Since(pending.at[i]).Seconds())
		}
		if len(retry.batch) > 0 {
			p.m.derived.WithLabelValues(ds.name, "failed").Add(float64(len(retry.batch)))
		}
		if len(rejected) > 0 {
			ds.reject(rejected, rejectedOwed)
		}
		pending = retry
		if len(pending.batch) == 0 {
			return
		}
	}
	p.log.WarnContext(sctx, "derived write failed after retries; recording for catch-up", "store", ds.name, "profiles", len(pending.batch), "err", lastErr, "hung", hung)
	// Only a store that failed the whole batch is down; one that took or
	// rejected part of it answers.
	if hung || len(pending.batch) == len(w.batch) {
		ds.setDown(true)
	}
	ds.record(pending, lastErr.Error())
}

// reject records profiles the store refused for good, settles their
// outbox share and logs them by user ID and reason only (a store's own
// message can quote the record's values).
func (ds *derivedStore) reject(rejected []Rejection, owed []*owed) {
	p := ds.p
	p.m.derived.WithLabelValues(ds.name, "rejected").Add(float64(len(rejected)))
	for _, r := range rejected[:min(len(rejected), 10)] {
		p.log.Warn("derived store rejected a profile; recorded, not retried", "store", ds.name, "user_id", r.UserID, "version", r.Version, "reason", r.Reason)
	}
	if p.catchup == nil {
		return
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PrimaryTimeout)
		err := p.catchup.Reject(ctx, ds.name, rejected)
		cancel()
		if err == nil {
			for _, o := range owed {
				p.settled(o)
			}
			return
		}
		if attempt == 3 {
			p.log.Error("rejections not recorded; the outbox keeps these profiles owed", "store", ds.name, "profiles", len(rejected), "err", err)
			return
		}
		backoff(context.Background(), p.cfg.RetryBackoff, attempt)
	}
}

// record writes failed profiles to the catch-up log, each attempt under
// PrimaryTimeout, and settles their outbox share. If even that fails
// (Postgres down too), their outbox entries stay, and the first triad to
// see them past OutboxGrace moves them to the catch-up log.
func (ds *derivedStore) record(w pendingWrites, reason string) {
	p := ds.p
	p.m.derived.WithLabelValues(ds.name, "catchup").Add(float64(len(w.batch)))
	if p.catchup == nil {
		p.m.catchup.WithLabelValues(ds.name, "record_error").Add(float64(len(w.batch)))
		p.log.Error("no catch-up log; derived writes lost until a sweep repairs them", "store", ds.name, "profiles", len(w.batch))
		return
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.PrimaryTimeout)
		err := p.catchup.Record(ctx, ds.name, w.batch, reason)
		cancel()
		if err == nil {
			ds.recorded.Add(int64(len(w.batch)))
			p.m.catchup.WithLabelValues(ds.name, "recorded").Add(float64(len(w.batch)))
			for _, o := range w.owed {
				p.settled(o)
			}
			return
		}
		if attempt == 3 {
			p.m.catchup.WithLabelValues(ds.name, "record_error").Add(float64(len(w.batch)))
			p.log.Error("catch-up record failed; the outbox keeps these profiles owed", "store", ds.name, "profiles", len(w.batch), "err", err)
			return
		}
		backoff(context.Background(), p.cfg.RetryBackoff, attempt)
	}
}
