package auth

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one mutating API request: who, how, what and the answer.
type AuditEntry struct {
	ID        int64     `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	TokenID   int64     `json:"token_id,omitempty"`
	Role      string    `json:"role"`
	Via       string    `json:"via"` // token, session, or none (refused before a principal was known)
	Method    string    `json:"method"`
	Route     string    `json:"route"`
	Path      string    `json:"path"`
	Status    int       `json:"status"`
	RequestID string    `json:"request_id"`
	Remote    string    `json:"remote"`
}

// AuditFilter selects audit entries; zero fields match everything.
// Before is a keyset cursor: entries with a smaller id.
type AuditFilter struct {
	Actor  string
	Method string
	Before int64
	Limit  int
}

// Audit appends an entry to the audit log (table audit_log).
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	var tokenID *int64
	if e.TokenID != 0 {
		tokenID = &e.TokenID
	}
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO audit_log (actor, token_id, role, via, method, route, path, status, request_id, remote)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		e.Actor, tokenID, e.Role, e.Via, e.Method, e.Route, e.Path, e.Status, e.RequestID, e.Remote); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ListAudit returns entries newest first, at most f.Limit (default 100,
// at most 1000).
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Method != "" {
		add("method = $%d", strings.ToUpper(f.Method))
	}
	if f.Before > 0 {
		add("id < $%d", f.Before)
	}
	q := `SELECT id, at, actor, coalesce(token_id, 0), role, via, method, route, path, status, request_id, remote FROM audit_log`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit)
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.TokenID, &e.Role, &e.Via, &e.Method, &e.Route, &e.Path, &e.Status, &e.RequestID, &e.Remote)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// PurgeAudit deletes audit entries older than cutoff; it returns how many.
func (s *Store) PurgeAudit(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM audit_log WHERE at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("purge audit log: %w", err)
	}
	return tag.RowsAffected(), nil
}
