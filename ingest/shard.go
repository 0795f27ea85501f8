package ingest

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
)

// shard is one writer: it batches its queue and applies batches to Postgres.
type shard struct {
	p       *Pipeline
	id      int
	label   string
	in      chan item
	batch   []item
	seen    map[int64]int
	uniq    []*Profile
	held    []bool
	changes []Change
	outbox  int64 // the outbox entry of the last apply, 0 for none
}

func (s *shard) run() {
	defer s.p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case it, ok := <-s.in:
			if !ok {
				s.flush()
				return
			}
			s.batch = append(s.batch, it)
			if len(s.batch) == 1 {
				timer.Reset(s.p.cfg.BatchDelay)
			}
			if len(s.batch) >= s.p.cfg.BatchSize {
				timer.Stop()
				s.flush()
			}
		case <-timer.C:
			s.flush()
		}
	}
}

// flush applies the batch: the newest version per user goes to Postgres
// (ON CONFLICT cannot touch a row twice in one statement); the others are
// superseded by it.
func (s *shard) flush() {
	if len(s.batch) == 0 {
		return
	}
	p := s.p
	clear(s.seen)
	s.uniq = s.uniq[:0]
	for _, it := range s.batch {
		if k, ok := s.seen[it.p.UserID]; ok {
			if it.p.Version >= s.uniq[k].Version {
				s.uniq[k] = it.p
			}
			continue
		}
		s.seen[it.p.UserID] = len(s.uniq)
		s.uniq = append(s.uniq, it.p)
	}
	s.held = append(s.held[:0], make([]bool, len(s.uniq))...)

	// The batch's span context goes with its Postgres write: each row
	// keeps the trace that wrote it.
	sctx, span := tracer.Start(context.Background(), "ingest.batch", oteltrace.WithAttributes(
		attribute.Int("triad.shard", s.id), attribute.Int("triad.profiles", len(s.batch)), attribute.Int("triad.users", len(s.uniq))))
	err := p.Err()
	if err == nil {
		err = s.apply(sctx)
	}
	defer func() { endSpan(span, err) }()
	var forward []*Profile
	if err == nil {
		for i, pr := range s.uniq {
			if s.held[i] {
				forward = append(forward, pr)
			}
		}
		s.announce(forward)
	}
	for _, it := range s.batch {
		var o Outcome
		k := s.seen[it.p.UserID]
		switch {
		case err != nil:
			o = Failed
		case s.uniq[k] == it.p && s.held[k]:
			o = Applied
		default:
			o = Superseded
		}
		p.m.rows.WithLabelValues(o.String()).Inc()
		if it.ack != nil {
			it.ack(o, err)
		}
	}
	p.m.shardRows.WithLabelValues(s.label).Add(float64(len(forward)))
	s.batch = s.batch[:0]
	if len(forward) == 0 {
		return
	}
	var ob *owed
	if s.outbox != 0 {
		ob = &owed{id: s.outbox}
		ob.left.Store(int64(len(forward) * len(p.derived)))
	}
	committed := time.Now()
	for _, ds := range p.derived {
		for _, pr := range forward {
			ds.workers[ShardOf(pr.UserID, len(ds.workers))].in <- derivedItem{pr, committed, ob}
		}
	}
}

// announce tells the announcer about the profiles Postgres holds, before
// their writers hear back, so that a write acknowledged to a caller is
// already known to every replica's read path. A failure is logged and
// counted; replicas notice a gap in the feed by themselves and stop
// trusting their filters and caches until they resynchronise.
func (s *shard) announce(held []*Profile) {
	p := s.p
	if p.announcer == nil || len(held) == 0 {
		return
	}
	s.changes = s.changes[:0]
	for _, pr := range held {
		s.changes = append(s.changes, Change{UserID: pr.UserID, Version: pr.Version, Deleted: pr.Deleted})
	}
	for attempt := 0; attempt < 3; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := p.announcer.Announce(ctx, s.changes)
		cancel()
		if err == nil {
			return
		}
		if attempt == 2 {
			p.m.announceErrors.Inc()
			p.log.Warn("change announcement failed", "err", err, "shard", s.id, "profiles", len(held))
			return
		}
		backoff(context.Background(), 20*time.Millisecond, attempt)
	}
}

// apply writes s.uniq to Postgres (and the outbox entry of what it owes
// to s.outbox), each attempt under PrimaryTimeout, retrying for
// PrimaryRetryFor; when that runs out the pipeline stops with the error.
func (s *shard) apply(sctx context.Context) error {
	p := s.p
	s.outbox = 0
	deadline := time.Now().Add(p.cfg.PrimaryRetryFor)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		ctx, cancel := context.WithTimeout(sctx, p.cfg.PrimaryTimeout)
		id, err := p.primary.Apply(ctx, s.uniq, s.held, p.owed)
		cancel()
		p.m.pgBatch.Observe(time.Since(start).Seconds())
		if err == nil {
			s.outbox = id
		}
		if err == nil {
			return nil
		}
		p.m.shardErrors.WithLabelValues(s.label).Inc()
		p.log.Warn("postgres batch failed; retrying", "err", err, "shard", s.id, "profiles", len(s.uniq), "attempt", attempt+1)
		if time.Now().After(deadline) {
			err = fmt.Errorf("postgres: %d profiles not written after retrying for %s: %w", len(s.uniq), p.cfg.PrimaryRetryFor, err)
			p.fatal.CompareAndSwap(nil, &err)
			return err
		}
		backoff(context.Background(), p.cfg.RetryBackoff, attempt)
	}
}
