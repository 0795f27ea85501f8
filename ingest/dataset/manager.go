package dataset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// Errors of dataset operations.
var (
	ErrBusy       = errors.New("dataset: another operation holds the lock")
	ErrState      = errors.New("dataset: not allowed in the current state")
	ErrLostLock   = errors.New("dataset: the lock was lost (lease expired) before the change was written")
	ErrIncomplete = errors.New("dataset: version is not complete")
)

// Manager runs the operator's dataset operations: build, switch,
// rollback, verify, gc. Each takes the etcd lock for its state changes.
type Manager struct {
	cfg   Config
	cli   *clientv3.Client
	k     keys
	pg    *pgstore.Store
	redis *redisstore.Store
	es    *esstore.Store
	log   *slog.Logger
	// Name identifies the operator or process in the state (By, builders).
	Name string
	// Pause, when set, is called at each named step of a switch
	// ("before-activate", "before-alias") — a failure-injection point for
	// tests that kill the process mid-switch.
	Pause func(step string)
	now   func() time.Time
}

// NewManager returns a manager.
func NewManager(cfg Config, cli *clientv3.Client, pg *pgstore.Store, redis *redisstore.Store, es *esstore.Store, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, cli: cli, k: newKeys(cfg.EtcdPrefix), pg: pg, redis: redis, es: es,
		log: log.With("component", "ingest.dataset"), Name: "triad", now: time.Now}
}

// State reads the current state.
func (m *Manager) State(ctx context.Context) (State, error) { return load(ctx, m.cli, m.k) }

// AliasVersion is the version the Elasticsearch alias points at.
func (m *Manager) AliasVersion(ctx context.Context) (int, error) { return m.es.AliasVersion(ctx) }

func (m *Manager) session(ctx context.Context) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(m.cli, concurrency.WithTTL(int(m.cfg.SessionTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	return s, nil
}

// locked runs fn holding the lock, in a session of its own.
func (m *Manager) locked(ctx context.Context, fn func(s *concurrency.Session, mu *concurrency.Mutex) error) error {
	s, err := m.session(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	mu := concurrency.NewMutex(s, m.k.lock())
	lctx, cancel := context.WithTimeout(ctx, m.cfg.LockTimeout)
	err = mu.Lock(lctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%w (waited %s)", ErrBusy, m.cfg.LockTimeout)
		}
		return fmt.Errorf("lock: %w", err)
	}
	defer func() { _ = mu.Unlock(context.WithoutCancel(ctx)) }()
	return fn(s, mu)
}

// put writes key=value only while mu is held (an etcd transaction on the
// lock's key), so a holder whose lease expired cannot write.
func (m *Manager) put(ctx context.Context, mu *concurrency.Mutex, ops ...clientv3.Op) error {
	res, err := m.cli.Txn(ctx).If(mu.IsOwner()).Then(ops...).Commit()
	if err != nil {
		return err
	}
	if !res.Succeeded {
		return ErrLostLock
	}
	return nil
}

// BuildProgress reports a build's copy progress.
type BuildProgress func(copied int64)

// Build builds the next version from Postgres:
//  1. under the lock, record versions/N as building and put builds/N under
//     this build's lease: every follower starts writing N as well;
//  2. create N's index; wait until every live member writes N, so no write
//     after the copy starts can miss N;
//  3. copy every live profile from Postgres into N (version-guarded, so a
//     newer concurrent write is never replaced);
//  4. verify N against Postgres; on success, mark it ready (written until a
//     switch or gc) while the build's lease still holds.
//
// A build whose process dies leaves versions/N building with no live
// build: followers stop writing it and gc removes it.
func (m *Manager) Build(ctx context.Context, shape esstore.Shape, progress BuildProgress) (Info, Verification, error) {
	s, err := m.session(ctx)
	if err != nil {
		return Info{}, Verification{}, err
	}
	defer s.Close()
	var info Info
	err = m.locked(ctx, func(_ *concurrency.Session, mu *concurrency.Mutex) error {
		st, err := m.State(ctx)
		if err != nil {
			return err
		}
		for n, by := range st.Builds {
			return fmt.Errorf("%w: version %d is being built by %s", ErrBusy, n, by)
		}
		info = Info{Version: st.NextVersion(), State: StateBuilding, CreatedAt: m.now().UTC(), Index: shape}
		return m.put(ctx, mu,
			clientv3.OpPut(m.k.version(info.Version), mustJSON(info)),
			clientv3.OpPut(m.k.build(info.Version), m.Name, clientv3.WithLease(s.Lease())))
	})
	if err != nil {
		return Info{}, Verification{}, err
	}
	n := info.Version
	fail := func(err error) (Info, Verification, error) {
		info.State, info.Note = StateFailed, err.Error()
		if _, perr := m.cli.Put(context.WithoutCancel(ctx), m.k.version(n), mustJSON(info)); perr != nil {
			m.log.Warn("record failed build", "version", n, "err", perr)
		}
		return info, Verification{}, fmt.Errorf("build version %d: %w", n, err)
	}
	m.log.Info("dataset build started", "version", n)
	if err := m.es.CreateIndex(ctx, n, shape); err != nil {
		return fail(err)
	}
	if lag, err := m.awaitMembers(ctx, func(mb Member) bool { return slices.Contains(mb.Writing, n) }); err != nil {
		return fail(err)
	} else if len(lag) > 0 {
		return fail(fmt.Errorf("members not writing version %d after %s: %v", n, m.cfg.ConfirmTimeout, lag))
	}
	// Pages are copied four at a time while the scan reads on.
	var copied atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	err = m.pg.Scan(gctx, 0, m.cfg.BuildBatch, func(page []*ingest.Profile) error {
		select {
		case <-s.Done():
			return errors.New("the build's etcd lease expired; followers may have stopped writing the new version")
		default:
		}
		live := make([]*ingest.Profile, 0, len(page))
		for _, p := range page {
			if !p.Deleted {
				live = append(live, p)
			}
		}
		g.Go(func() error {
			if err := m.copy(gctx, n, live); err != nil {
				return err
			}
			if c := copied.Add(int64(len(live))); progress != nil {
				progress(c)
			}
			return nil
		})
		return gctx.Err()
	})
	if werr := g.Wait(); err == nil || werr != nil {
		err = werr
	}
	if err != nil {
		return fail(err)
	}
	ver, err := m.Verify(ctx, n, VerifyOptions{})
	if err != nil {
		return fail(err)
	}
	if !ver.Complete {
		return fail(fmt.Errorf("%w: %s", ErrIncomplete, ver.Summary()))
	}
	now := m.now().UTC()
	info.State, info.BuiltAt, info.Rows = StateReady, &now, ver.Rows
	// Only while the build's lease holds: otherwise followers may have
	// stopped writing N during the gap.
	res, err := m.cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(m.k.build(n)), "=", s.Lease())).
		Then(clientv3.OpPut(m.k.version(n), mustJSON(info))).Commit()
	if err != nil {
		return fail(err)
	}
	if !res.Succeeded {
		return fail(errors.New("the build's etcd lease expired before it was marked ready"))
	}
	m.log.Info("dataset build ready", "version", n, "rows", ver.Rows)
	return info, ver, nil
}

// copy writes profiles into version n of both derived stores, retrying
// failed items.
func (m *Manager) copy(ctx context.Context, n int, batch []*ingest.Profile) error {
	for _, st := range []interface {
		WriteAt(context.Context, int, []*ingest.Profile, []ingest.WriteResult) error
	}{m.redis, m.es} {
		todo := batch
		for attempt := 0; len(todo) > 0; attempt++ {
			out := make([]ingest.WriteResult, len(todo))
			err := st.WriteAt(ctx, n, todo, out)
			var again []*ingest.Profile
			if err == nil {
				for i, r := range out {
					if r.Err != nil {
						again, err = append(again, todo[i]), r.Err
					}
				}
			} else {
				again = todo
			}
			if err == nil {
				break
			}
			if attempt == 4 {
				return fmt.Errorf("copy %d profiles: %w", len(again), err)
			}
			if !sleep(ctx, time.Duration(100<<attempt)*time.Millisecond) {
				return ctx.Err()
			}
			todo = again
		}
	}
	return nil
}

// awaitMembers waits until every live member satisfies ok, or
// ConfirmTimeout passes; it returns the members that did not.
func (m *Manager) awaitMembers(ctx context.Context, ok func(Member) bool) ([]string, error) {
	deadline := m.now().Add(m.cfg.ConfirmTimeout)
	for {
		st, err := m.State(ctx)
		if err != nil {
			return nil, err
		}
		var lag []string
		for _, mb := range sortedMembers(st.Members) {
			if !ok(mb) {
				lag = append(lag, mb.ID)
			}
		}
		if len(lag) == 0 || m.now().After(deadline) {
			return lag, nil
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// SwitchReport is the outcome of a switch.
type SwitchReport struct {
	From, To     int
	Verification Verification
	// Moved are the members that reported serving To within
	// ConfirmTimeout; Lagging the ones that did not.
	Moved, Lagging []string
	Took           time.Duration
}

// Switch makes version n active:
//  1. take the lock; n must be ready (or previous: a rollback);
//  2. verify n against Postgres (counts and digests);
//  3. in one etcd transaction, guarded by still holding the lock: active
//     = n, n active, the old version previous (retired after RetireAfter);
//  4. point the Elasticsearch alias at n;
//  5. wait for every live member to report serving n.
//
// If the process dies after 3, followers serve n (the active key decides)
// and the first follower that can take the lock points the alias at n; if
// it dies before 3, nothing changed. Either way every replica ends on the
// version the active key names.
func (m *Manager) Switch(ctx context.Context, n int, vo VerifyOptions) (SwitchReport, error) {
	start := m.now()
	var rep SwitchReport
	err := m.locked(ctx, func(_ *concurrency.Session, mu *concurrency.Mutex) error {
		st, err := m.State(ctx)
		if err != nil {
			return err
		}
		rep.From, rep.To = st.Serving(), n
		if n == st.Serving() {
			return fmt.Errorf("%w: version %d is already active", ErrState, n)
		}
		info, ok := st.Versions[n]
		if !ok && n != 1 {
			return fmt.Errorf("%w: there is no version %d", ErrState, n)
		}
		if ok && info.State != StateReady && info.State != StatePrevious {
			return fmt.Errorf("%w: version %d is %s; only a ready or previous version can be switched to", ErrState, n, info.State)
		}
		if !ok { // version 1 from before versions were recorded
			info = Info{Version: 1, CreatedAt: m.now().UTC()}
		}
		if rep.Verification, err = m.Verify(ctx, n, vo); err != nil {
			return err
		}
		if !rep.Verification.Complete {
			return fmt.Errorf("%w: %s", ErrIncomplete, rep.Verification.Summary())
		}
		m.pause("before-activate")
		now := m.now().UTC()
		retire := now.Add(m.cfg.RetireAfter)
		old, ok := st.Versions[rep.From]
		if !ok {
			old = Info{Version: rep.From, CreatedAt: now}
		}
		old.State, old.RetireAt = StatePrevious, &retire
		info.State, info.RetireAt = StateActive, nil
		ops := []clientv3.Op{
			clientv3.OpPut(m.k.active(), mustJSON(Active{Version: n, Previous: rep.From, SwitchedAt: now, By: m.Name})),
			clientv3.OpPut(m.k.version(n), mustJSON(info)),
			clientv3.OpPut(m.k.version(rep.From), mustJSON(old)),
		}
		// A version that was previous before is now only retired.
		for v, i := range st.Versions {
			if i.State == StatePrevious && v != n {
				i.State = StateRetired
				ops = append(ops, clientv3.OpPut(m.k.version(v), mustJSON(i)))
			}
		}
		if err := m.put(ctx, mu, ops...); err != nil {
			return err
		}
		m.log.Info("dataset switched", "from", rep.From, "to", n, "by", m.Name)
		m.pause("before-alias")
		if err := m.es.PointAlias(ctx, n); err != nil {
			return fmt.Errorf("switched to version %d, but the alias could not be moved (followers will retry): %w", n, err)
		}
		lag, err := m.awaitMembers(ctx, func(mb Member) bool { return mb.Serving == n })
		if err != nil {
			return err
		}
		st, err = m.State(ctx)
		if err != nil {
			return err
		}
		for _, mb := range sortedMembers(st.Members) {
			if !slices.Contains(lag, mb.ID) {
				rep.Moved = append(rep.Moved, mb.ID)
			}
		}
		rep.Lagging = lag
		return nil
	})
	rep.Took = m.now().Sub(start)
	return rep, err
}

// Rollback switches back to the previous version.
func (m *Manager) Rollback(ctx context.Context, vo VerifyOptions) (SwitchReport, error) {
	st, err := m.State(ctx)
	if err != nil {
		return SwitchReport{}, err
	}
	if st.Active.Previous == 0 {
		return SwitchReport{}, fmt.Errorf("%w: no previous version to roll back to", ErrState)
	}
	if info := st.Versions[st.Active.Previous]; info.State != StatePrevious {
		return SwitchReport{}, fmt.Errorf("%w: previous version %d is %s", ErrState, st.Active.Previous, info.State)
	}
	return m.Switch(ctx, st.Active.Previous, vo)
}

func (m *Manager) pause(step string) {
	if m.Pause != nil {
		m.Pause(step)
	}
}

// ReconcileAlias points the alias at the active version when it points
// elsewhere (a switch died between the active key and the alias). It
// does nothing when another process holds the lock.
func (m *Manager) ReconcileAlias(ctx context.Context) (bool, error) {
	st, err := m.State(ctx)
	if err != nil {
		return false, err
	}
	at, err := m.es.AliasVersion(ctx)
	if err != nil || at == st.Serving() {
		return false, err
	}
	s, err := m.session(ctx)
	if err != nil {
		return false, err
	}
	defer s.Close()
	mu := concurrency.NewMutex(s, m.k.lock())
	if err := mu.TryLock(ctx); err != nil {
		if errors.Is(err, concurrency.ErrLocked) {
			return false, nil
		}
		return false, err
	}
	defer func() { _ = mu.Unlock(context.WithoutCancel(ctx)) }()
	if st, err = m.State(ctx); err != nil {
		return false, err
	}
	if at, err = m.es.AliasVersion(ctx); err != nil || at == st.Serving() {
		return false, err
	}
	if err := m.es.PointAlias(ctx, st.Serving()); err != nil {
		return false, err
	}
	m.log.Warn("elasticsearch alias pointed at the active version (a switch had not finished)", "alias_was", at, "active", st.Serving())
	return true, nil
}

// Collect removes the data of versions that are no longer kept: previous
// versions past their retire time, retired ones, failed builds and builds
// whose builder died. It returns the versions removed.
func (m *Manager) Collect(ctx context.Context) ([]int, error) {
	var doomed []Info
	err := m.locked(ctx, func(_ *concurrency.Session, mu *concurrency.Mutex) error {
		st, err := m.State(ctx)
		if err != nil {
			return err
		}
		now := m.now()
		var ops []clientv3.Op
		for v, info := range st.Versions {
			_, live := st.Builds[v]
			switch {
			case v == st.Serving():
				continue
			case info.State == StatePrevious && info.RetireAt != nil && now.After(*info.RetireAt),
				info.State == StateRetired, info.State == StateFailed,
				info.State == StateBuilding && !live:
			default:
				continue
			}
			info.State = StateRetired
			doomed = append(doomed, info)
			ops = append(ops, clientv3.OpPut(m.k.version(v), mustJSON(info)))
		}
		if len(ops) == 0 {
			return nil
		}
		return m.put(ctx, mu, ops...)
	})
	if err != nil || len(doomed) == 0 {
		return nil, err
	}
	// Followers stop writing a retired version within a watch round trip;
	// wait for them before removing its data, so no late write recreates it.
	if _, err := m.awaitMembers(ctx, func(mb Member) bool {
		for _, d := range doomed {
			if slices.Contains(mb.Writing, d.Version) {
				return false
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	var removed []int
	for _, info := range doomed {
		keys, err := m.redis.DeleteVersion(ctx, info.Version)
		if err == nil {
			err = m.es.DeleteIndex(ctx, info.Version)
		}
		if err != nil {
			return removed, fmt.Errorf("remove version %d: %w", info.Version, err)
		}
		info.State, info.Note = StateRemoved, fmt.Sprintf("removed %d redis keys and index %s", keys, m.es.Index(info.Version))
		if _, err := m.cli.Put(ctx, m.k.version(info.Version), mustJSON(info)); err != nil {
			return removed, err
		}
		m.log.Info("dataset version removed", "version", info.Version, "redis_keys", keys)
		removed = append(removed, info.Version)
	}
	return removed, nil
}
