// Package auth holds API tokens and roles, the dashboard's sessions (a
// cookie and a CSRF token per login, ended with their token) and the audit
// log of mutating requests, all in Postgres. Tokens are random 256-bit
// strings shown once at creation; only their SHA-256 is stored (a fast hash
// is enough for high-entropy secrets, and lets a lookup use an index).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/maypok86/otter/v2"
)

// CacheFor is how long a replica keeps a resolved token without asking
// Postgres again: a token revoked elsewhere stops working within this long.
const CacheFor = 5 * time.Second

// Role orders what a token may do: each role may do everything the roles
// below it may.
type Role int

const (
	RoleNone Role = iota
	// RoleViewer reads: profiles, checks, repair logs, sweeps, traces.
	RoleViewer
	// RoleOperator also writes: ingest, repair, sweep control, dataset switch.
	RoleOperator
	// RoleAdmin also manages tokens and webhooks.
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole parses viewer, operator or admin.
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("role %q: want viewer, operator or admin", s)
}

// Errors of this package.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrInvalidToken = errors.New("invalid, expired or revoked token")
	ErrNotFound     = errors.New("token not found")
	ErrNameTaken    = errors.New("an active token with this name exists")
	ErrInvalidInput = errors.New("invalid input")
)

// TokenPrefix starts every triad token, so secret scanners can find them.
const TokenPrefix = "triad_"

// Token is a stored token's metadata; the secret itself is never stored.
type Token struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Principal is who made a request.
type Principal struct {
	TokenID int64  `json:"token_id"` // 0 for the bootstrap admin token
	Name    string `json:"name"`     // token name
	Role    Role   `json:"role"`
	Via     string `json:"via"` // ViaToken or ViaSession
}

// How a principal authenticated.
const (
	ViaToken   = "token"   // a bearer token in the Authorization header
	ViaSession = "session" // the dashboard's session cookie
)

// MarshalText writes a role as its name.
func (r Role) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	*r = v
	return err
}

// Hash returns the stored form of a token.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// NewToken returns a fresh random token.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Store keeps tokens in Postgres (table api_tokens, see migrations).
// It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool, now: time.Now} }

const tokenCols = "id, name, role, prefix, created_at, expires_at, last_used_at, revoked_at"

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	err := row.Scan(&t.ID, &t.Name, &t.Role, &t.Prefix, &t.CreatedAt, &t.ExpiresAt, &t.LastUsedAt, &t.RevokedAt)
	return t, err
}

// Create stores a new token and returns it with its secret, which is not
// retrievable later. ttl 0 means it never expires.
func (s *Store) Create(ctx context.Context, name string, role Role, ttl time.Duration) (string, Token, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100 {
		return "", Token{}, fmt.Errorf("%w: name must be 1-100 characters", ErrInvalidInput)
	}
	if role < RoleViewer || role > RoleAdmin {
		return "", Token{}, fmt.Errorf("%w: role must be viewer, operator or admin", ErrInvalidInput)
	}
	if ttl < 0 {
		return "", Token{}, fmt.Errorf("%w: ttl must not be negative", ErrInvalidInput)
	}
	secret, err := NewToken()
	if err != nil {
		return "", Token{}, err
	}
	var expires *time.Time
	if ttl > 0 {
		e := s.now().Add(ttl)
		expires = &e
	}
	t, err := scanToken(s.pool.QueryRow(ctx,
		`INSERT INTO api_tokens (name, role, prefix, hash, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING `+tokenCols,
		name, role.String(), secret[:len(TokenPrefix)+6], Hash(secret), expires))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return "", Token{}, ErrNameTaken
	}
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	return secret, t, nil
}

// List returns tokens, newest first; revoked ones only when asked.
func (s *Store) List(ctx context.Context, includeRevoked bool) ([]Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE $1 OR revoked_at IS NULL ORDER BY id DESC`, includeRevoked)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Token, error) { return scanToken(r) })
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// Revoke revokes the active token with the given id or name.
func (s *Store) Revoke(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx,
		`UPDATE api_tokens SET revoked_at = now()
		  WHERE revoked_at IS NULL AND id = $1 RETURNING `+tokenCols, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("revoke token: %w", err)
	}
	return t, nil
}

// lookup returns the active, unexpired token with the given hash.
func (s *Store) lookup(ctx context.Context, hash []byte) (Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx,
		`SELECT `+tokenCols+` FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, ErrInvalidToken
	}
	return t, err
}

func (s *Store) touch(ctx context.Context, id int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, id)
	return err
}

// Authenticator resolves bearer tokens to principals: the bootstrap admin
// token from configuration first, then the Store. Safe for concurrent use.
type Authenticator struct {
	store     *Store
	bootstrap []byte // SHA-256 of the bootstrap admin token, nil when unset

	mu      sync.Mutex
	touched map[int64]time.Time // last_used_at is written at most once a minute

	// valid caches tokens Postgres accepted, by hash, for CacheFor; an
	// expiry inside that window is still honoured.
	valid *otter.Cache[string, Token]
	// sessions caches live dashboard sessions the same way.
	sessions *otter.Cache[string, Session]
}

// NewAuthenticator returns an Authenticator; bootstrapToken may be empty.
func NewAuthenticator(store *Store, bootstrapToken string) *Authenticator {
	a := &Authenticator{store: store, touched: map[int64]time.Time{}, valid: otter.Must(&otter.Options[string, Token]{
		MaximumSize: 10_000, ExpiryCalculator: otter.ExpiryWriting[string, Token](CacheFor),
	}), sessions: otter.Must(&otter.Options[string, Session]{
		MaximumSize: 10_000, ExpiryCalculator: otter.ExpiryWriting[string, Session](CacheFor),
	})}
	if bootstrapToken != "" {
		a.bootstrap = Hash(bootstrapToken)
	}
	return a
}

// Authenticate returns who presented token. ErrInvalidToken means the token
// is unknown, expired or revoked; other errors mean the store failed.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, ErrNoToken
	}
	h := Hash(token)
	if a.bootstrap != nil && subtle.ConstantTimeCompare(h, a.bootstrap) == 1 {
		return Principal{Name: "bootstrap-admin", Role: RoleAdmin, Via: ViaToken}, nil
	}
	t, ok := a.valid.GetIfPresent(string(h))
	if ok && t.ExpiresAt != nil && !t.ExpiresAt.After(a.store.now()) {
		a.valid.Invalidate(string(h))
		ok = false
	}
	if !ok {
		var err error
		if t, err = a.store.lookup(ctx, h); err != nil {
			return Principal{}, err
		}
		a.valid.Set(string(h), t)
	}
	role, err := ParseRole(t.Role)
	if err != nil {
		return Principal{}, ErrInvalidToken
	}
	a.mu.Lock()
	due := a.store.now().Sub(a.touched[t.ID]) > time.Minute
	if due {
		a.touched[t.ID] = a.store.now()
	}
	a.mu.Unlock()
	if due {
		_ = a.store.touch(context.WithoutCancel(ctx), t.ID) // best effort: a failed touch must not fail the request
	}
	return Principal{TokenID: t.ID, Name: t.Name, Role: role, Via: ViaToken}, nil
}

// Forget drops every cached token and session, so a revocation made
// through this replica applies to its next request.
func (a *Authenticator) Forget() { a.valid.InvalidateAll(); a.sessions.InvalidateAll() }
