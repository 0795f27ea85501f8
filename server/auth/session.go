package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SessionCookie is the dashboard's session cookie.
const SessionCookie = "triad_session"

// Session is a dashboard login opened with a token. The browser holds
// the session's secret in an HttpOnly cookie; CSRF is what it must send
// back in the X-CSRF-Token header on every mutation (a page of another
// site can make the browser send the cookie, never read this value).
type Session struct {
	Principal
	CSRF      string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CreateSession stores a session for p (table ui_sessions) lasting ttl
// and returns its secret (the cookie value; only its hash is stored).
func (s *Store) CreateSession(ctx context.Context, p Principal, ttl time.Duration) (string, Session, error) {
	secret, err := randomString(32)
	if err != nil {
		return "", Session{}, err
	}
	csrf, err := randomString(24)
	if err != nil {
		return "", Session{}, err
	}
	var tokenID *int64
	if p.TokenID != 0 {
		tokenID = &p.TokenID
	}
	sess := Session{Principal: p, CSRF: csrf, ExpiresAt: s.now().Add(ttl).UTC().Truncate(time.Microsecond)}
	if _, err := s.pool.Exec(ctx,
		`INSERT INTO ui_sessions (id_hash, token_id, name, role, csrf, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		Hash(secret), tokenID, p.Name, p.Role.String(), csrf, sess.ExpiresAt); err != nil {
		return "", Session{}, fmt.Errorf("create session: %w", err)
	}
	return secret, sess, nil
}

// lookupSession returns the live session with the given hash: unexpired,
// and its token neither revoked nor expired. ErrInvalidToken otherwise.
func (s *Store) lookupSession(ctx context.Context, hash []byte) (Session, error) {
	var (
		sess    Session
		tokenID *int64
		role    string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT s.token_id, s.name, s.role, s.csrf, s.expires_at
		  FROM ui_sessions s LEFT JOIN api_tokens t ON t.id = s.token_id
		 WHERE s.id_hash = $1 AND s.expires_at > now()
		   AND (s.token_id IS NULL OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())))`,
		hash).Scan(&tokenID, &sess.Name, &role, &sess.CSRF, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrInvalidToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up session: %w", err)
	}
	if tokenID != nil {
		sess.TokenID = *tokenID
	}
	if sess.Role, err = ParseRole(role); err != nil {
		return Session{}, ErrInvalidToken
	}
	sess.Via = ViaSession
	return sess, nil
}

// DeleteSession ends the session with the given secret (logout); an
// unknown one is not an error.
func (s *Store) DeleteSession(ctx context.Context, secret string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM ui_sessions WHERE id_hash = $1`, Hash(secret)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeSessions deletes sessions that expired before now; it returns how
// many.
func (s *Store) PurgeSessions(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM ui_sessions WHERE expires_at <= now()`)
	if err != nil {
		return 0, fmt.Errorf("purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Login checks token and opens a session for its principal.
func (a *Authenticator) Login(ctx context.Context, token string, ttl time.Duration) (string, Session, error) {
	p, err := a.Authenticate(ctx, token)
	if err != nil {
		return "", Session{}, err
	}
	p.Via = ViaSession
	return a.store.CreateSession(ctx, p, ttl)
}

// Session resolves a session cookie's value. Sessions opened with the
// bootstrap token end when the bootstrap token is no longer configured.
// Live sessions are cached like tokens (CacheFor).
func (a *Authenticator) Session(ctx context.Context, secret string) (Session, error) {
	if secret == "" {
		return Session{}, ErrNoToken
	}
	h := Hash(secret)
	key := "s" + string(h)
	sess, ok := a.sessions.GetIfPresent(key)
	if ok && !sess.ExpiresAt.After(a.store.now()) {
		a.sessions.Invalidate(key)
		ok = false
	}
	if !ok {
		var err error
		if sess, err = a.store.lookupSession(ctx, h); err != nil {
			return Session{}, err
		}
		a.sessions.Set(key, sess)
	}
	if sess.TokenID == 0 && a.bootstrap == nil {
		return Session{}, ErrInvalidToken
	}
	return sess, nil
}

// Logout ends a session here and in the store.
func (a *Authenticator) Logout(ctx context.Context, secret string) error {
	a.sessions.Invalidate("s" + string(Hash(secret)))
	return a.store.DeleteSession(ctx, secret)
}
