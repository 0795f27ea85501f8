package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultConfigValid(t *testing.T) {
	require.NoError(t, DefaultConfig().Validate())
	c := DefaultConfig()
	c.Rules = append(c.Rules, Rule{Name: "DriftRateHigh", Kind: KindDriftRate}, Rule{Name: "x y", Kind: "nope"},
		Rule{Name: "NoWindow", Kind: KindRepairFailures})
	c.AllowCIDRs = []string{"10.0.0.0/33"}
	err := c.Validate()
	require.ErrorContains(t, err, `name "DriftRateHigh" used twice`)
	require.ErrorContains(t, err, `kind "nope"`)
	require.ErrorContains(t, err, "kind repair_failures needs a window")
	require.ErrorContains(t, err, "alert.allow_cidrs[0]")
}

func TestEvaluate(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	e := NewEvaluator(DefaultRules())
	f := Facts{
		Now: now,
		LastSweeps: []SweepFact{
			{ID: 7, Entity: "profile", State: "done", Records: 100000, Findings: 500}, // 0.5%: fires
			{ID: 8, Entity: "order", State: "done", Records: 100000, Findings: 10},    // 0.01%: below 0.1%
		},
		Sweeps: []SweepFact{
			{ID: 9, Entity: "profile", State: "failed", Error: "redis: connection refused", FinishedAt: now.Add(-time.Minute)},
			{ID: 10, Entity: "order", State: "failed", FinishedAt: now.Add(-2 * time.Hour)}, // outside the 1h window
			{ID: 11, Entity: "order", State: "running", Stuck: true},
			{ID: 12, Entity: "profile", State: "running", Error: "range 0: redis: i/o timeout (failure 2; retrying at ...)"},
		},
		RepairFailures: map[time.Duration]map[string]int64{15 * time.Minute: {"profile": 3}},
		StoresDown:     map[string]time.Time{"redis": now.Add(-time.Minute)},
		StoresDegraded: map[string]StoreHealth{"elasticsearch": {Health: "yellow", Note: "2 nodes, 3 shards unassigned", Since: now.Add(-10 * time.Minute)}},
		Catchup:        map[string]int64{"elasticsearch": 20000, "redis": 5},
		TraceRefused:   100,
	}
	byRule := map[string][]Active{}
	for _, a := range e.Evaluate(f) {
		byRule[a.Rule] = append(byRule[a.Rule], a)
	}
	require.Len(t, byRule["DriftRateHigh"], 1)
	require.Equal(t, "profile", byRule["DriftRateHigh"][0].Labels["entity"])
	require.InDelta(t, 0.005, byRule["DriftRateHigh"][0].Value, 1e-9)
	require.Len(t, byRule["SweepFailed"], 1)
	require.Equal(t, "9", byRule["SweepFailed"][0].Labels["sweep"])
	require.Contains(t, byRule["SweepFailed"][0].Annotations["summary"], "connection refused")
	require.Len(t, byRule["SweepStuck"], 1)
	require.Len(t, byRule["SweepRangeFailing"], 1)
	require.Equal(t, "12", byRule["SweepRangeFailing"][0].Labels["sweep"])
	require.Contains(t, byRule["SweepRangeFailing"][0].Annotations["summary"], "i/o timeout")
	require.Len(t, byRule["RepairsFailing"], 1)
	require.Equal(t, "critical", byRule["RepairsFailing"][0].Labels["severity"])
	require.Len(t, byRule["StoreUnreachable"], 1)
	require.Equal(t, "redis", byRule["StoreUnreachable"][0].Labels["store"])
	require.Len(t, byRule["StoreDegraded"], 1)
	require.Equal(t, map[string]string{"alertname": "StoreDegraded", "kind": KindStoreDegraded, "severity": "warning", "store": "elasticsearch", "health": "yellow"},
		byRule["StoreDegraded"][0].Labels)
	require.Contains(t, byRule["StoreDegraded"][0].Annotations["summary"], "3 shards unassigned")
	require.Equal(t, 600.0, byRule["StoreDegraded"][0].Value, "seconds degraded")
	require.Len(t, byRule["CatchupBacklogGrowing"], 1)
	require.Equal(t, "elasticsearch", byRule["CatchupBacklogGrowing"][0].Labels["store"])
	require.Empty(t, byRule["TraceIngestRejecting"], "one observation of a counter has no increase")

	// The refusal counter grows by 40 within the window: fires; then it
	// stays flat for longer than the window: resolves.
	f.TraceRefused, f.Now = 140, now.Add(time.Minute)
	got := e.Evaluate(f)
	var inc float64
	for _, a := range got {
		if a.Rule == "TraceIngestRejecting" {
			inc = a.Value
		}
	}
	require.Equal(t, 40.0, inc)
	f.Now = now.Add(10 * time.Minute)
	for _, a := range e.Evaluate(f) {
		require.NotEqual(t, "TraceIngestRejecting", a.Rule)
	}
	// A counter reset (a restarted receiver) counts from zero.
	f.TraceRefused, f.Now = 3, now.Add(11*time.Minute)
	inc = 0
	for _, a := range e.Evaluate(f) {
		if a.Rule == "TraceIngestRejecting" {
			inc = a.Value
		}
	}
	require.Equal(t, 3.0, inc)
}

func TestFingerprintIsLabelOrderFree(t *testing.T) {
	a := Fingerprint(map[string]string{"alertname": "X", "store": "redis"})
	b := Fingerprint(map[string]string{"store": "redis", "alertname": "X"})
	require.Equal(t, a, b)
	require.NotEqual(t, a, Fingerprint(map[string]string{"alertname": "X", "store": "elasticsearch"}))
}

func TestRenderAlertmanager(t *testing.T) {
	fired := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	ended := fired.Add(time.Minute)
	alerts := []State{
		{Fingerprint: "a", Rule: "StoreUnreachable", Labels: map[string]string{"alertname": "StoreUnreachable", "store": "redis", "severity": "critical"},
			Annotations: map[string]string{"summary": "redis down"}, FiredAt: &fired},
		{Fingerprint: "b", Rule: "StoreUnreachable", Labels: map[string]string{"alertname": "StoreUnreachable", "store": "elasticsearch", "severity": "critical"},
			Annotations: map[string]string{"summary": "es down"}, FiredAt: &fired, ResolvedAt: &ended},
	}
	body, err := Render(FormatAlertmanager, Notification{Receiver: "pager", Status: "firing", GroupKey: groupKey("StoreUnreachable"),
		GroupLabels: map[string]string{"alertname": "StoreUnreachable"}, Alerts: alerts, ExternalURL: "http://triad:8383"})
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	require.Equal(t, "4", m["version"])
	require.Equal(t, `{}:{alertname="StoreUnreachable"}`, m["groupKey"])
	require.Equal(t, "firing", m["status"])
	require.Equal(t, "pager", m["receiver"])
	require.Equal(t, map[string]any{"alertname": "StoreUnreachable", "severity": "critical"}, m["commonLabels"])
	require.Equal(t, map[string]any{}, m["commonAnnotations"])
	as := m["alerts"].([]any)
	require.Len(t, as, 2)
	first, second := as[0].(map[string]any), as[1].(map[string]any)
	require.Equal(t, "firing", first["status"])
	require.Equal(t, "0001-01-01T00:00:00Z", first["endsAt"], "Alertmanager's zero endsAt for a firing alert")
	require.Equal(t, "2026-12-01T08:00:00Z", first["startsAt"])
	require.Equal(t, "resolved", second["status"])
	require.Equal(t, "2026-12-01T08:01:00Z", second["endsAt"])
	require.Equal(t, "http://triad:8383/ui/alerts.html?rule=StoreUnreachable", first["generatorURL"])

	body, err = Render(FormatJSON, Notification{Receiver: "chat", Status: "resolved", GroupKey: "g", GroupLabels: map[string]string{"alertname": "X"}, Alerts: alerts[1:]})
	require.NoError(t, err)
	require.Contains(t, string(body), `"status":"resolved"`)
	require.Contains(t, string(body), `"ends_at":"2026-12-01T08:01:00Z"`)
	_, err = Render("xml", Notification{})
	require.ErrorIs(t, err, ErrInvalid)
}

func TestSignAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"status":"firing"}`)
	sig := Sign("s3cret", now, body)
	require.Regexp(t, `^t=1800000000,v1=[0-9a-f]{64}$`, sig)
	require.NoError(t, Verify("s3cret", sig, body, now.Add(time.Minute), 5*time.Minute))
	require.ErrorContains(t, Verify("other", sig, body, now, 5*time.Minute), "does not match")
	require.ErrorContains(t, Verify("s3cret", sig, []byte(`{"status":"resolved"}`), now, 5*time.Minute), "does not match")
	require.ErrorContains(t, Verify("s3cret", sig, body, now.Add(time.Hour), 5*time.Minute), "outside")
	require.Error(t, Verify("s3cret", "garbage", body, now, time.Minute))
}

func TestGuard(t *testing.T) {
	g := NewGuard(nil, []string{"10.9.0.0/16"})
	for _, ip := range []string{"169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0", "100.100.100.200", "fd00:ec2::254", "10.9.1.1", "239.1.1.1"} {
		require.Error(t, g.Check(netip.MustParseAddr(ip)), ip)
	}
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "192.168.1.1", "8.8.8.8", "::1"} {
		require.NoError(t, g.Check(netip.MustParseAddr(ip)), ip)
	}
	require.NoError(t, NewGuard([]string{"169.254.10.0/24"}, nil).Check(netip.MustParseAddr("169.254.10.5")), "allow-listed")

	ctx := context.Background()
	require.NoError(t, g.CheckURL(ctx, "http://127.0.0.1:9000/hook"))
	for raw, msg := range map[string]string{
		"http://169.254.169.254/latest/meta-data":         "refused for webhooks",
		"http://metadata.google.internal/computeMetadata": "cloud metadata",
		"ftp://example.org/":                              "must be http(s)",
		"http://user:pw@127.0.0.1/":                       "credentials",
		"http://[fe80::1]:80/":                            "refused",
		"/relative":                                       "must be http(s)",
	} {
		err := g.CheckURL(ctx, raw)
		require.ErrorIs(t, err, ErrInvalid, raw)
		require.ErrorContains(t, err, msg, raw)
	}
}

// TestGuardBypassCorpus: the forms SSRF filters are known to miss
// (OWASP's SSRF prevention cheat sheet, PayloadsAllTheThings' SSRF list)
// are refused, as addresses, as URLs and at dial time.
func TestGuardBypassCorpus(t *testing.T) {
	g := NewGuard(nil, nil)
	for _, ip := range []string{
		"fe80::1%eth0", "fe80::a9fe:a9fe%25lo", // zones
		"::ffff:169.254.169.254", "::ffff:a9fe:a9fe", // IPv4-mapped
		"::169.254.169.254", "::a9fe:a9fe", "::100.100.100.200", // IPv4-compatible
		"64:ff9b::169.254.169.254", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", // NAT64
		"2002:a9fe:a9fe::1",                                                                // 6to4 of 169.254.169.254
		"2001:0:4136:e378:8000:63bf:3fff:fdd2",                                             // Teredo
		"fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192", "169.254.0.23", // AWS v6, Alibaba, Azure, Oracle, Tencent
		"0.0.0.0", "::", "255.255.255.255", "ff02::1", "224.0.0.251",
	} {
		ip = strings.Replace(ip, "%25", "%", 1)
		require.Error(t, g.Check(netip.MustParseAddr(ip)), ip)
	}
	for _, ip := range []string{"::1", "127.0.0.1", "2a00:1450:4001:80b::200e", "93.184.216.34"} {
		require.NoError(t, g.Check(netip.MustParseAddr(ip)), ip)
	}
	ctx := context.Background()
	for _, raw := range []string{
		"http://[fe80::1%25eth0]:80/", "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::a9fe:a9fe]/",
		"http://[::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::]/", "http://169.254.169.254./latest",
		"http://2852039166/", "http://0251.0376.0251.0376/", "http://0xa9fea9fe/", "http://169.254.43518/",
		"http://metadata.google.internal./", "http://METADATA.GOOGLE.INTERNAL/", "http://metadata/", "http://instance-data/",
	} {
		require.ErrorIs(t, g.CheckURL(ctx, raw), ErrInvalid, raw)
	}
	// At dial time, whatever the URL check said: a zone-scoped link-local
	// address is refused before a packet is sent.
	s := NewSender(g, time.Second, "test")
	_, err := s.Send(ctx, Webhook{URL: "http://[fe80::1%25lo]:9/hook", Secret: "k"}, Delivery{ID: 1, Payload: []byte(`{}`)})
	require.ErrorContains(t, err, "refused for webhooks")

	// A failed delivery's error (shown to viewers in the delivery log)
	// names the receiver's origin, never its path or query.
	_, err = s.Send(ctx, Webhook{URL: "http://127.0.0.1:1/hooks/T0KEN-in-path?token=s3cr3t", Secret: "k"}, Delivery{ID: 2, Payload: []byte(`{}`)})
	require.ErrorContains(t, err, "http://127.0.0.1:1")
	require.NotContains(t, err.Error(), "T0KEN")
	require.NotContains(t, err.Error(), "s3cr3t")
}

func TestBackoff(t *testing.T) {
	require.Equal(t, time.Second, backoff(1, time.Minute, 1))
	require.Equal(t, 8*time.Second, backoff(4, time.Minute, 1))
	require.Equal(t, time.Minute, backoff(30, time.Minute, 1), "capped")
	require.Equal(t, 1200*time.Millisecond, backoff(1, time.Minute, 1.2))
}

// TestSenderChecksEveryConnection: the dialer refuses a denied address
// even when the URL was never checked (a name re-pointed after
// creation), and redirects are not followed.
func TestSenderChecksEveryConnection(t *testing.T) {
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
			return
		}
		require.NoError(t, Verify("k", r.Header.Get(SignatureHeader), readAll(t, r), time.Now(), time.Minute))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	d := Delivery{ID: 5, Status: "firing", Payload: []byte(`{}`)}
	ok := NewSender(NewGuard(nil, nil), time.Second, "triad/test")
	code, err := ok.Send(t.Context(), Webhook{URL: srv.URL + "/hook", Secret: "k"}, d)
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, code)
	_, err = ok.Send(t.Context(), Webhook{URL: srv.URL + "/redirect", Secret: "k"}, d)
	require.ErrorContains(t, err, "do not follow redirects")

	denied := NewSender(NewGuard(nil, []string{"127.0.0.0/8"}), time.Second, "triad/test")
	before := hits
	_, err = denied.Send(t.Context(), Webhook{URL: srv.URL + "/hook", Secret: "k"}, d)
	require.ErrorContains(t, err, "refused for webhooks")
	require.Equal(t, before, hits, "no request reached the server")
}

func readAll(t *testing.T, r *http.Request) []byte {
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return b
}
