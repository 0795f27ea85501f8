package postgres_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/repair/alert/postgres"
)

// TestPurge: resolved alerts and finished deliveries older than the cutoff
// go; active alerts and pending deliveries stay whatever their age.
func TestPurge(t *testing.T) {
	ns := stacktest.New(t)
	ns.Migrate(t)
	ctx := t.Context()
	s := postgres.New(ns.Pool())
	w, err := s.CreateWebhook(ctx, alert.Webhook{Name: "w", URL: "http://127.0.0.1:9/", Format: alert.FormatJSON, Secret: "0123456789abcdef", CreatedBy: "t"})
	require.NoError(t, err)
	old := time.Now().Add(-40 * 24 * time.Hour)
	for i, resolved := range []bool{true, false} {
		a := alert.State{Fingerprint: string(rune('a' + i)), Rule: "R", Labels: map[string]string{"i": string(rune('a' + i))},
			Annotations: map[string]string{}, ActiveSince: old, FiredAt: &old}
		a, err := s.InsertAlert(ctx, a)
		require.NoError(t, err)
		if resolved {
			a.ResolvedAt = &old
			require.NoError(t, s.UpdateAlert(ctx, a))
		}
	}
	for i, state := range []string{"delivered", "expired", "pending"} {
		d, ok, err := s.Enqueue(ctx, alert.Delivery{WebhookID: w.ID, GroupKey: "g", Status: "firing", FiringHash: "h", DedupeKey: state, Payload: []byte("{}"), NextAt: old})
		require.NoError(t, err)
		require.True(t, ok)
		_, err = ns.Pool().Exec(ctx, `UPDATE alert_deliveries SET state = $2, created_at = $3 WHERE id = $1`, d.ID, state, old.Add(time.Duration(i)*time.Minute))
		require.NoError(t, err)
	}
	n, err := s.Purge(ctx, time.Now().Add(-30*24*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 3, n, "one resolved alert, one delivered and one expired delivery")
	active, err := s.ActiveAlerts(ctx)
	require.NoError(t, err)
	require.Len(t, active, 1)
	left, err := s.Deliveries(ctx, alert.DeliveryFilter{})
	require.NoError(t, err)
	require.Len(t, left, 1)
	require.Equal(t, "pending", left[0].State)
}

// TestRotateSecret: a rotation keeps the previous secret and its grace with
// the webhook (by id or name); an unknown webhook is ErrNotFound.
func TestRotateSecret(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ns.Migrate(t)
	ctx := t.Context()
	s := postgres.New(ns.Pool())
	w, err := s.CreateWebhook(ctx, alert.Webhook{Name: "pager", URL: "http://127.0.0.1:9/", Format: alert.FormatJSON, Secret: "first-secret-0123", CreatedBy: "t"})
	require.NoError(t, err)
	require.Empty(t, w.PreviousSecret)
	require.Nil(t, w.PreviousUntil)
	until := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	r, err := s.RotateSecret(ctx, "pager", "second-secret-0123", until)
	require.NoError(t, err)
	require.Equal(t, "second-secret-0123", r.Secret)
	require.Equal(t, "first-secret-0123", r.PreviousSecret)
	require.True(t, until.Equal(*r.PreviousUntil))
	got, err := s.Webhook(ctx, "1")
	require.NoError(t, err)
	require.Equal(t, r.Secret, got.Secret)
	require.Equal(t, r.PreviousSecret, got.PreviousSecret)
	_, err = s.RotateSecret(ctx, "nobody", "x-secret-0123456", until)
	require.ErrorIs(t, err, alert.ErrNotFound)
}
