package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
)

// Sweeps implements sweep.Store (tables sweeps, sweep_ranges,
// sweep_suspects, sweep_findings; migrations 00005 and 00006).
type Sweeps struct{ pool *pgxpool.Pool }

// NewSweeps returns the sweep store on pool.
func NewSweeps(pool *pgxpool.Pool) *Sweeps { return &Sweeps{pool: pool} }

var _ sweep.Store = (*Sweeps)(nil)

const sweepCols = `id, entity, mode, state, repair, dry_run, segment_size, rate, dataset_version, trigger, actor, schedule, supersedes,
	created_at, updated_at, finished_at, ranges, ranges_done, segments, dirty, records, suspects, in_flight, findings, repaired, repair_run,
	stuck, coalesce(error, ''), content_true, checkpoint, present, coalesce(orphan_scan, '')`

func scanSweep(row pgx.Row) (sweep.Record, error) {
	var r sweep.Record
	var schedule *string
	err := row.Scan(&r.ID, &r.Entity, &r.Mode, &r.State, &r.Repair, &r.DryRun, &r.SegmentSize, &r.Rate, &r.DatasetVersion, &r.Trigger, &r.Actor,
		&schedule, &r.Supersedes, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt, &r.Ranges, &r.RangesDone, &r.Segments, &r.Dirty, &r.Records,
		&r.Suspects, &r.InFlight, &r.Findings, &r.Repaired, &r.RepairRun, &r.Stuck, &r.Error, &r.ContentTrue, &r.Checkpoint, &r.Present, &r.OrphanScan)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, sweep.ErrNoSweep
	}
	if schedule != nil {
		r.Schedule = *schedule
	}
	return r, err
}

func collectSweeps(rows pgx.Rows) ([]sweep.Record, error) {
	defer rows.Close()
	var out []sweep.Record
	for rows.Next() {
		r, err := scanSweep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CreateSweep implements sweep.Store (state running).
func (s *Sweeps) CreateSweep(ctx context.Context, r *sweep.Record) error {
	rec, err := scanSweep(s.pool.QueryRow(ctx, `INSERT INTO sweeps (entity, mode, state, repair, dry_run, segment_size, rate, dataset_version, trigger, actor, schedule, supersedes, content_true)
		VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), $11, $12) RETURNING `+sweepCols,
		r.Entity, r.Mode, r.Repair, r.DryRun, r.SegmentSize, r.Rate, r.DatasetVersion, r.Trigger, r.Actor, r.Schedule, r.Supersedes, sweep.ContentTrue(r.Mode)))
	if err == nil {
		*r = rec
	}
	return err
}

// GetSweep implements sweep.Store.
func (s *Sweeps) GetSweep(ctx context.Context, id int64) (sweep.Record, error) {
	return scanSweep(s.pool.QueryRow(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE id = $1`, id))
}

// ListSweeps implements sweep.Store: newest first.
func (s *Sweeps) ListSweeps(ctx context.Context, limit int) ([]sweep.Record, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sweepCols+` FROM sweeps ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return collectSweeps(rows)
}

// Plan implements sweep.Store: the sweep row is locked, so of two
// replicas planning at once the second finds the ranges saved.
func (s *Sweeps) Plan(ctx context.Context, id int64, sc *sweep.CheckpointReport, cut func() ([]int64, error)) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var planned bool
		if err := tx.QueryRow(ctx, `SELECT planned FROM sweeps WHERE id = $1 FOR UPDATE`, id).Scan(&planned); err != nil {
			return err
		}
		if planned {
			return nil
		}
		his, err := cut()
		if err != nil {
			return err
		}
		los := make([]int64, len(his))
		for i := range his {
			if i > 0 {
				los[i] = his[i-1]
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sweep_ranges (sweep_id, lo, hi, cursor) SELECT $1, lo, hi, lo FROM unnest($2::bigint[], $3::bigint[]) AS t(lo, hi)`,
			id, los, his); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sweeps SET planned = true, ranges = $2, checkpoint = $3, updated_at = now() WHERE id = $1`, id, len(his), sc)
		return err
	})
}

const rangeCols = `sweep_id, lo, hi, state, coalesce(owner, ''), attempts, cursor, coalesce(mode, ''), segments, dirty, records, updated_at, finished_at,
	failures, coalesce(last_error, ''), retry_at`

func collectRanges(rows pgx.Rows, err error) ([]sweep.Range, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (sweep.Range, error) {
		var r sweep.Range
		err := row.Scan(&r.SweepID, &r.Lo, &r.Hi, &r.State, &r.Owner, &r.Attempts, &r.Cursor, &r.Mode, &r.Segments, &r.Dirty, &r.Records, &r.UpdatedAt, &r.FinishedAt,
			&r.Failures, &r.LastError, &r.RetryAt)
		return r, err
	})
}

// Ranges implements sweep.Store, in key order.
func (s *Sweeps) Ranges(ctx context.Context, id int64) ([]sweep.Range, error) {
	return collectRanges(s.pool.Query(ctx, `SELECT `+rangeCols+` FROM sweep_ranges WHERE sweep_id = $1 ORDER BY lo`, id))
}

// Work implements sweep.Store: the oldest running sweeps first;
// within a sweep, pending ranges before running ones (whose owner is
// probably alive), then in key order.
func (s *Sweeps) Work(ctx context.Context) (unplanned []sweep.Record, ranges []sweep.Range, finishable []sweep.Record, err error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE state IN ('running', 'paused') AND NOT planned ORDER BY id LIMIT 10`)
	if unplanned, err = collectSweeps2(rows, err); err != nil {
		return nil, nil, nil, err
	}
	if ranges, err = collectRanges(s.pool.Query(ctx, `SELECT `+rangeCols+` FROM sweep_ranges r
		WHERE state <> 'done' AND (retry_at IS NULL OR retry_at <= now()) AND sweep_id IN (SELECT id FROM sweeps WHERE state = 'running')
		ORDER BY sweep_id, state = 'running', lo LIMIT 64`)); err != nil {
		return nil, nil, nil, err
	}
	rows, err = s.pool.Query(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE state = 'running' AND planned AND ranges_done = ranges ORDER BY id LIMIT 10`)
	if finishable, err = collectSweeps2(rows, err); err != nil {
		return nil, nil, nil, err
	}
	return unplanned, ranges, finishable, nil
}

func collectSweeps2(rows pgx.Rows, err error) ([]sweep.Record, error) {
	if err != nil {
		return nil, err
	}
	return collectSweeps(rows)
}

// FailRange implements sweep.Store: the range goes back to
// pending, not to be claimed again before retryAt (nor are the sweep's
// other pending ranges), with its error; the
// sweep shows the error too (and its progress time moves, so a range
// failing for a store reason is reported as failing, not as stuck).
func (s *Sweeps) FailRange(ctx context.Context, id, lo int64, cause string, retryAt time.Time) (int, error) {
	var failures int
	err := s.pool.QueryRow(ctx, `UPDATE sweep_ranges SET state = 'pending', owner = NULL, failures = failures + 1, last_error = $3, retry_at = $4, updated_at = now()
		WHERE sweep_id = $1 AND lo = $2 AND state <> 'done' RETURNING failures`, id, lo, cause, retryAt).Scan(&failures)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// The sweep backs off, not only the range: its other ranges read the
	// same stores, and trying each in turn would keep a worker on a sweep
	// whose store hangs while other sweeps wait.
	if _, err = s.pool.Exec(ctx, `UPDATE sweep_ranges SET retry_at = greatest(coalesce(retry_at, $2), $2)
		WHERE sweep_id = $1 AND state = 'pending'`, id, retryAt); err != nil {
		return failures, err
	}
	_, err = s.pool.Exec(ctx, `UPDATE sweeps SET error = $2, updated_at = now() WHERE id = $1 AND state IN ('running', 'paused')`,
		id, fmt.Sprintf("range %d: %s (failure %d; retrying at %s)", lo, cause, failures, retryAt.UTC().Format(time.RFC3339)))
	return failures, err
}

// NoteError implements sweep.Store.
func (s *Sweeps) NoteError(ctx context.Context, id int64, note string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sweeps SET error = $2, updated_at = now() WHERE id = $1 AND state IN ('running', 'paused')`, id, note)
	return err
}

// StartRange implements sweep.Store.
func (s *Sweeps) StartRange(ctx context.Context, id, lo int64, owner string) (sweep.Range, error) {
	rs, err := collectRanges(s.pool.Query(ctx, `UPDATE sweep_ranges SET
		state = CASE WHEN state = 'done' THEN state ELSE 'running' END,
		attempts = attempts + CASE WHEN state = 'done' THEN 0 ELSE 1 END,
		owner = CASE WHEN state = 'done' THEN owner ELSE $3 END, updated_at = now()
		WHERE sweep_id = $1 AND lo = $2 RETURNING `+rangeCols, id, lo, owner))
	if err != nil {
		return sweep.Range{}, err
	}
	if len(rs) == 0 {
		return sweep.Range{}, fmt.Errorf("sweep %d has no range at %d", id, lo)
	}
	return rs[0], nil
}

// SaveProgress implements sweep.Store in one transaction: the
// suspects, the range's cursor and counts, the sweep's totals; the sweep's
// error (a range backing off) is cleared, since a range moves again.
func (s *Sweeps) SaveProgress(ctx context.Context, p sweep.Progress) (string, error) {
	var state string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(p.Suspects) > 0 {
			keys := make([]int64, 0, len(p.Suspects))
			present, deleted := make([]bool, 0, len(p.Suspects)), make([]bool, 0, len(p.Suspects))
			versions := make([]int64, 0, len(p.Suspects))
			for k, h := range p.Suspects {
				keys, present, deleted, versions = append(keys, k), append(present, h.Present), append(deleted, h.Deleted), append(versions, h.Version)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sweep_suspects (sweep_id, key, primary_present, primary_deleted, primary_version)
				SELECT $1, * FROM unnest($2::bigint[], $3::boolean[], $4::boolean[], $5::bigint[])
				ON CONFLICT (sweep_id, key) DO NOTHING`, p.SweepID, keys, present, deleted, versions); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `UPDATE sweep_ranges SET cursor = $3, segments = segments + $4, dirty = dirty + $5, records = records + $6,
			mode = $7, state = CASE WHEN $8 THEN 'done' ELSE state END, finished_at = CASE WHEN $8 THEN now() END, updated_at = now()
			WHERE sweep_id = $1 AND lo = $2 AND state = 'running' AND owner = $9`,
			p.SweepID, p.RangeLo, p.Cursor, p.Segments, p.Dirty, p.Records, p.Mode, p.Done, p.Owner)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("sweep %d range %d: no longer run by %s", p.SweepID, p.RangeLo, p.Owner)
		}
		done := 0
		if p.Done {
			done = 1
		}
		present := p.Present
		if present == nil {
			present = []int64{}
		}
		return tx.QueryRow(ctx, `UPDATE sweeps SET segments = segments + $2, dirty = dirty + $3, records = records + $4, ranges_done = ranges_done + $5,
			suspects = (SELECT count(*) FROM sweep_suspects WHERE sweep_id = $1), stuck = false, error = NULL, updated_at = now(),
			present = coalesce((SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY n) FROM unnest(present, $6::bigint[]) WITH ORDINALITY AS t(a, b, n)), '{}')
			WHERE id = $1 RETURNING state`, p.SweepID, p.Segments, p.Dirty, p.Records, done, present).Scan(&state)
	})
	return state, err
}

// Supersede implements sweep.Store.
func (s *Sweeps) Supersede(ctx context.Context, id int64, reason string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sweeps SET state = 'superseded', error = $2, finished_at = now(), updated_at = now()
		WHERE id = $1 AND state IN ('running', 'paused')`, id, reason)
	return tag.RowsAffected() == 1, err
}

// MarkStuck implements sweep.Store.
func (s *Sweeps) MarkStuck(ctx context.Context, stuckAfter time.Duration) ([]sweep.Record, error) {
	if _, err := s.pool.Exec(ctx, `UPDATE sweeps SET stuck = (updated_at < now() - make_interval(secs => $1))
		WHERE state = 'running' AND stuck <> (updated_at < now() - make_interval(secs => $1))`, stuckAfter.Seconds()); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE state = 'running' AND stuck ORDER BY id`)
	return collectSweeps2(rows, err)
}

// SetState implements sweep.Store: pause (running → paused), resume
// (paused → running), cancel (running or paused → cancelled).
func (s *Sweeps) SetState(ctx context.Context, id int64, to string) (sweep.Record, error) {
	var from []string
	switch to {
	case sweep.Paused:
		from = []string{sweep.Running}
	case sweep.Running:
		from = []string{sweep.Paused}
	case sweep.Cancelled:
		from = []string{sweep.Running, sweep.Paused}
	default:
		return sweep.Record{}, fmt.Errorf("%w: unknown target state %q", sweep.ErrState, to)
	}
	rec, err := scanSweep(s.pool.QueryRow(ctx, `UPDATE sweeps SET state = $2, updated_at = now(), finished_at = CASE WHEN $2 = 'cancelled' THEN now() END WHERE id = $1 AND state = ANY($3) RETURNING `+sweepCols, id, to, from))
	if errors.Is(err, sweep.ErrNoSweep) {
		cur, gerr := s.GetSweep(ctx, id)
		if gerr != nil {
			return cur, gerr
		}
		return cur, fmt.Errorf("%w: sweep %d is %s; it cannot become %s", sweep.ErrState, id, cur.State, to)
	}
	return rec, err
}

// Suspects implements sweep.Store.
func (s *Sweeps) Suspects(ctx context.Context, id int64) (map[int64]repair.Head, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, primary_present, primary_deleted, primary_version FROM sweep_suspects WHERE sweep_id = $1`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]repair.Head{}
	for rows.Next() {
		var k int64
		var h repair.Head
		if err := rows.Scan(&k, &h.Present, &h.Deleted, &h.Version); err != nil {
			return nil, err
		}
		out[k] = h
	}
	return out, rows.Err()
}

// Finish implements sweep.Store.
func (s *Sweeps) Finish(ctx context.Context, r *sweep.Record, findings []sweep.Finding) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, f := range findings {
			if _, err := tx.Exec(ctx, `INSERT INTO sweep_findings (sweep_id, key, store, class) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				r.ID, f.Key, f.Store, string(f.Class)); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		r.FinishedAt = &now
		// A sweep cancelled or superseded meanwhile stays so.
		_, err := tx.Exec(ctx, `UPDATE sweeps SET state = CASE WHEN state IN ('cancelled', 'superseded') THEN state ELSE $2 END, finished_at = $3, updated_at = $3,
			suspects = $4, in_flight = $5, findings = $6, repaired = $7, repair_run = $8, error = nullif($9, ''), checkpoint = $10, orphan_scan = nullif($11, '') WHERE id = $1`,
			r.ID, r.State, now, r.Suspects, r.InFlight, r.Findings, r.Repaired, r.RepairRun, r.Error, r.Checkpoint, r.OrphanScan)
		return err
	})
}

// Findings implements sweep.Store.
func (s *Sweeps) Findings(ctx context.Context, id int64, limit int) ([]sweep.Finding, error) {
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT key, store, class FROM sweep_findings WHERE sweep_id = $1 ORDER BY key, store LIMIT $2`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sweep.Finding
	for rows.Next() {
		var f sweep.Finding
		var class string
		if err := rows.Scan(&f.Key, &f.Store, &class); err != nil {
			return nil, err
		}
		f.Class = repair.Class(class)
		out = append(out, f)
	}
	return out, rows.Err()
}

var _ sweep.ScheduleStore = (*Sweeps)(nil)

// LastStart implements sweep.ScheduleStore.
func (s *Sweeps) LastStart(ctx context.Context, name string) (time.Time, error) {
	var t time.Time
	err := s.pool.QueryRow(ctx, `SELECT last_start FROM sweep_schedules WHERE name = $1`, name).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	return t, err
}

// Started implements sweep.ScheduleStore (sweep 0: skipped).
func (s *Sweeps) Started(ctx context.Context, name string, at time.Time, sweep int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sweep_schedules (name, last_start, last_sweep) VALUES ($1, $2, nullif($3, 0))
		ON CONFLICT (name) DO UPDATE SET last_start = excluded.last_start, last_sweep = coalesce(excluded.last_sweep, sweep_schedules.last_sweep)`, name, at, sweep)
	return err
}

// Active implements sweep.ScheduleStore.
func (s *Sweeps) Active(ctx context.Context, entity string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sweeps WHERE entity = $1 AND state IN ('running', 'paused'))`, entity).Scan(&ok)
	return ok, err
}

var _ sweep.Checkpoints = (*Sweeps)(nil)

// LoadCheckpoint implements sweep.Checkpoints (table sweep_checkpoints,
// migration 00013).
func (s *Sweeps) LoadCheckpoint(ctx context.Context, entity, store string) (repair.Checkpoint, bool, error) {
	var cp repair.Checkpoint
	err := s.pool.QueryRow(ctx, `SELECT index_name, index_uuid, seq_no FROM sweep_checkpoints WHERE entity = $1 AND store = $2`, entity, store).
		Scan(&cp.Index, &cp.UUID, &cp.SeqNo)
	if errors.Is(err, pgx.ErrNoRows) {
		return cp, false, nil
	}
	return cp, err == nil, err
}

// SaveCheckpoint implements sweep.Checkpoints. A checkpoint never moves
// back on the same index: of two sweeps finishing out of order, the later
// point stays.
func (s *Sweeps) SaveCheckpoint(ctx context.Context, entity, store string, cp repair.Checkpoint, sweep int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sweep_checkpoints (entity, store, index_name, index_uuid, seq_no, sweep_id) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (entity, store) DO UPDATE SET index_name = excluded.index_name, index_uuid = excluded.index_uuid, seq_no = excluded.seq_no,
			sweep_id = excluded.sweep_id, verified_at = now()
		WHERE sweep_checkpoints.index_uuid <> excluded.index_uuid OR sweep_checkpoints.seq_no < excluded.seq_no`,
		entity, store, cp.Index, cp.UUID, cp.SeqNo, sweep)
	return err
}
