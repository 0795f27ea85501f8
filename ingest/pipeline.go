package ingest

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TraceWrite is what one traced batch wrote to the primary: the users
// and versions of the rows its span (SpanID, hex) wrote.
type TraceWrite struct {
	SpanID    string    `json:"span_id"`
	WrittenAt time.Time `json:"written_at"`
	UserIDs   []int64   `json:"user_ids"`
	Versions  []int64   `json:"versions"`
}

// Primary is the source of truth (Postgres). Implementations are safe for
// concurrent use.
type Primary interface {
	// Apply writes batch (distinct user IDs) in one transaction, each
	// profile only where the stored version is older, and sets held[i] when
	// the store holds exactly batch[i] afterwards (written now, or by an
	// earlier run of the same input). Only held profiles go on to the
	// derived stores; the others lost to a newer version. In the same
	// transaction it records in the outbox that the profiles it wrote are
	// owed to the stores named in owed, and returns that entry's ID (0 when
	// it wrote nothing or owed is empty), so a crash after the commit
	// loses no derived write. When ctx carries a sampled span, the rows
	// written keep its trace (the write that produced them).
	Apply(ctx context.Context, batch []*Profile, held []bool, owed []string) (int64, error)
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
	// Rejected: the store refused this record for good (it breaks one of
	// the store's limits); retrying cannot help. The reason names the
	// limit and the field, never the value.
	Rejected string
}

// Rejection is a record a derived store refused for good.
type Rejection struct {
	UserID  int64
	Version int64
	Reason  string
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

// CatchupLog durably records derived-store writes that failed or were
// never finished (Postgres tables), so they survive restarts and crashes
// and are replayed when the store is back.
type CatchupLog interface {
	Record(ctx context.Context, store string, batch []*Profile, reason string) error
	// Pending returns up to limit entries with user IDs above after, in
	// user ID order.
	Pending(ctx context.Context, store string, after int64, limit int) ([]Pending, error)
	// Done removes entries whose recorded version is at most the written one.
	Done(ctx context.Context, store string, written []*Profile) error
	Count(ctx context.Context, store string) (int64, error)
	// Settle deletes outbox entries whose every write reached its store or
	// this log.
	Settle(ctx context.Context, outbox []int64) error
	// Recover moves up to limit outbox entries older than age (their
	// writer crashed or stalled) to this log, one entry per store they
	// owe, and returns how many profiles it moved.
	Recover(ctx context.Context, age time.Duration, limit int) (int64, error)
	// OweAll records every live profile as owed to store (a re-warm after
	// the store lost data) and returns how many.
	OweAll(ctx context.Context, store, reason string) (int64, error)
	// Reject records writes store refused for good (and drops them from
	// the catch-up log): they are not retried.
	Reject(ctx context.Context, store string, rejected []Rejection) error
}

// Archiver appends profiles Postgres accepted to the archive. Append
// returns once the batch is in the archive's file (how soon it is also on
// disk is the archive's fsync policy); an error means none of the batch
// may be counted as archived, and later appends may succeed.
type Archiver interface {
	Append(batch []*Profile) error
}

// ArchiveStore is the name under which archive appends are owed and
// recorded for catch-up, beside the derived stores'.
const ArchiveStore = "archive"

// archiveStore makes the archive one of the pipeline's derived stores, so
// its appends are owed in the outbox, retried, recorded per profile when
// they fail, and replayed from Postgres like any other derived write.
type archiveStore struct{ a Archiver }

func (archiveStore) Name() string { return ArchiveStore }

func (s archiveStore) Write(_ context.Context, batch []*Profile, _ []WriteResult) error {
	return s.a.Append(batch)
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

// Pipeline routes profiles to shard writers, which write Postgres (and,
// in the same transaction, the outbox of what that write owes), then hand
// the profiles Postgres holds to the derived store writers (Redis,
// Elasticsearch, the archive). Failed derived writes are retried, then
// recorded for catch-up; ReplayCatchup and RunCatchup replay them, and
// recover the outbox entries of writers that crashed.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	primary Primary
	derived []*derivedStore
	owed    []string // the derived stores' names, owed by every write
	catchup CatchupLog
	shards  []*shard
	settle  chan int64 // outbox entries whose writes all finished
	sdone   chan struct{}

	announcer Announcer

	mu     sync.RWMutex // guards closed against Submit
	closed bool
	wg     sync.WaitGroup
	dwg    sync.WaitGroup
	fatal  atomic.Pointer[error]
}

// Deps are the pipeline's stores; Archive and Catchup may be nil (without
// a catch-up log nothing is owed in an outbox either).
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
		primary: d.Primary, catchup: d.Catchup, announcer: d.Announcer,
		settle: make(chan int64, 4096), sdone: make(chan struct{})}
	derived := d.Derived
	if d.Archive != nil {
		derived = append(append([]Derived(nil), derived...), archiveStore{d.Archive})
	}
	for _, st := range derived {
		ds := &derivedStore{p: p, store: st, name: st.Name()}
		p.m.storeUp.WithLabelValues(ds.name).Set(1)
		for i := range cfg.DerivedWorkers {
			w := &derivedWorker{ds: ds, id: i, in: make(chan derivedItem, cfg.DerivedBatchSize)}
			ds.workers = append(ds.workers, w)
			p.dwg.Add(1)
			go w.run()
		}
		p.derived = append(p.derived, ds)
		if p.catchup != nil {
			p.owed = append(p.owed, ds.name)
		}
	}
	go p.settler()
	for i := range cfg.Shards {
		s := &shard{p: p, id: i, in: make(chan item, cfg.QueueSize), label: strconv.Itoa(i), seen: map[int64]int{}}
		p.shards = append(p.shards, s)
		p.wg.Add(1)
		go s.run()
	}
	registerQueueDepth(d.Registerer, p.shards)
	return p, nil
}

// Stores names the pipeline's derived stores (the archive included when
// it has one), in the order writes go to them.
func (p *Pipeline) Stores() []string {
	out := make([]string, len(p.derived))
	for i, ds := range p.derived {
		out[i] = ds.name
	}
	return out
}

// Recorded is, per derived store, how many writes this pipeline could not
// make and recorded in the catch-up log (after retries, or at once while
// the store was down).
func (p *Pipeline) Recorded() map[string]int64 {
	out := make(map[string]int64, len(p.derived))
	for _, ds := range p.derived {
		out[ds.name] = ds.recorded.Load()
	}
	return out
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
	// 3. Every write has finished: settle the last outbox entries.
	close(p.settle)
	<-p.sdone
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
