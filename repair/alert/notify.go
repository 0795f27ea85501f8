package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Notification is what one delivery tells a receiver about a group.
type Notification struct {
	Receiver    string
	Status      string // firing or resolved
	GroupKey    string
	GroupLabels map[string]string
	Alerts      []State
	ExternalURL string
}

// amAlert and amMessage are Alertmanager's webhook format (version 4).
type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

type amMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

// jsonAlert and jsonMessage are the plain format.
type jsonAlert struct {
	Status      string            `json:"status"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Value       float64           `json:"value"`
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      *time.Time        `json:"ends_at,omitempty"`
	Fingerprint string            `json:"fingerprint"`
}

type jsonMessage struct {
	Webhook  string      `json:"webhook"`
	Status   string      `json:"status"`
	GroupKey string      `json:"group_key"`
	Rule     string      `json:"rule"`
	URL      string      `json:"url"`
	Alerts   []jsonAlert `json:"alerts"`
}

// common is the label (or annotation) set every alert shares.
func common(alerts []State, of func(State) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range of(alerts[0]) {
		same := true
		for _, a := range alerts[1:] {
			if w, ok := of(a)[k]; !ok || w != v {
				same = false
				break
			}
		}
		if same {
			out[k] = v
		}
	}
	return out
}

// Render encodes n in a webhook format.
func Render(format string, n Notification) ([]byte, error) {
	page := strings.TrimRight(n.ExternalURL, "/") + "/ui/alerts.html"
	switch format {
	case FormatAlertmanager:
		msg := amMessage{Version: "4", GroupKey: n.GroupKey, Status: n.Status, Receiver: n.Receiver, GroupLabels: n.GroupLabels,
			CommonLabels:      common(n.Alerts, func(s State) map[string]string { return s.Labels }),
			CommonAnnotations: common(n.Alerts, func(s State) map[string]string { return s.Annotations }),
			ExternalURL:       n.ExternalURL, Alerts: []amAlert{}}
		for _, a := range n.Alerts {
			x := amAlert{Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.FiredAt.UTC(),
				GeneratorURL: page + "?rule=" + url.QueryEscape(a.Rule), Fingerprint: a.Fingerprint}
			if a.ResolvedAt != nil {
				x.Status, x.EndsAt = "resolved", a.ResolvedAt.UTC()
			}
			msg.Alerts = append(msg.Alerts, x)
		}
		return json.Marshal(msg)
	case FormatJSON:
		msg := jsonMessage{Webhook: n.Receiver, Status: n.Status, GroupKey: n.GroupKey, Rule: n.GroupLabels["alertname"], URL: page, Alerts: []jsonAlert{}}
		for _, a := range n.Alerts {
			x := jsonAlert{Status: "firing", Rule: a.Rule, Labels: a.Labels, Annotations: a.Annotations, Value: a.Value,
				StartsAt: a.FiredAt.UTC(), Fingerprint: a.Fingerprint}
			if a.ResolvedAt != nil {
				t := a.ResolvedAt.UTC()
				x.Status, x.EndsAt = "resolved", &t
			}
			msg.Alerts = append(msg.Alerts, x)
		}
		return json.Marshal(msg)
	}
	return nil, fmt.Errorf("%w: format %q: want alertmanager or json", ErrInvalid, format)
}

// Headers of a delivery. Each is signed twice over: triad's own scheme
// (SignatureHeader) and the Standard Webhooks scheme (webhook-id,
// webhook-timestamp, webhook-signature; https://www.standardwebhooks.com),
// which receivers verify with the libraries they already have.
const (
	SignatureHeader = "X-Triad-Signature" // t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">[,v1=… with the previous secret]
	DeliveryHeader  = "X-Triad-Delivery"  // the delivery's id: the same on every retry (receivers de-duplicate by it)
	EventHeader     = "X-Triad-Event"     // firing, resolved or test

	StandardIDHeader        = "webhook-id"        // the delivery's id, as DeliveryHeader
	StandardTimestampHeader = "webhook-timestamp" // unix seconds
	StandardSignatureHeader = "webhook-signature" // v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">[ v1,… with the previous secret]
)

// NewSecret is a generated webhook secret in the Standard Webhooks form:
// "whsec_" and the base64 of 24 random bytes.
func NewSecret() string {
	b := make([]byte, 24)
	_, _ = crand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// StandardKey is the HMAC key a secret stands for in the Standard Webhooks
// scheme: the bytes after "whsec_", base64-decoded, as the scheme's
// libraries read it; a secret not of that form (one an operator chose)
// keys with its own bytes. StandardSecret is that key in the form those
// libraries take.
func StandardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if k, err := base64.StdEncoding.DecodeString(rest); err == nil && len(k) > 0 {
			return k
		}
	}
	return []byte(secret)
}

// StandardSecret is secret in the form Standard Webhooks libraries take.
func StandardSecret(secret string) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(StandardKey(secret))
}

// Sign returns the signature header value of body at t with secret.
func Sign(secret string, t time.Time, body []byte) string {
	return signTriad([]string{secret}, t, body)
}

// signTriad is SignatureHeader's value with one v1 per secret.
func signTriad(secrets []string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	sig := "t=" + ts
	for _, s := range secrets {
		sig += ",v1=" + triadMAC(s, ts, body)
	}
	return sig
}

func triadMAC(secret, ts string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// SignStandard returns the webhook-signature value of the message id's
// body at t with each secret (space-separated, as the scheme wants one
// per active key).
func SignStandard(secrets []string, id string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var sigs []string
	for _, s := range secrets {
		mac := hmac.New(sha256.New, StandardKey(s))
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// signingSecrets are w's secrets that sign at t: its own, and the one
// before the last rotation until its grace ends.
func signingSecrets(w Webhook, t time.Time) []string {
	out := []string{w.Secret}
	if w.PreviousSecret != "" && w.PreviousUntil != nil && t.Before(*w.PreviousUntil) {
		out = append(out, w.PreviousSecret)
	}
	return out
}

// Verify checks a signature header against body: the HMAC must match and
// its timestamp be within tolerance of now (replays of old deliveries
// fail). Receivers written in Go can use it as is.
func Verify(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("signature header must be t=<unix>,v1=<hex>")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("signature timestamp %s is outside the %s tolerance", time.Unix(sec, 0).UTC().Format(time.RFC3339), tolerance)
	}
	want := triadMAC(secret, ts, body)
	for _, sig := range sigs { // one per active secret while a rotation's grace lasts
		if hmac.Equal([]byte(want), []byte(sig)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}

// Guard decides which addresses webhooks may reach.
type Guard struct {
	allow, deny []netip.Prefix
}

// DefaultDenied are refused unless allow-listed:
//   - link-local, where most cloud metadata services answer
//     (169.254.169.254: AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack;
//     169.254.0.23: Tencent), in IPv4 and IPv6;
//   - the metadata and platform addresses that are not link-local: AWS's
//     IPv6 fd00:ec2::254, Alibaba's 100.100.100.200, Azure's wire server
//     168.63.129.16, Oracle's 192.0.0.192 (in the IETF's 192.0.0.0/24);
//   - the unspecified, broadcast and multicast addresses;
//   - IPv6 prefixes that carry an IPv4 address to somewhere else: NAT64
//     (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16), Teredo (2001::/32).
//
// IPv4-mapped and IPv4-compatible IPv6 addresses are checked as the IPv4
// address they hold, and a zone (fe80::1%eth0) is ignored.
var DefaultDenied = []string{
	"169.254.0.0/16", "fe80::/10", "0.0.0.0/8", "::/128", "255.255.255.255/32",
	"224.0.0.0/4", "ff00::/8", "fd00:ec2::254/128", "100.100.100.200/32",
	"168.63.129.16/32", "192.0.0.0/24",
	"64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32",
}

// DeniedHosts are metadata service names refused whatever they resolve to.
var DeniedHosts = []string{"metadata.google.internal", "metadata.goog", "metadata", "metadata.tencentyun.com",
	"instance-data", "instance-data.ec2.internal", "metadata.azure.com"}

// NewGuard builds a guard from the configuration's CIDR lists (already
// validated).
func NewGuard(allow, deny []string) Guard {
	var g Guard
	for _, s := range allow {
		g.allow = append(g.allow, netip.MustParsePrefix(s))
	}
	for _, s := range append(append([]string{}, DefaultDenied...), deny...) {
		g.deny = append(g.deny, netip.MustParsePrefix(s))
	}
	return g
}

// Check refuses an address in a denied range unless allow-listed.
func (g Guard) Check(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	// IPv4-compatible (::a.b.c.d, deprecated but routed by some stacks):
	// judge the IPv4 address; :: and ::1 keep their IPv6 meaning.
	if ip.Is6() {
		b := ip.As16()
		if [12]byte(b[:12]) == [12]byte{} && (b[12] != 0 || b[13] != 0 || b[14] != 0 || b[15] > 1) {
			ip = netip.AddrFrom4([4]byte(b[12:]))
		}
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range g.deny {
		if p.Contains(ip) {
			return fmt.Errorf("address %s is in %s, refused for webhooks (alert.allow_cidrs can allow it)", ip, p)
		}
	}
	return nil
}

// CheckURL validates a webhook URL and the addresses its host resolves
// to now (the dialer checks again at every connection).
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: url: %w", ErrInvalid, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%w: url must be http(s)://host[:port]/path, got %q", ErrInvalid, raw)
	}
	if u.User != nil {
		return fmt.Errorf("%w: url must not carry credentials (receivers verify the signature instead)", ErrInvalid)
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	for _, h := range DeniedHosts {
		if strings.EqualFold(host, h) {
			return fmt.Errorf("%w: %s is a cloud metadata service", ErrInvalid, host)
		}
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return fmt.Errorf("%w: resolve %s: %w", ErrInvalid, host, err)
		}
		ips = addrs
	}
	for _, ip := range ips {
		if err := g.Check(ip); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, host, err)
		}
	}
	return nil
}

// Sender posts deliveries through an HTTP client whose dialer applies
// the guard to every address it connects to (DNS answers included, so a
// name re-pointed at a metadata address after the URL was checked is
// still refused), without proxies and without following redirects.
type Sender struct {
	guard     Guard
	client    *http.Client
	userAgent string
	now       func() time.Time
	jitter    func() float64
}

// NewSender returns a sender; timeout bounds each attempt.
func NewSender(g Guard, timeout time.Duration, userAgent string) *Sender {
	d := &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		return g.Check(ap.Addr())
	}}
	return &Sender{
		guard: g,
		client: &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext, MaxIdleConnsPerHost: 2, IdleConnTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errors.New("webhooks do not follow redirects")
			},
		},
		userAgent: userAgent, now: time.Now,
		jitter: func() float64 { return 0.8 + 0.4*rand.Float64() },
	}
}

// Origin is a webhook URL without its path, query and credentials
// (which may carry tokens): what logs and non-admins may see.
func Origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(webhook url)"
	}
	return u.Scheme + "://" + u.Host
}

// Send posts d to w once; it returns the HTTP status (0 when none came)
// and an error unless the answer was 2xx.
func (s *Sender) Send(ctx context.Context, w Webhook, d Delivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	event := d.Status
	if d.Test {
		event = "test"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	now, id := s.now(), strconv.FormatInt(d.ID, 10)
	secrets := signingSecrets(w, now)
	req.Header.Set(SignatureHeader, signTriad(secrets, now, d.Payload))
	req.Header.Set(DeliveryHeader, id)
	req.Header.Set(EventHeader, event)
	// Standard Webhooks' headers are lower case in the specification;
	// net/http would canonicalise them through Set.
	req.Header[StandardIDHeader] = []string{id}
	req.Header[StandardTimestampHeader] = []string{strconv.FormatInt(now.Unix(), 10)}
	req.Header[StandardSignatureHeader] = []string{SignStandard(secrets, id, now, d.Payload)}
	res, err := s.client.Do(req)
	if err != nil {
		// net/http quotes the whole URL, whose path or query may hold the
		// receiver's token; the error goes to the delivery log, which
		// viewers read, and to the server log. Keep only its origin.
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, fmt.Errorf("%s %s: %w", ue.Op, Origin(w.URL), ue.Err)
		}
		return 0, err
	}
	defer res.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(res.Body, 256))
	if res.StatusCode/100 != 2 {
		return res.StatusCode, fmt.Errorf("answered %d: %s", res.StatusCode, strings.TrimSpace(string(snippet)))
	}
	return res.StatusCode, nil
}
