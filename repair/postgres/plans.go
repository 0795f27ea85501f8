package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/repair"
)

// Plans implements repair.PlanStore (repair_plans, repair_plan_entries).
type Plans struct{ pool *pgxpool.Pool }

// NewPlans returns the plan store on pool.
func NewPlans(pool *pgxpool.Pool) *Plans { return &Plans{pool: pool} }

var _ repair.PlanStore = (*Plans)(nil)

const planColumns = `id, entity, source, dry_run_id, created_by, created_at, keys, entries, coalesce(applied_by, ''), applied_at, applied_run`

func scanPlan(row pgx.Row) (repair.SavedPlan, error) {
	var p repair.SavedPlan
	err := row.Scan(&p.ID, &p.Entity, &p.Source, &p.DryRunID, &p.CreatedBy, &p.CreatedAt, &p.Keys, &p.Entries, &p.AppliedBy, &p.AppliedAt, &p.AppliedRun)
	if errors.Is(err, pgx.ErrNoRows) {
		err = repair.ErrPlanNotFound
	}
	return p, err
}

// CreatePlan implements repair.PlanStore in one transaction; the entries
// go in with COPY.
func (s *Plans) CreatePlan(ctx context.Context, p *repair.SavedPlan, entries []repair.Entry) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `INSERT INTO repair_plans (entity, source, dry_run_id, created_by, keys, entries) VALUES ($1, $2, $3, $4, $5, $6)
			RETURNING id, created_at`, p.Entity, p.Source, p.DryRunID, p.CreatedBy, p.Keys, p.Entries).Scan(&p.ID, &p.CreatedAt)
		if err != nil {
			return err
		}
		rows := make([][]any, len(entries))
		for i, e := range entries {
			var bv, bd, av, ad *int64
			if e.Before != nil {
				bv, bd = &e.Before.Version, &e.Before.Digest
			}
			if e.After != nil {
				av, ad = &e.After.Version, &e.After.Digest
			}
			rows[i] = []any{p.ID, i + 1, e.Key, e.Store, string(e.Class), e.Action, e.Priority, bv, bd, int32(e.Bytes), e.Observed, av, ad}
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"repair_plan_entries"},
			[]string{"plan_id", "seq", "key", "store", "class", "action", "priority", "before_version", "before_digest", "before_bytes", "observed", "after_version", "after_digest"},
			pgx.CopyFromRows(rows))
		return err
	})
}

// GetPlan implements repair.PlanStore.
func (s *Plans) GetPlan(ctx context.Context, id int64, sample int) (repair.SavedPlan, error) {
	p, err := scanPlan(s.pool.QueryRow(ctx, `SELECT `+planColumns+` FROM repair_plans WHERE id = $1`, id))
	if err != nil {
		return p, err
	}
	rows, err := s.pool.Query(ctx, `SELECT store, class, action, count(*) FROM repair_plan_entries WHERE plan_id = $1
		GROUP BY store, class, action ORDER BY count(*) DESC, store, class`, id)
	if err != nil {
		return p, err
	}
	var c repair.PlanCount
	if _, err := pgx.ForEachRow(rows, []any{&c.Store, &c.Class, &c.Action, &c.Count}, func() error {
		p.Counts = append(p.Counts, c)
		return nil
	}); err != nil {
		return p, err
	}
	p.Sample, err = s.PlanEntries(ctx, id, 0, sample)
	return p, err
}

// ListPlans implements repair.PlanStore.
func (s *Plans) ListPlans(ctx context.Context, limit int, before int64) ([]repair.SavedPlan, error) {
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+planColumns+` FROM repair_plans WHERE $1 = 0 OR id < $1 ORDER BY id DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (repair.SavedPlan, error) { return scanPlan(r) })
}

// PlanEntries implements repair.PlanStore.
func (s *Plans) PlanEntries(ctx context.Context, id int64, after, limit int) ([]repair.Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT p.entity, e.key, e.store, e.class, e.action, e.priority, e.before_version, e.before_digest,
		coalesce(e.before_bytes, 0), coalesce(e.observed, ''), e.after_version, e.after_digest
		FROM repair_plan_entries e JOIN repair_plans p ON p.id = e.plan_id
		WHERE e.plan_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`, id, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (repair.Entry, error) {
		var e repair.Entry
		var bv, bd, av, ad *int64
		var class string
		var bytes int32
		if err := r.Scan(&e.Entity, &e.Key, &e.Store, &class, &e.Action, &e.Priority, &bv, &bd, &bytes, &e.Observed, &av, &ad); err != nil {
			return e, err
		}
		e.Class, e.Bytes, e.Outcome = repair.Class(class), int(bytes), repair.OutcomePlanned
		if bv != nil {
			e.Before = &repair.State{Version: *bv, Digest: *bd}
		}
		if av != nil {
			e.After = &repair.State{Version: *av, Digest: *ad}
		}
		return e, nil
	})
}

// ClaimPlan implements repair.PlanStore: one UPDATE decides, so two
// operators applying the same plan at once cannot both write it.
func (s *Plans) ClaimPlan(ctx context.Context, id int64, actor string) (repair.SavedPlan, error) {
	p, err := scanPlan(s.pool.QueryRow(ctx, `UPDATE repair_plans SET applied_by = $2, applied_at = now()
		WHERE id = $1 AND applied_at IS NULL RETURNING `+planColumns, id, actor))
	if errors.Is(err, repair.ErrPlanNotFound) {
		var by string
		var at pgtype.Timestamptz
		if qerr := s.pool.QueryRow(ctx, `SELECT coalesce(applied_by, ''), applied_at FROM repair_plans WHERE id = $1`, id).Scan(&by, &at); qerr == nil {
			return p, fmt.Errorf("%w (plan %d, by %s at %s)", repair.ErrPlanApplied, id, by, at.Time.UTC().Format("2006-01-02 15:04:05Z"))
		}
	}
	return p, err
}

// FinishPlan implements repair.PlanStore.
func (s *Plans) FinishPlan(ctx context.Context, id, run int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE repair_plans SET applied_run = $2 WHERE id = $1`, id, run)
	return err
}

// ReleasePlan implements repair.PlanStore.
func (s *Plans) ReleasePlan(ctx context.Context, id int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE repair_plans SET applied_by = NULL, applied_at = NULL WHERE id = $1 AND applied_run IS NULL`, id)
	return err
}
