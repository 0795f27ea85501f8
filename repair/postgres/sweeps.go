package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/repair"
)

// Sweeps implements repair.SweepStore (tables sweeps, sweep_suspects,
// sweep_findings; migration 00005).
type Sweeps struct{ pool *pgxpool.Pool }

// NewSweeps returns the sweep store on pool.
func NewSweeps(pool *pgxpool.Pool) *Sweeps { return &Sweeps{pool: pool} }

var _ repair.SweepStore = (*Sweeps)(nil)

// ErrNoSweep is an unknown sweep ID.
var ErrNoSweep = errors.New("no such sweep")

const sweepCols = `id, entity, mode, state, repair, dry_run, segment_size, trigger, actor, created_at, updated_at, finished_at,
	cursor, segments, records, suspects, in_flight, findings, repaired, repair_run, owner, heartbeat_at, coalesce(error, '')`

func scanSweep(row pgx.Row) (repair.SweepRecord, error) {
	var r repair.SweepRecord
	err := row.Scan(&r.ID, &r.Entity, &r.Mode, &r.State, &r.Repair, &r.DryRun, &r.SegmentSize, &r.Trigger, &r.Actor, &r.CreatedAt, &r.UpdatedAt, &r.FinishedAt,
		&r.Cursor, &r.Segments, &r.Records, &r.Suspects, &r.InFlight, &r.Findings, &r.Repaired, &r.RepairRun, &r.Owner, &r.HeartbeatAt, &r.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, ErrNoSweep
	}
	return r, err
}

func collectSweeps(rows pgx.Rows) ([]repair.SweepRecord, error) {
	defer rows.Close()
	var out []repair.SweepRecord
	for rows.Next() {
		r, err := scanSweep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CreateSweep implements repair.SweepStore (state running).
func (s *Sweeps) CreateSweep(ctx context.Context, r *repair.SweepRecord) error {
	rec, err := scanSweep(s.pool.QueryRow(ctx, `INSERT INTO sweeps (entity, state, repair, dry_run, segment_size, trigger, actor, owner)
		VALUES ($1, 'running', $2, $3, $4, $5, $6, $7) RETURNING `+sweepCols, r.Entity, r.Repair, r.DryRun, r.SegmentSize, r.Trigger, r.Actor, r.Owner))
	if err == nil {
		*r = rec
	}
	return err
}

// GetSweep implements repair.SweepStore.
func (s *Sweeps) GetSweep(ctx context.Context, id int64) (repair.SweepRecord, error) {
	return scanSweep(s.pool.QueryRow(ctx, `SELECT `+sweepCols+` FROM sweeps WHERE id = $1`, id))
}

// ListSweeps implements repair.SweepStore: newest first.
func (s *Sweeps) ListSweeps(ctx context.Context, limit int) ([]repair.SweepRecord, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+sweepCols+` FROM sweeps ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return collectSweeps(rows)
}

// SaveSegment implements repair.SweepStore in one transaction.
func (s *Sweeps) SaveSegment(ctx context.Context, id int64, owner string, cursor int64, records int, suspects map[int64]repair.Head) (string, error) {
	var state string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if len(suspects) > 0 {
			keys := make([]int64, 0, len(suspects))
			present, deleted := make([]bool, 0, len(suspects)), make([]bool, 0, len(suspects))
			versions := make([]int64, 0, len(suspects))
			for k, h := range suspects {
				keys, present, deleted, versions = append(keys, k), append(present, h.Present), append(deleted, h.Deleted), append(versions, h.Version)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sweep_suspects (sweep_id, key, primary_present, primary_deleted, primary_version)
				SELECT $1, * FROM unnest($2::bigint[], $3::boolean[], $4::boolean[], $5::bigint[])
				ON CONFLICT (sweep_id, key) DO NOTHING`, id, keys, present, deleted, versions); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `UPDATE sweeps SET cursor = $3, segments = segments + 1, records = records + $4,
			suspects = (SELECT count(*) FROM sweep_suspects WHERE sweep_id = $1), owner = $2, heartbeat_at = now(), updated_at = now()
			WHERE id = $1 RETURNING state`, id, owner, cursor, records).Scan(&state)
	})
	return state, err
}

// Heartbeat implements repair.SweepStore.
func (s *Sweeps) Heartbeat(ctx context.Context, id int64, owner string) (string, error) {
	var state string
	err := s.pool.QueryRow(ctx, `UPDATE sweeps SET heartbeat_at = now(), owner = $2 WHERE id = $1 RETURNING state`, id, owner).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNoSweep
	}
	return state, err
}

// SetState implements repair.SweepStore: pause (running → paused), resume
// (paused → running), cancel (running or paused → cancelled).
func (s *Sweeps) SetState(ctx context.Context, id int64, to string) (repair.SweepRecord, error) {
	var from []string
	switch to {
	case repair.SweepPaused:
		from = []string{repair.SweepRunning}
	case repair.SweepRunning:
		from = []string{repair.SweepPaused}
	case repair.SweepCancelled:
		from = []string{repair.SweepRunning, repair.SweepPaused}
	default:
		return repair.SweepRecord{}, fmt.Errorf("%w: unknown target state %q", repair.ErrSweepState, to)
	}
	rec, err := scanSweep(s.pool.QueryRow(ctx, `UPDATE sweeps SET state = $2, updated_at = now() WHERE id = $1 AND state = ANY($3) RETURNING `+sweepCols, id, to, from))
	if errors.Is(err, ErrNoSweep) {
		cur, gerr := s.GetSweep(ctx, id)
		if gerr != nil {
			return cur, gerr
		}
		return cur, fmt.Errorf("%w: sweep %d is %s; it cannot become %s", repair.ErrSweepState, id, cur.State, to)
	}
	return rec, err
}

// Suspects implements repair.SweepStore.
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

// Finish implements repair.SweepStore.
func (s *Sweeps) Finish(ctx context.Context, r *repair.SweepRecord, findings []repair.Finding) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, f := range findings {
			if _, err := tx.Exec(ctx, `INSERT INTO sweep_findings (sweep_id, key, store, class) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
				r.ID, f.Key, f.Store, string(f.Class)); err != nil {
				return err
			}
		}
		now := time.Now().UTC()
		r.FinishedAt = &now
		// A sweep cancelled meanwhile stays cancelled.
		_, err := tx.Exec(ctx, `UPDATE sweeps SET state = CASE WHEN state = 'cancelled' THEN state ELSE $2 END, finished_at = $3, updated_at = $3,
			suspects = $4, in_flight = $5, findings = $6, repaired = $7, repair_run = $8, error = nullif($9, '') WHERE id = $1`,
			r.ID, r.State, now, r.Suspects, r.InFlight, r.Findings, r.Repaired, r.RepairRun, r.Error)
		return err
	})
}

// Findings implements repair.SweepStore.
func (s *Sweeps) Findings(ctx context.Context, id int64, limit int) ([]repair.Finding, error) {
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT key, store, class FROM sweep_findings WHERE sweep_id = $1 ORDER BY key, store LIMIT $2`, id, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []repair.Finding
	for rows.Next() {
		var f repair.Finding
		var class string
		if err := rows.Scan(&f.Key, &f.Store, &class); err != nil {
			return nil, err
		}
		f.Class = repair.Class(class)
		out = append(out, f)
	}
	return out, rows.Err()
}

// TakeOver implements repair.SweepStore.
func (s *Sweeps) TakeOver(ctx context.Context, owner string, staleAfter time.Duration) ([]repair.SweepRecord, error) {
	rows, err := s.pool.Query(ctx, `UPDATE sweeps SET owner = $1, heartbeat_at = now(), updated_at = now()
		WHERE state IN ('running', 'paused') AND finished_at IS NULL AND heartbeat_at < now() - make_interval(secs => $2) AND owner <> $1
		RETURNING `+sweepCols, owner, staleAfter.Seconds())
	if err != nil {
		return nil, err
	}
	return collectSweeps(rows)
}
