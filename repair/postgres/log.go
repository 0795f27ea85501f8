// Package postgres is the consistency engine's state in Postgres: the repair
// log (repair_runs, repair_log), sweeps with their ranges, findings and
// index checkpoints, schedules' last starts, and the rows of configured
// entities' tables (TableRows).
package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/repair"
)

// Log implements repair.Log.
type Log struct{ pool *pgxpool.Pool }

// NewLog returns the repair log on pool.
func NewLog(pool *pgxpool.Pool) *Log { return &Log{pool: pool} }

var _ repair.Log = (*Log)(nil)

// StartRun implements repair.Log: it fills r.ID and r.StartedAt.
func (l *Log) StartRun(ctx context.Context, r *repair.Run) error {
	return l.pool.QueryRow(ctx, `INSERT INTO repair_runs (trigger, actor, entity, dry_run, budget) VALUES ($1, $2, $3, $4, $5) RETURNING id, started_at`,
		r.Trigger, r.Actor, r.Entity, r.DryRun, r.Budget).Scan(&r.ID, &r.StartedAt)
}

// FinishRun implements repair.Log: totals, error and finished_at.
func (l *Log) FinishRun(ctx context.Context, r *repair.Run) error {
	now := time.Now().UTC()
	r.FinishedAt = &now
	_, err := l.pool.Exec(ctx, `UPDATE repair_runs SET finished_at = $2, planned = $3, repaired = $4, noop = $5, conflicts = $6, failed = $7, skipped = $8, error = nullif($9, '') WHERE id = $1`,
		r.ID, now, r.Planned, r.Repaired, r.Noop, r.Conflicts, r.Failed, r.Skipped, r.Error)
	return err
}

// dedupeKey identifies a repair: the same drift repaired the same way.
func dedupeKey(e repair.Entry, dryRun bool) string {
	st := func(s *repair.State) string {
		if s == nil {
			return "-"
		}
		return strconv.FormatInt(s.Version, 10) + "/" + strconv.FormatInt(s.Digest, 10)
	}
	h := sha256.Sum256([]byte(strings.Join([]string{e.Entity, e.Key, e.Store, string(e.Class), e.Action, st(e.Before), st(e.After), strconv.FormatBool(dryRun)}, "\x00")))
	return hex.EncodeToString(h[:16])
}

// Record implements repair.Log in one batch.
func (l *Log) Record(ctx context.Context, entries []repair.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	dry := map[int64]bool{}
	rows, err := l.pool.Query(ctx, `SELECT id, dry_run FROM repair_runs WHERE id = ANY($1)`, runIDs(entries))
	if err != nil {
		return err
	}
	for rows.Next() {
		var id int64
		var d bool
		if err := rows.Scan(&id, &d); err != nil {
			rows.Close()
			return err
		}
		dry[id] = d
	}
	rows.Close()
	b := &pgx.Batch{}
	for _, e := range entries {
		var bv, bd, av, ad *int64
		if e.Before != nil {
			bv, bd = &e.Before.Version, &e.Before.Digest
		}
		if e.After != nil {
			av, ad = &e.After.Version, &e.After.Digest
		}
		// The entry keeps its first run in run_id; every run that touched
		// it is in repair_log_runs (filtering by run finds them all).
		b.Queue(`WITH e AS (
			INSERT INTO repair_log (run_id, entity, key, store, class, action, priority, before_version, before_digest, after_version, after_digest, outcome, error, dedupe_key, fields, observed, write_trace)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, nullif($13, ''), $14, $15, nullif($16, ''), decode(nullif($17, ''), 'hex'))
			ON CONFLICT (dedupe_key) DO UPDATE SET attempts = repair_log.attempts + 1, last_run_id = excluded.run_id,
				outcome = excluded.outcome, error = excluded.error, fields = excluded.fields, observed = excluded.observed,
				write_trace = coalesce(excluded.write_trace, repair_log.write_trace), last_at = now()
			RETURNING id)
			INSERT INTO repair_log_runs (entry_id, run_id) SELECT id, $1 FROM e ON CONFLICT DO NOTHING`,
			e.RunID, e.Entity, e.Key, e.Store, string(e.Class), e.Action, e.Priority, bv, bd, av, ad, e.Outcome, e.Error, dedupeKey(e, dry[e.RunID]), e.Fields, e.Observed, e.WriteTrace)
	}
	return l.pool.SendBatch(ctx, b).Close()
}

func runIDs(entries []repair.Entry) []int64 {
	seen := map[int64]bool{}
	var ids []int64
	for _, e := range entries {
		if !seen[e.RunID] {
			seen[e.RunID] = true
			ids = append(ids, e.RunID)
		}
	}
	return ids
}

// List implements repair.Log with keyset pagination on the entry ID.
func (l *Log) List(ctx context.Context, f repair.LogFilter) ([]repair.Entry, int64, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	for _, c := range []struct {
		col, v string
	}{{"entity", f.Entity}, {"key", f.Key}, {"store", f.Store}, {"class", f.Class}, {"outcome", f.Outcome}} {
		if c.v != "" {
			add(c.col+" = $%d", c.v)
		}
	}
	if f.RunID != 0 {
		add("id IN (SELECT entry_id FROM repair_log_runs WHERE run_id = $%d)", f.RunID)
	}
	if !f.Since.IsZero() {
		add("last_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("last_at < $%d", f.Until)
	}
	// A time window is paged newest-touched first, by (last_at, id): an
	// index range that starts at the window's end. Paging by id alone
	// would walk the id index from the newest entry past every entry
	// newer than the window (0.6 s at 10M entries for a week-old window).
	windowed := !f.Since.IsZero() || !f.Until.IsZero()
	if f.After > 0 {
		if windowed {
			args = append(args, f.After)
			where = append(where, fmt.Sprintf("(last_at, id) < ((SELECT last_at FROM repair_log WHERE id = $%[1]d), $%[1]d)", len(args)))
		} else {
			add("id < $%d", f.After)
		}
	}
	q := `SELECT id, coalesce(last_run_id, run_id), entity, key, store, class, action, priority, before_version, before_digest, after_version, after_digest,
		outcome, coalesce(error, ''), attempts, first_at, last_at, coalesce(fields, '{}'), coalesce(observed, ''),
		coalesce(encode(write_trace, 'hex'), '') FROM repair_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit+1)
	order := "id DESC"
	if windowed {
		order = "last_at DESC, id DESC"
	}
	q += fmt.Sprintf(" ORDER BY %s LIMIT $%d", order, len(args))
	rows, err := l.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []repair.Entry
	for rows.Next() {
		var e repair.Entry
		var bv, bd, av, ad *int64
		var class string
		if err := rows.Scan(&e.ID, &e.RunID, &e.Entity, &e.Key, &e.Store, &class, &e.Action, &e.Priority, &bv, &bd, &av, &ad,
			&e.Outcome, &e.Error, &e.Attempts, &e.FirstAt, &e.LastAt, &e.Fields, &e.Observed, &e.WriteTrace); err != nil {
			return nil, 0, err
		}
		e.Class = repair.Class(class)
		if bv != nil {
			e.Before = &repair.State{Version: *bv, Digest: *bd}
		}
		if av != nil {
			e.After = &repair.State{Version: *av, Digest: *ad}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// Runs implements repair.Log: runs newest first, below before (0: from the newest).
func (l *Log) Runs(ctx context.Context, limit int, before int64) ([]repair.Run, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := l.pool.Query(ctx, `SELECT id, trigger, actor, entity, dry_run, budget, started_at, finished_at, planned, repaired, noop, conflicts, failed, skipped, coalesce(error, '')
		FROM repair_runs WHERE id < $1 ORDER BY id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []repair.Run
	for rows.Next() {
		var r repair.Run
		if err := rows.Scan(&r.ID, &r.Trigger, &r.Actor, &r.Entity, &r.DryRun, &r.Budget, &r.StartedAt, &r.FinishedAt,
			&r.Planned, &r.Repaired, &r.Noop, &r.Conflicts, &r.Failed, &r.Skipped, &r.Error); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Purge implements repair.Log.
func (l *Log) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := l.pool.Exec(ctx, `DELETE FROM repair_log WHERE last_at < $1`, cutoff)
	if err != nil {
		return 0, err
	}
	n := tag.RowsAffected()
	// Plans go with the log they came from.
	if _, err := l.pool.Exec(ctx, `DELETE FROM repair_plans WHERE created_at < $1`, cutoff); err != nil {
		return n, err
	}
	tag, err = l.pool.Exec(ctx, `DELETE FROM repair_runs r WHERE finished_at < $1 AND NOT EXISTS (SELECT 1 FROM repair_log_runs e WHERE e.run_id = r.id)`, cutoff)
	return n + tag.RowsAffected(), err
}

// Stats implements repair.Log: one grouped scan of the entries since
// `since` (the repair_log_last_at_id index bounds it).
func (l *Log) Stats(ctx context.Context, since time.Time, step time.Duration) ([]repair.StatBucket, error) {
	rows, err := l.pool.Query(ctx, `SELECT date_bin($2::interval, last_at, $1), entity, store, class, outcome, count(*)
		FROM repair_log WHERE last_at >= $1 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`, since, step)
	if err != nil {
		return nil, fmt.Errorf("repair stats: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (repair.StatBucket, error) {
		var b repair.StatBucket
		err := r.Scan(&b.Start, &b.Entity, &b.Store, &b.Class, &b.Outcome, &b.Count)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("repair stats: %w", err)
	}
	return out, nil
}
