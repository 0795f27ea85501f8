package ingest

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	oteltrace "go.opentelemetry.io/otel/trace"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Primary is the source of truth (Postgres). Implementations are safe for
// concurrent use.
type Primary interface {
	// Apply writes batch (distinct user IDs) in one transaction, each
	// profile only where the stored version is older, and sets held[i] when
	// the store holds exactly batch[i] afterwards (written now, or by an
	// earlier run of the same input). Only held profiles go on to the
	// derived stores; the others lost to a newer version.
	Apply(ctx context.Context, batch []*Profile, held []bool) error
	// Get reads the current rows for ids, tombstones included; an id with
	// no row is left out of the result.
	Get(ctx context.Context, ids []int64) ([]*Profile, error)
}

// WriteResult is one profile's outcome in Derived.Write.
type WriteResult struct {
	// Stale: the store already had this or a newer version; nothing written.
	Stale bool
	// Err: this item failed and may be retried.
	Err error
}

// Derived is a store fed from the primary (Redis, Elasticsearch). Writes are
// version-guarded by the store itself, so replays and races with other
// writers never replace a newer version. Implementations are safe for
// concurrent use.
type Derived interface {
	Name() string
	// Write writes every profile (a tombstone deletes) and fills out[i]. An
	// error means nothing is known about the batch (e.g. the store is
	// unreachable) and all of it may be retried.
	Write(ctx context.Context, batch []*Profile, out []WriteResult) error
}

// Pending is one recorded catch-up entry.
type Pending struct {
	UserID  int64
	Version int64
	// Since is when the write first failed (soon after its commit).
	Since time.Time
}

// CatchupLog durably records derived-store writes that failed (a Postgres
// table), so they survive restarts and are replayed when the store is back.
type CatchupLog interface {
	Record(ctx context.Context, store string, batch []*Profile, reason string) error
	// Pending returns up to limit entries with user IDs above after, in
	// user ID order.
	Pending(ctx context.Context, store string, after int64, limit int) ([]Pending, error)
	// Done removes entries whose recorded version is at most the written one.
	Done(ctx context.Context, store string, written []*Profile) error
	Count(ctx context.Context, store string) (int64, error)
}

// Archiver appends profiles Postgres accepted to the archive.
type Archiver interface {
	Append(batch []*Profile) error
}

// Outcome is what happened to one submitted profile in Postgres.
type Outcome int

// Outcomes.
const (
	Applied    Outcome = iota // Postgres holds this version (written now or before)
	Superseded                // Postgres holds a newer version, or this version with other content
	Failed                    // Postgres could not be written; the error says why
)

func (o Outcome) String() string { return [...]string{"applied", "superseded", "failed"}[o] }

// Ack is called once per submitted profile after its Postgres batch.
type Ack func(Outcome, error)

type item struct {
	p   *Profile
	ack Ack
}

// Pipeline routes profiles to shard writers, which write Postgres first,
// then the archive, then hand the profiles Postgres holds to the derived
// store writers. Failed derived writes are retried, then recorded for
// catch-up; ReplayCatchup and RunCatchup replay them.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	primary Primary
	derived []*derivedStore
	archive Archiver
	catchup CatchupLog
	shards  []*shard

	announcer Announcer

	mu     sync.RWMutex // guards closed against Submit
	closed bool
	wg     sync.WaitGroup
	dwg    sync.WaitGroup
	fatal  atomic.Pointer[error]
}

// Deps are the pipeline's stores; Archive may be nil.
type Deps struct {
	Primary Primary
	Derived []Derived
	Archive Archiver
	Catchup CatchupLog
	// Announcer, when set, learns of every write Postgres took before the
	// write is acknowledged (replicas' read paths follow it).
	Announcer  Announcer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// New builds a pipeline and starts its writers. Close stops them.
func New(cfg Config, d Deps) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{cfg: cfg, log: d.Logger.With("component", "ingest.pipeline"), m: newMetrics(d.Registerer),
		primary: d.Primary, archive: d.Archive, catchup: d.Catchup, announcer: d.Announcer}
	for _, st := range d.Derived {
		ds := &derivedStore{p: p, store: st, name: st.Name()}
		p.m.storeUp.WithLabelValues(ds.name).Set(1)
		for i := range cfg.DerivedWorkers {
			w := &derivedWorker{ds: ds, id: i, in: make(chan derivedItem, cfg.DerivedBatchSize)}
			ds.workers = append(ds.workers, w)
			p.dwg.Add(1)
			go w.run()
		}
		p.derived = append(p.derived, ds)
	}
	for i := range cfg.Shards {
		s := &shard{p: p, id: i, in: make(chan item, cfg.QueueSize), label: strconv.Itoa(i), seen: map[int64]int{}}
		p.shards = append(p.shards, s)
		p.wg.Add(1)
		go s.run()
	}
	registerQueueDepth(d.Registerer, p.shards)
	return p, nil
}

// ShardOf returns the shard of a user ID: a 64-bit mix of the ID (the
// SplitMix64 finaliser, so consecutive IDs spread evenly) modulo n.
func ShardOf(userID int64, n int) int {
	z := uint64(userID)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return int(z % uint64(n))
}

// ErrClosed is returned by Submit after Close.
var ErrClosed = errors.New("ingest pipeline closed")

// Submit queues a profile for its shard, blocking while the queue is full
// (back-pressure). ack, if not nil, is called after the Postgres batch.
func (p *Pipeline) Submit(ctx context.Context, pr *Profile, ack Ack) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	if err := p.Err(); err != nil {
		return err
	}
	s := p.shards[ShardOf(pr.UserID, len(p.shards))]
	select {
	case s.in <- item{pr, ack}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err returns the error that stopped the pipeline (Postgres failing for
// longer than PrimaryRetryFor), or nil.
func (p *Pipeline) Err() error {
	if e := p.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

// Close flushes every queued profile through Postgres and the derived
// stores, then stops the writers. Profiles submitted before Close are all
// acknowledged.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return p.Err()
	}
	p.closed = true
	// 1. No more submissions; shard writers flush what is queued.
	for _, s := range p.shards {
		close(s.in)
	}
	p.mu.Unlock()
	p.wg.Wait()
	// 2. Shard writers no longer hand anything on: derived writers flush.
	for _, ds := range p.derived {
		for _, w := range ds.workers {
			close(w.in)
		}
	}
	p.dwg.Wait()
	return p.Err()
}

// backoff sleeps before retry n (0-based): base·2ⁿ, at most 5 s, or returns
// false when ctx ends first.
func backoff(ctx context.Context, base time.Duration, n int) bool {
	d := base << min(n, 16)
	if d > 5*time.Second || d <= 0 {
		d = 5 * time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

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

	sctx, span := tracer.Start(context.Background(), "ingest.batch", oteltrace.WithAttributes(
		attribute.Int("triad.shard", s.id), attribute.Int("triad.profiles", len(s.batch)), attribute.Int("triad.users", len(s.uniq))))
	err := p.Err()
	if err == nil {
		err = s.apply()
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
	if p.archive != nil {
		if err := p.archive.Append(forward); err != nil {
			p.log.ErrorContext(sctx, "archive append", "err", err, "shard", s.id, "profiles", len(forward))
		}
	}
	committed := time.Now()
	for _, ds := range p.derived {
		for _, pr := range forward {
			ds.workers[ShardOf(pr.UserID, len(ds.workers))].in <- derivedItem{pr, committed}
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

// apply writes s.uniq to Postgres, retrying for PrimaryRetryFor; when that
// runs out the pipeline stops with the error.
func (s *shard) apply() error {
	p := s.p
	deadline := time.Now().Add(p.cfg.PrimaryRetryFor)
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := p.primary.Apply(context.Background(), s.uniq, s.held)
		p.m.pgBatch.Observe(time.Since(start).Seconds())
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

// derivedStore is one derived store and its writers.
type derivedStore struct {
	p       *Pipeline
	store   Derived
	name    string
	workers []*derivedWorker
	// down is set when a batch still failed after every attempt: later
	// batches go straight to the catch-up log (ingest keeps Postgres speed)
	// until a catch-up replay succeeds.
	down atomic.Bool
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

// derivedItem is a profile Postgres holds, on its way to a derived store,
// with when Postgres committed it.
type derivedItem struct {
	p         *Profile
	committed time.Time
}

type derivedWorker struct {
	ds    *derivedStore
	id    int
	in    chan derivedItem
	batch []*Profile
	at    []time.Time // committed, parallel to batch
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

func (w *derivedWorker) flush() {
	if len(w.batch) == 0 {
		return
	}
	defer func() { w.batch, w.at = w.batch[:0], w.at[:0] }()
	ds, p := w.ds, w.ds.p
	if ds.down.Load() {
		ds.record(w.batch, "store marked down after failed retries")
		return
	}
	sctx, span := tracer.Start(context.Background(), "ingest.derived_write", oteltrace.WithAttributes(
		attribute.String("triad.store", ds.name), attribute.Int("triad.profiles", len(w.batch))))
	pending, at := w.batch, w.at
	var lastErr error
	defer func() {
		span.SetAttributes(attribute.Int("triad.recorded_for_catchup", len(pending)))
		if len(pending) == 0 {
			lastErr = nil
		}
		endSpan(span, lastErr)
	}()
	out := make([]WriteResult, len(pending))
	for attempt := 0; attempt < p.cfg.DerivedAttempts; attempt++ {
		if attempt > 0 {
			backoff(context.Background(), p.cfg.RetryBackoff, attempt-1)
		}
		out = out[:len(pending)]
		clear(out)
		err := ds.store.Write(context.Background(), pending, out)
		if err != nil {
			lastErr = err
			p.m.derived.WithLabelValues(ds.name, "failed").Add(float64(len(pending)))
			continue
		}
		var retry []*Profile
		var retryAt []time.Time
		lag := p.m.consistentAfter.WithLabelValues(ds.name)
		for i, r := range out {
			switch {
			case r.Err != nil:
				lastErr = r.Err
				retry, retryAt = append(retry, pending[i]), append(retryAt, at[i])
				continue
			case r.Stale:
				p.m.derived.WithLabelValues(ds.name, "stale").Inc()
			default:
				p.m.derived.WithLabelValues(ds.name, "written").Inc()
			}
			lag.Observe(time.Since(at[i]).Seconds())
		}
		if len(retry) > 0 {
			p.m.derived.WithLabelValues(ds.name, "failed").Add(float64(len(retry)))
		}
		pending, at = retry, retryAt
		if len(pending) == 0 {
			return
		}
	}
	p.log.WarnContext(sctx, "derived write failed after retries; recording for catch-up", "store", ds.name, "profiles", len(pending), "err", lastErr)
	if len(pending) == len(w.batch) {
		ds.setDown(true)
	}
	ds.record(pending, lastErr.Error())
}

// record writes failed profiles to the catch-up log. If even that fails
// (Postgres down too), the profiles are still in Postgres and a consistency
// sweep finds them; the error is logged and counted.
func (ds *derivedStore) record(batch []*Profile, reason string) {
	p := ds.p
	p.m.derived.WithLabelValues(ds.name, "catchup").Add(float64(len(batch)))
	if p.catchup == nil {
		p.m.catchup.WithLabelValues(ds.name, "record_error").Add(float64(len(batch)))
		p.log.Error("no catch-up log; derived writes lost until a sweep repairs them", "store", ds.name, "profiles", len(batch))
		return
	}
	for attempt := 0; ; attempt++ {
		err := p.catchup.Record(context.Background(), ds.name, batch, reason)
		if err == nil {
			p.m.catchup.WithLabelValues(ds.name, "recorded").Add(float64(len(batch)))
			return
		}
		if attempt == 3 {
			p.m.catchup.WithLabelValues(ds.name, "record_error").Add(float64(len(batch)))
			p.log.Error("catch-up record failed; a consistency sweep will find these profiles", "store", ds.name, "profiles", len(batch), "err", err)
			return
		}
		backoff(context.Background(), p.cfg.RetryBackoff, attempt)
	}
}

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
		rows, err := p.primary.Get(ctx, ids)
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
		if err := ds.store.Write(ctx, rows, out); err != nil {
			ds.setDown(true)
			return done, err
		}
		since := make(map[int64]time.Time, len(pend))
		for _, e := range pend {
			since[e.UserID] = e.Since
		}
		var ok []*Profile
		var itemErr error
		lag := p.m.consistentAfter.WithLabelValues(ds.name)
		for i, r := range out {
			if r.Err != nil {
				itemErr = r.Err
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
		done += len(ok)
		p.m.catchup.WithLabelValues(ds.name, "replayed").Add(float64(len(ok)))
		if itemErr != nil {
			return done, fmt.Errorf("%d of %d items failed: %w", len(rows)-len(ok), len(rows), itemErr)
		}
	}
}

// RunCatchup replays the catch-up log every CatchupInterval until ctx ends
// and exports its backlog.
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
		if n, err := p.ReplayCatchup(ctx); err != nil && ctx.Err() == nil {
			p.log.Debug("catch-up replay incomplete", "replayed", n, "err", err)
		} else if n > 0 {
			p.log.Info("catch-up replayed", "profiles", n)
		}
		for _, ds := range p.derived {
			if n, err := p.catchup.Count(ctx, ds.name); err == nil {
				p.m.backlog.WithLabelValues(ds.name).Set(float64(n))
			}
		}
	}
}
