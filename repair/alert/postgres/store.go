// Package postgres is the alerting store in Postgres (tables
// alert_webhooks, alerts, alert_deliveries; migration 00010) and the
// facts the rules read from triad's own tables.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/repair/alert"
)

// Store implements alert.Store. Safe for concurrent use.
type Store struct{ pool *pgxpool.Pool }

// New returns the store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

var _ alert.Store = (*Store)(nil)

const webhookCols = `id, name, url, format, secret, coalesce(previous_secret, ''), previous_until, rules, send_resolved, created_at, created_by`

func scanWebhook(row pgx.Row) (alert.Webhook, error) {
	var w alert.Webhook
	err := row.Scan(&w.ID, &w.Name, &w.URL, &w.Format, &w.Secret, &w.PreviousSecret, &w.PreviousUntil, &w.Rules, &w.SendResolved, &w.CreatedAt, &w.CreatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, alert.ErrNotFound
	}
	return w, err
}

// Webhooks implements alert.Store.
func (s *Store) Webhooks(ctx context.Context) ([]alert.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+webhookCols+` FROM alert_webhooks ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.Webhook, error) { return scanWebhook(r) })
}

// Webhook implements alert.Store.
func (s *Store) Webhook(ctx context.Context, idOrName string) (alert.Webhook, error) {
	return scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookCols+` FROM alert_webhooks WHERE id::text = $1 OR name = $1`, idOrName))
}

// CreateWebhook implements alert.Store.
func (s *Store) CreateWebhook(ctx context.Context, w alert.Webhook) (alert.Webhook, error) {
	if w.Rules == nil {
		w.Rules = []string{}
	}
	out, err := scanWebhook(s.pool.QueryRow(ctx,
		`INSERT INTO alert_webhooks (name, url, format, secret, rules, send_resolved, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+webhookCols,
		w.Name, w.URL, w.Format, w.Secret, w.Rules, w.SendResolved, w.CreatedBy))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return alert.Webhook{}, alert.ErrNameUsed
	}
	return out, err
}

// RotateSecret implements alert.Store.
func (s *Store) RotateSecret(ctx context.Context, idOrName, secret string, previousUntil time.Time) (alert.Webhook, error) {
	return scanWebhook(s.pool.QueryRow(ctx, `UPDATE alert_webhooks SET previous_secret = secret, previous_until = $3, secret = $2
		WHERE id::text = $1 OR name = $1 RETURNING `+webhookCols, idOrName, secret, previousUntil))
}

// DeleteWebhook implements alert.Store; its deliveries go with it.
func (s *Store) DeleteWebhook(ctx context.Context, idOrName string) (alert.Webhook, error) {
	return scanWebhook(s.pool.QueryRow(ctx, `DELETE FROM alert_webhooks WHERE id::text = $1 OR name = $1 RETURNING `+webhookCols, idOrName))
}

const alertCols = `id, fingerprint, rule, labels, annotations, value, active_since, fired_at, resolved_at`

func collectAlerts(rows pgx.Rows, err error) ([]alert.State, error) {
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.State, error) {
		var a alert.State
		err := r.Scan(&a.ID, &a.Fingerprint, &a.Rule, &a.Labels, &a.Annotations, &a.Value, &a.ActiveSince, &a.FiredAt, &a.ResolvedAt)
		return a, err
	})
}

// ActiveAlerts implements alert.Store.
func (s *Store) ActiveAlerts(ctx context.Context) ([]alert.State, error) {
	return collectAlerts(s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts WHERE resolved_at IS NULL ORDER BY id`))
}

// Alerts implements alert.Store.
func (s *Store) Alerts(ctx context.Context, limit int) ([]alert.State, error) {
	return collectAlerts(s.pool.Query(ctx, `SELECT `+alertCols+` FROM alerts ORDER BY (resolved_at IS NULL) DESC, id DESC LIMIT $1`, limit))
}

// ResolvedSince implements alert.Store.
func (s *Store) ResolvedSince(ctx context.Context, rule string, t time.Time) ([]alert.State, error) {
	return collectAlerts(s.pool.Query(ctx,
		`SELECT `+alertCols+` FROM alerts WHERE rule = $1 AND fired_at IS NOT NULL AND resolved_at > $2 ORDER BY id`, rule, t))
}

// InsertAlert implements alert.Store.
func (s *Store) InsertAlert(ctx context.Context, a alert.State) (alert.State, error) {
	err := s.pool.QueryRow(ctx,
		`INSERT INTO alerts (fingerprint, rule, labels, annotations, value, active_since, fired_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (fingerprint) WHERE resolved_at IS NULL DO NOTHING RETURNING id`,
		a.Fingerprint, a.Rule, a.Labels, a.Annotations, a.Value, a.ActiveSince, a.FiredAt).Scan(&a.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, nil // another evaluator inserted it first
	}
	if err != nil {
		return a, fmt.Errorf("insert alert: %w", err)
	}
	return a, nil
}

// UpdateAlert implements alert.Store.
func (s *Store) UpdateAlert(ctx context.Context, a alert.State) error {
	if _, err := s.pool.Exec(ctx,
		`UPDATE alerts SET annotations = $2, value = $3, fired_at = $4, resolved_at = $5, updated_at = now() WHERE id = $1`,
		a.ID, a.Annotations, a.Value, a.FiredAt, a.ResolvedAt); err != nil {
		return fmt.Errorf("update alert %d: %w", a.ID, err)
	}
	return nil
}

// DeleteAlert implements alert.Store.
func (s *Store) DeleteAlert(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM alerts WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete alert %d: %w", id, err)
	}
	return nil
}

const deliveryCols = `d.id, d.webhook_id, w.name, d.group_key, d.status, d.firing_hash, d.dedupe_key, d.payload, d.state, d.attempts, d.next_at,
	d.last_status, d.last_error, d.test, d.created_at, d.delivered_at`

func scanDelivery(r pgx.Row) (alert.Delivery, error) {
	var d alert.Delivery
	err := r.Scan(&d.ID, &d.WebhookID, &d.Webhook, &d.GroupKey, &d.Status, &d.FiringHash, &d.DedupeKey, &d.Payload, &d.State, &d.Attempts,
		&d.NextAt, &d.LastStatus, &d.LastError, &d.Test, &d.CreatedAt, &d.DeliveredAt)
	return d, err
}

// Enqueue implements alert.Store.
func (s *Store) Enqueue(ctx context.Context, d alert.Delivery) (alert.Delivery, bool, error) {
	err := s.pool.QueryRow(ctx,
		`INSERT INTO alert_deliveries (webhook_id, group_key, status, firing_hash, dedupe_key, payload, test, next_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, created_at, state`,
		d.WebhookID, d.GroupKey, d.Status, d.FiringHash, d.DedupeKey, d.Payload, d.Test, d.NextAt).Scan(&d.ID, &d.CreatedAt, &d.State)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("enqueue delivery: %w", err)
	}
	return d, true, nil
}

// LastDelivery implements alert.Store.
func (s *Store) LastDelivery(ctx context.Context, webhookID int64, groupKey string) (alert.Delivery, bool, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryCols+` FROM alert_deliveries d JOIN alert_webhooks w ON w.id = d.webhook_id
		WHERE d.webhook_id = $1 AND d.group_key = $2 AND NOT d.test ORDER BY d.id DESC LIMIT 1`, webhookID, groupKey))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("last delivery: %w", err)
	}
	return d, true, nil
}

// Due implements alert.Store.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]alert.Delivery, map[int64]alert.Webhook, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM alert_deliveries d JOIN alert_webhooks w ON w.id = d.webhook_id
		WHERE d.state = 'pending' AND d.next_at <= $1 ORDER BY d.next_at, d.id LIMIT $2`, now, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("due deliveries: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.Delivery, error) { return scanDelivery(r) })
	if err != nil || len(due) == 0 {
		return nil, nil, err
	}
	hooks := map[int64]alert.Webhook{}
	for _, d := range due {
		if _, ok := hooks[d.WebhookID]; ok {
			continue
		}
		w, err := s.Webhook(ctx, strconv.FormatInt(d.WebhookID, 10))
		if err != nil {
			return nil, nil, err
		}
		hooks[d.WebhookID] = w
	}
	return due, hooks, nil
}

// Attempted implements alert.Store.
func (s *Store) Attempted(ctx context.Context, id int64, a alert.Attempt) error {
	state := "pending"
	switch {
	case a.Delivered:
		state = "delivered"
	case a.Expired:
		state = "expired"
	}
	var status *int
	if a.Status != 0 {
		status = &a.Status
	}
	var lastErr *string
	if a.Err != "" {
		lastErr = &a.Err
	}
	next := a.NextAt
	if next.IsZero() {
		next = time.Now()
	}
	if _, err := s.pool.Exec(ctx, `UPDATE alert_deliveries SET state = $2, attempts = attempts + 1, last_status = $3, last_error = $4,
		next_at = $5, delivered_at = CASE WHEN $2 = 'delivered' THEN now() END WHERE id = $1`, id, state, status, lastErr, next); err != nil {
		return fmt.Errorf("delivery %d attempted: %w", id, err)
	}
	return nil
}

// Deliveries implements alert.Store.
func (s *Store) Deliveries(ctx context.Context, f alert.DeliveryFilter) ([]alert.Delivery, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deliveryCols+` FROM alert_deliveries d JOIN alert_webhooks w ON w.id = d.webhook_id
		WHERE ($1 = 0 OR d.webhook_id = $1) AND ($2 = '' OR d.state = $2) AND ($3 = 0 OR d.id < $3) ORDER BY d.id DESC LIMIT $4`,
		f.WebhookID, f.State, f.Before, min(f.Limit, 1000))
	if err != nil {
		return nil, fmt.Errorf("deliveries: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.Delivery, error) { return scanDelivery(r) })
}

// Purge implements alert.Store.
func (s *Store) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	a, err := s.pool.Exec(ctx, `DELETE FROM alerts WHERE resolved_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("purge alerts: %w", err)
	}
	d, err := s.pool.Exec(ctx, `DELETE FROM alert_deliveries WHERE state <> 'pending' AND created_at < $1`, cutoff)
	if err != nil {
		return a.RowsAffected(), fmt.Errorf("purge deliveries: %w", err)
	}
	si, err := s.pool.Exec(ctx, `DELETE FROM alert_silences WHERE ends_at < $1`, cutoff)
	if err != nil {
		return a.RowsAffected() + d.RowsAffected(), fmt.Errorf("purge silences: %w", err)
	}
	return a.RowsAffected() + d.RowsAffected() + si.RowsAffected(), nil
}

const silenceColumns = `id, matchers, comment, created_by, created_at, starts_at, ends_at, coalesce(expired_by, ''), expire_noticed_at`

func scanSilence(row pgx.Row) (alert.Silence, error) {
	var si alert.Silence
	err := row.Scan(&si.ID, &si.Matchers, &si.Comment, &si.CreatedBy, &si.CreatedAt, &si.StartsAt, &si.EndsAt, &si.ExpiredBy, &si.ExpireNoticedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = alert.ErrNoSilence
	}
	return si, err
}

func collectSilences(rows pgx.Rows, err error) ([]alert.Silence, error) {
	if err != nil {
		return nil, fmt.Errorf("silences: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.Silence, error) { return scanSilence(r) })
}

// CreateSilence implements alert.SilenceStore.
func (s *Store) CreateSilence(ctx context.Context, si alert.Silence) (alert.Silence, error) {
	return scanSilence(s.pool.QueryRow(ctx, `INSERT INTO alert_silences (matchers, comment, created_by, starts_at, ends_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+silenceColumns, si.Matchers, si.Comment, si.CreatedBy, si.StartsAt, si.EndsAt))
}

// Silences implements alert.SilenceStore.
func (s *Store) Silences(ctx context.Context, expiredSince time.Time) ([]alert.Silence, error) {
	return collectSilences(s.pool.Query(ctx, `SELECT `+silenceColumns+` FROM alert_silences WHERE ends_at > $1 ORDER BY id DESC LIMIT 1000`, expiredSince))
}

// ExpireSilence implements alert.SilenceStore.
func (s *Store) ExpireSilence(ctx context.Context, id int64, by string, now time.Time) (alert.Silence, error) {
	return scanSilence(s.pool.QueryRow(ctx, `UPDATE alert_silences SET ends_at = greatest($3, starts_at + interval '1 microsecond'), expired_by = $2
		WHERE id = $1 AND ends_at > $3 RETURNING `+silenceColumns, id, by, now))
}

// NoticeExpired implements alert.SilenceStore.
func (s *Store) NoticeExpired(ctx context.Context, now time.Time) ([]alert.Silence, error) {
	return collectSilences(s.pool.Query(ctx, `UPDATE alert_silences SET expire_noticed_at = $1
		WHERE ends_at <= $1 AND expire_noticed_at IS NULL RETURNING `+silenceColumns, now))
}

// Facts gathers what the rules read from Postgres: the last finished
// sweep per entity, active and recently failed sweeps, failed repairs
// per entity in each window, and the catch-up backlog per store. The
// caller adds what Postgres does not know (store probes, counters).
func (s *Store) Facts(ctx context.Context, now time.Time, windows []time.Duration, sweepWindow time.Duration) (alert.Facts, error) {
	f := alert.Facts{Now: now, RepairFailures: map[time.Duration]map[string]int64{}, Catchup: map[string]int64{}}
	scanSweeps := func(q string, args ...any) ([]alert.SweepFact, error) {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, func(r pgx.CollectableRow) (alert.SweepFact, error) {
			var x alert.SweepFact
			var fin *time.Time
			err := r.Scan(&x.ID, &x.Entity, &x.State, &x.Stuck, &x.Records, &x.Findings, &x.Error, &fin)
			if fin != nil {
				x.FinishedAt = *fin
			}
			return x, err
		})
	}
	const cols = `id, entity, state, stuck, records, findings, coalesce(error, ''), finished_at`
	var err error
	if f.LastSweeps, err = scanSweeps(`SELECT DISTINCT ON (entity) ` + cols + ` FROM sweeps WHERE state = 'done' AND content_true ORDER BY entity, finished_at DESC`); err != nil {
		return f, fmt.Errorf("last sweeps: %w", err)
	}
	if f.Sweeps, err = scanSweeps(`SELECT `+cols+` FROM sweeps WHERE state IN ('running', 'paused') OR (state = 'failed' AND finished_at > $1) ORDER BY id`,
		now.Add(-sweepWindow)); err != nil {
		return f, fmt.Errorf("sweeps: %w", err)
	}
	for _, w := range windows {
		rows, err := s.pool.Query(ctx, `SELECT entity, count(*) FROM repair_log WHERE outcome = 'failed' AND last_at > $1 GROUP BY entity`, now.Add(-w))
		if err != nil {
			return f, fmt.Errorf("repair failures: %w", err)
		}
		m := map[string]int64{}
		var entity string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&entity, &n}, func() error { m[entity] = n; return nil }); err != nil {
			return f, fmt.Errorf("repair failures: %w", err)
		}
		f.RepairFailures[w] = m
	}
	rows, err := s.pool.Query(ctx, `SELECT store, count(*) FROM profile_catchup GROUP BY store`)
	if err != nil {
		return f, fmt.Errorf("catch-up backlog: %w", err)
	}
	var store string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&store, &n}, func() error { f.Catchup[store] = n; return nil }); err != nil {
		return f, fmt.Errorf("catch-up backlog: %w", err)
	}
	return f, nil
}
