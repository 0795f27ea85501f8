package auth_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/server/auth"
)

func TestParseRole(t *testing.T) {
	for in, want := range map[string]auth.Role{"viewer": auth.RoleViewer, " Operator ": auth.RoleOperator, "ADMIN": auth.RoleAdmin} {
		got, err := auth.ParseRole(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := auth.ParseRole("root")
	require.Error(t, err)
	require.Less(t, auth.RoleViewer, auth.RoleOperator)
	require.Less(t, auth.RoleOperator, auth.RoleAdmin)
}

func TestStoreAgainstPostgres(t *testing.T) {
	ns := stacktest.New(t)
	ns.Migrate(t)

	store := auth.NewStore(ns.Pool())
	a := auth.NewAuthenticator(store, "")
	ctx := t.Context()

	secret, tok, err := store.Create(ctx, "reader", auth.RoleViewer, 0)
	require.NoError(t, err)
	require.Equal(t, secret[:len(tok.Prefix)], tok.Prefix)
	p, err := a.Authenticate(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, auth.RoleViewer, p.Role)
	require.Equal(t, tok.ID, p.TokenID)

	toks, err := store.List(ctx, false)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	require.NotNil(t, toks[0].LastUsedAt, "use is recorded")

	short, _, err := store.Create(ctx, "short-lived", auth.RoleAdmin, time.Millisecond)
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	_, err = a.Authenticate(ctx, short)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "expired")

	_, err = a.Authenticate(ctx, "triad_unknown")
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	_, err = a.Authenticate(ctx, "")
	require.ErrorIs(t, err, auth.ErrNoToken)

	_, _, err = store.Create(ctx, "reader", auth.RoleAdmin, 0)
	require.ErrorIs(t, err, auth.ErrNameTaken)
	_, _, err = store.Create(ctx, " ", auth.RoleAdmin, 0)
	require.ErrorIs(t, err, auth.ErrInvalidInput)

	_, err = store.Revoke(ctx, tok.ID)
	require.NoError(t, err)
	_, err = a.Authenticate(ctx, secret)
	require.NoError(t, err, "another replica keeps a resolved token for auth.CacheFor")
	a.Forget() // what the revoking replica does
	_, err = a.Authenticate(ctx, secret)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "revoked")
	_, _, err = store.Create(ctx, "reader", auth.RoleViewer, 0)
	require.NoError(t, err, "a revoked token's name may be reused")
}

// TestSessionsAgainstPostgres: a session lives until its expiry, ends with
// its token, is purged once expired, and one opened with the bootstrap
// token ends when no bootstrap token is configured any more.
func TestSessionsAgainstPostgres(t *testing.T) {
	ns := stacktest.New(t)
	ns.Migrate(t)
	store := auth.NewStore(ns.Pool())
	a := auth.NewAuthenticator(store, "bootstrap-token-0123456789")
	ctx := t.Context()

	tok, ui, err := store.Create(ctx, "ui", auth.RoleOperator, 0)
	require.NoError(t, err)
	secret, sess, err := a.Login(ctx, tok, time.Hour)
	require.NoError(t, err)
	require.Equal(t, auth.ViaSession, sess.Via)
	require.NotEqual(t, tok, secret)
	got, err := a.Session(ctx, secret)
	require.NoError(t, err)
	require.Equal(t, "ui", got.Name)
	require.Equal(t, auth.RoleOperator, got.Role)
	require.Equal(t, sess.CSRF, got.CSRF)
	_, err = a.Session(ctx, secret+"x")
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	_, _, err = a.Login(ctx, "triad_nope", time.Hour)
	require.ErrorIs(t, err, auth.ErrInvalidToken)

	_, err = store.Revoke(ctx, ui.ID)
	require.NoError(t, err)
	a.Forget()
	_, err = a.Session(ctx, secret)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "the token was revoked")

	boot, _, err := a.Login(ctx, "bootstrap-token-0123456789", time.Hour)
	require.NoError(t, err)
	_, err = a.Session(ctx, boot)
	require.NoError(t, err)
	_, err = auth.NewAuthenticator(store, "").Session(ctx, boot)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "bootstrap token no longer configured")

	short, _, err := a.Login(ctx, "bootstrap-token-0123456789", time.Millisecond)
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	_, err = a.Session(ctx, short)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "expired")
	n, err := store.PurgeSessions(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	require.NoError(t, a.Logout(ctx, boot))
	_, err = a.Session(ctx, boot)
	require.ErrorIs(t, err, auth.ErrInvalidToken, "logged out")
}

func TestPurgeAudit(t *testing.T) {
	ns := stacktest.New(t)
	ns.Migrate(t)
	store := auth.NewStore(ns.Pool())
	ctx := t.Context()
	for _, actor := range []string{"old", "new"} {
		require.NoError(t, store.Audit(ctx, auth.AuditEntry{Actor: actor, Role: "admin", Via: "token", Method: "POST", Route: "/r", Path: "/r", Status: 200, RequestID: "x", Remote: "127.0.0.1"}))
	}
	_, err := ns.Pool().Exec(ctx, `UPDATE audit_log SET at = now() - interval '400 days' WHERE actor = 'old'`)
	require.NoError(t, err)
	n, err := store.PurgeAudit(ctx, time.Now().Add(-365*24*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	left, err := store.ListAudit(ctx, auth.AuditFilter{})
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "new", left[0].Actor)
}
