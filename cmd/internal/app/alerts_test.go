package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/internal/config/configtest"
	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/repair/alert"
)

// receiver is a webhook endpoint that verifies every signature and
// fails the first failFirst requests with 500.
type receiver struct {
	t         *testing.T
	secret    string
	mu        sync.Mutex
	failFirst int
	requests  []received
}

type received struct {
	delivery, event string
	body            map[string]any
	verified        error
	at              time.Time
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	x := received{delivery: r.Header.Get(alert.DeliveryHeader), event: r.Header.Get(alert.EventHeader), at: time.Now(),
		verified: alert.Verify(rc.secret, r.Header.Get(alert.SignatureHeader), raw, time.Now(), 5*time.Minute)}
	_ = json.Unmarshal(raw, &x.body)
	rc.requests = append(rc.requests, x)
	if x.verified != nil {
		http.Error(w, x.verified.Error(), http.StatusUnauthorized)
		return
	}
	if rc.failFirst > 0 {
		rc.failFirst--
		http.Error(w, "try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.requests...)
}

// TestAlertWebhooks runs two replicas against one namespace and a local
// receiver that verifies signatures: a failed sweep fires the rule,
// the leader alone delivers it (retried after two 500s, one delivery id),
// nothing is sent again while nothing changes, the resolution is sent,
// a test-fire arrives signed; SSRF targets and viewers are refused.
func TestAlertWebhooks(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Alert.Interval = 200 * time.Millisecond
	cfg.Alert.Rules = []alert.Rule{
		{Name: "Backlog", Kind: alert.KindCatchupBacklog, Threshold: 2, Severity: "warning"},
		{Name: "SweepFailed", Kind: alert.KindSweepFailed, Window: time.Hour},
	}
	a := startMigrated(t, cfg)
	b := startMigrated(t, cfg)

	rc := &receiver{t: t, failFirst: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()

	t.Run("refused targets and roles", func(t *testing.T) {
		for url, msg := range map[string]string{
			"http://169.254.169.254/latest/meta-data/": "refused for webhooks",
			"http://[fe80::1]/x":                       "refused for webhooks",
			"file:///etc/passwd":                       "must be http(s)",
		} {
			r := call(t, a, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "bad", "url": url})
			require.Equal(t, http.StatusBadRequest, r.code, url)
			require.Contains(t, errMessage(r), msg, url)
		}
		r := call(t, a, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "x", "url": srv.URL, "rules": []string{"Nope"}})
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Contains(t, errMessage(r), `no rule named "Nope"`)
		viewer := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "alert-viewer", "role": "viewer"})
		vt := viewer.body["data"].(map[string]any)["secret"].(string)
		require.Equal(t, http.StatusForbidden, call(t, a, http.MethodPost, "/api/v1/webhooks", vt, map[string]any{"name": "v", "url": srv.URL}).code)
		require.Equal(t, http.StatusForbidden, call(t, a, http.MethodGet, "/api/v1/webhooks", vt, nil).code)
		require.Equal(t, http.StatusOK, call(t, a, http.MethodGet, "/api/v1/alerts", vt, nil).code)
	})

	r := call(t, b, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "pager", "url": srv.URL + "/hook"})
	require.Equal(t, http.StatusCreated, r.code, r.raw)
	hook := r.body["data"].(map[string]any)
	rc.mu.Lock()
	rc.secret = hook["secret"].(string)
	rc.mu.Unlock()
	require.Equal(t, "alertmanager", hook["format"])
	list := call(t, a, http.MethodGet, "/api/v1/webhooks", adminToken, nil)
	require.NotContains(t, list.raw, rc.secret, "the secret is shown once")

	// A sweep fails (a row as the worker writes it; nothing else in triad
	// touches a failed sweep, unlike the catch-up log, which the leader
	// drains).
	var sweepID int64
	require.NoError(t, ns.Pool().QueryRow(t.Context(), `INSERT INTO sweeps (entity, state, segment_size, trigger, actor, finished_at, error)
		VALUES ('profile', 'failed', 1000, 'api', 'test', now(), 'redis: connection refused') RETURNING id`).Scan(&sweepID))
	began := time.Now()

	var firing []received
	require.Eventually(t, func() bool {
		firing = nil
		for _, x := range rc.snapshot() {
			if x.event == "firing" {
				firing = append(firing, x)
			}
		}
		return len(firing) == 3
	}, 60*time.Second, 50*time.Millisecond, "two 500s then a delivery")
	t.Logf("firing notification delivered %s after the sweep failed (two retries, back-off 1s then 2s)", firing[2].at.Sub(began).Round(time.Millisecond))
	for _, x := range firing {
		require.NoError(t, x.verified)
		require.Equal(t, firing[0].delivery, x.delivery, "retries carry the same delivery id")
	}
	msg := firing[2].body
	require.Equal(t, "4", msg["version"])
	require.Equal(t, "firing", msg["status"])
	require.Equal(t, "pager", msg["receiver"])
	require.Equal(t, `{}:{alertname="SweepFailed"}`, msg["groupKey"])
	alerts := msg["alerts"].([]any)
	require.Len(t, alerts, 1)
	first := alerts[0].(map[string]any)
	require.Equal(t, map[string]any{"alertname": "SweepFailed", "kind": "sweep_failed", "severity": "warning", "entity": "profile",
		"sweep": strconv.FormatInt(sweepID, 10)}, first["labels"])
	require.Contains(t, first["annotations"].(map[string]any)["summary"], "failed: redis: connection refused")

	// Nothing changes: nothing more is sent (several evaluation rounds on
	// two replicas), and the log shows one delivery with three attempts.
	time.Sleep(2 * time.Second)
	require.Len(t, rc.snapshot(), 3, "no duplicate pages from two replicas")
	ds := call(t, a, http.MethodGet, "/api/v1/alerts/deliveries", adminToken, nil).body["data"].([]any)
	require.Len(t, ds, 1)
	d := ds[0].(map[string]any)
	require.Equal(t, "delivered", d["state"])
	require.EqualValues(t, 3, d["attempts"])
	require.EqualValues(t, 204, d["last_status"])

	st := call(t, a, http.MethodGet, "/api/v1/alerts", adminToken, nil).body["data"].(map[string]any)
	require.Len(t, st["rules"], 2)
	as := st["alerts"].([]any)
	require.Len(t, as, 1)
	require.NotEmpty(t, as[0].(map[string]any)["fired_at"])

	// The failure leaves the rule's window: a resolved notification.
	_, err := ns.Pool().Exec(t.Context(), `UPDATE sweeps SET finished_at = now() - interval '2 hours' WHERE id = $1`, sweepID)
	require.NoError(t, err)
	var resolved received
	require.Eventually(t, func() bool {
		for _, x := range rc.snapshot() {
			if x.event == "resolved" {
				resolved = x
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, resolved.verified)
	require.Equal(t, "resolved", resolved.body["status"])
	ra := resolved.body["alerts"].([]any)[0].(map[string]any)
	require.Equal(t, "resolved", ra["status"])
	require.NotEqual(t, "0001-01-01T00:00:00Z", ra["endsAt"])
	time.Sleep(time.Second)
	n := len(rc.snapshot())

	// Test-fire from either replica: delivered at once, signed.
	r = call(t, a, http.MethodPost, "/api/v1/webhooks/pager/test", adminToken, nil)
	require.Equal(t, http.StatusOK, r.code, r.raw)
	require.Equal(t, "delivered", r.body["data"].(map[string]any)["state"])
	got := rc.snapshot()
	require.Len(t, got, n+1)
	last := got[len(got)-1]
	require.Equal(t, "test", last.event)
	require.NoError(t, last.verified)
	require.Equal(t, "TriadTest", last.body["groupLabels"].(map[string]any)["alertname"])
	require.Equal(t, http.StatusNotFound, call(t, a, http.MethodPost, "/api/v1/webhooks/nope/test", adminToken, nil).code)
}

// TestStoreUnreachableAlert stops a private Redis under a running triad:
// the StoreUnreachable rule fires once its "for" has passed (a plain-JSON
// webhook gets it), and resolves when Redis is back.
func TestStoreUnreachableAlert(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	priv := stacktest.StartPrivate(t, "redis")
	cfg := configtest.For(t, ns)
	cfg.Redis.Addr = priv.Endpoints().RedisAddr
	cfg.Alert.Interval = 200 * time.Millisecond
	cfg.Alert.Rules = []alert.Rule{{Name: "StoreUnreachable", Kind: alert.KindStoreUnreachable, For: time.Second, Severity: "critical"}}
	a := startMigrated(t, cfg)
	rc := &receiver{t: t, secret: "store-alert-secret-0123456789"}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := call(t, a, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "chat", "url": srv.URL, "format": "json", "secret": rc.secret})
	require.Equal(t, http.StatusCreated, r.code, r.raw)

	wait := func(event string) received {
		t.Helper()
		var got received
		require.Eventually(t, func() bool {
			for _, x := range rc.snapshot() {
				if x.event == event {
					got = x
					return true
				}
			}
			return false
		}, 60*time.Second, 50*time.Millisecond, "no %s notification", event)
		return got
	}
	priv.Stop(t)
	stopped := time.Now()
	fired := wait("firing")
	t.Logf("measured: StoreUnreachable (for 1s) delivered %s after redis stopped (probe interval 200ms)", time.Since(stopped).Round(time.Millisecond))
	require.NoError(t, fired.verified)
	require.Equal(t, "StoreUnreachable", fired.body["rule"])
	as := fired.body["alerts"].([]any)
	require.Len(t, as, 1)
	require.Equal(t, "redis", as[0].(map[string]any)["labels"].(map[string]any)["store"])
	require.Equal(t, "critical", as[0].(map[string]any)["labels"].(map[string]any)["severity"])

	priv.Start(t)
	restarted := time.Now()
	resolved := wait("resolved")
	t.Logf("measured: resolved notification %s after redis restarted", time.Since(restarted).Round(time.Millisecond))
	require.NoError(t, resolved.verified)
	require.Equal(t, "resolved", resolved.body["alerts"].([]any)[0].(map[string]any)["status"])
	require.NotEmpty(t, resolved.body["alerts"].([]any)[0].(map[string]any)["ends_at"])
}

// TestSilences: a silence mutes the alerts its matchers select and not
// another of the same rule; the preview lists what it would mute; when it
// expires, the leader notices it once and the muted alert is notified.
// Rules carry their runbook URL into the payload.
func TestSilences(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	cfg := configtest.For(t, ns)
	cfg.Alert.Interval = 200 * time.Millisecond
	cfg.Alert.Rules = []alert.Rule{{Name: "SweepFailed", Kind: alert.KindSweepFailed, Window: time.Hour, RunbookURL: "https://runbooks.example.org/sweep-failed"}}
	cfg.Alert.ClassRunbooks = map[string]string{"stale": "https://runbooks.example.org/stale"}
	a := startMigrated(t, cfg)
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	r := call(t, a, http.MethodPost, "/api/v1/webhooks", adminToken, map[string]any{"name": "pager", "url": srv.URL + "/hook"})
	require.Equal(t, http.StatusCreated, r.code, r.raw)
	rc.mu.Lock()
	rc.secret = r.body["data"].(map[string]any)["secret"].(string)
	rc.mu.Unlock()
	viewer := call(t, a, http.MethodPost, "/api/v1/tokens", adminToken, map[string]string{"name": "silence-viewer", "role": "viewer"}).body["data"].(map[string]any)["secret"].(string)

	// Bad silences, and who may make one.
	order := []map[string]any{{"name": "alertname", "value": "SweepFailed"}, {"name": "entity", "value": "order"}}
	for _, bad := range []map[string]any{
		{"matchers": order, "duration": "1h"},                   // no comment
		{"matchers": []any{}, "comment": "x", "duration": "1h"}, // no matcher
		{"matchers": []any{map[string]any{"name": "entity", "value": "(", "regex": true}}, "comment": "x", "duration": "1h"}, // bad regex
		{"matchers": order, "comment": "x", "duration": "-1h"},
	} {
		r := call(t, a, http.MethodPost, "/api/v1/silences", adminToken, bad)
		require.Equal(t, http.StatusBadRequest, r.code, r.raw)
	}
	require.Equal(t, http.StatusForbidden, call(t, a, http.MethodPost, "/api/v1/silences", viewer, map[string]any{"matchers": order, "comment": "x", "duration": "1h"}).code)

	// Silence order's sweep failures for 4 s (the rule and one label).
	r = call(t, a, http.MethodPost, "/api/v1/silences", adminToken, map[string]any{"matchers": order, "comment": "order migration, TICKET-1", "duration": "4s"})
	require.Equal(t, http.StatusCreated, r.code, r.raw)
	silence := r.body["data"].(map[string]any)
	require.Equal(t, "active", silence["state"])
	silenceID := silence["id"]

	// Two sweeps fail, one per entity: one alert each, same rule.
	for _, entity := range []string{"profile", "order"} {
		_, err := ns.Pool().Exec(t.Context(), `INSERT INTO sweeps (entity, state, segment_size, trigger, actor, finished_at, error)
			VALUES ($1, 'failed', 1000, 'api', 'test', now(), 'boom')`, entity)
		require.NoError(t, err)
	}
	firingWith := func(entities ...string) received {
		var got received
		require.Eventually(t, func() bool {
			for _, x := range rc.snapshot() {
				if x.event != "firing" {
					continue
				}
				var es []string
				for _, al := range x.body["alerts"].([]any) {
					es = append(es, al.(map[string]any)["labels"].(map[string]any)["entity"].(string))
				}
				if sameStrings(es, entities) {
					got = x
					return true
				}
			}
			return false
		}, 30*time.Second, 50*time.Millisecond, "a firing notification of %v", entities)
		return got
	}
	first := firingWith("profile")
	require.NoError(t, first.verified)
	ann := first.body["alerts"].([]any)[0].(map[string]any)["annotations"].(map[string]any)
	require.Equal(t, "https://runbooks.example.org/sweep-failed", ann["runbook_url"], "the rule's runbook is in the payload")

	// The alert list names the silence on the muted alert; the preview
	// (a viewer may run it) lists what a silence would mute.
	st := call(t, a, http.MethodGet, "/api/v1/alerts", viewer, nil).body["data"].(map[string]any)
	silencedBy := map[string]any{}
	for _, x := range st["alerts"].([]any) {
		m := x.(map[string]any)
		silencedBy[m["labels"].(map[string]any)["entity"].(string)] = m["silenced_by"]
	}
	require.Equal(t, []any{silenceID}, silencedBy["order"])
	require.Nil(t, silencedBy["profile"])
	p := call(t, a, http.MethodPost, "/api/v1/silences/preview", viewer, map[string]any{"matchers": []any{map[string]any{"name": "entity", "value": "ord.*", "regex": true}}})
	require.Equal(t, http.StatusOK, p.code, p.raw)
	require.Len(t, p.body["data"], 1)
	meta := call(t, a, http.MethodGet, "/api/v1/meta", viewer, nil).body["data"].(map[string]any)
	require.Equal(t, "https://runbooks.example.org/stale", meta["runbooks"].(map[string]any)["classes"].(map[string]any)["stale"])

	// The silence runs out: noticed once, kept and listed as expired, and
	// the alert it muted is notified.
	began := time.Now()
	both := firingWith("order", "profile")
	require.NoError(t, both.verified)
	t.Logf("the muted alert was notified %s after the check began (the silence had 4 s)", time.Since(began).Round(time.Millisecond))
	ss := call(t, a, http.MethodGet, "/api/v1/silences", viewer, nil).body["data"].([]any)
	require.Len(t, ss, 1)
	require.Equal(t, "expired", ss[0].(map[string]any)["state"])
	require.Eventually(t, func() bool {
		ss := call(t, a, http.MethodGet, "/api/v1/silences", viewer, nil).body["data"].([]any)
		return ss[0].(map[string]any)["expire_noticed_at"] != nil
	}, 10*time.Second, 50*time.Millisecond)
	require.Contains(t, call(t, a, http.MethodGet, "/metrics", "", nil).raw, "triad_alert_silences_expired_total 1")

	// Expire early: kept, with who ended it; a second expiry is 404.
	r = call(t, a, http.MethodPost, "/api/v1/silences", adminToken, map[string]any{"matchers": order, "comment": "again", "duration": "1h"})
	require.Equal(t, http.StatusCreated, r.code)
	id := r.body["data"].(map[string]any)["id"]
	e := call(t, a, http.MethodDelete, "/api/v1/silences/"+strconv.FormatFloat(id.(float64), 'f', 0, 64), adminToken, nil)
	require.Equal(t, http.StatusOK, e.code, e.raw)
	require.Equal(t, "expired", e.body["data"].(map[string]any)["state"])
	require.Equal(t, "bootstrap-admin", e.body["data"].(map[string]any)["expired_by"])
	require.Equal(t, http.StatusNotFound, call(t, a, http.MethodDelete, "/api/v1/silences/"+strconv.FormatFloat(id.(float64), 'f', 0, 64), adminToken, nil).code)
}

// sameStrings reports whether a and b hold the same strings in any order.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
