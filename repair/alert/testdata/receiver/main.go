// Command receiver is the demo's webhook receiver (make demo): it adds
// itself to triad as a webhook, verifies the signature of every
// notification it gets, and shows them on a small page
// (http://127.0.0.1:8384/) and as JSON (/received.json).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/triad-dev/triad/repair/alert"
)

type options struct {
	listen, api, tokenFile, name string
}

// notification is one request as received.
type notification struct {
	At       time.Time `json:"at"`
	Delivery string    `json:"delivery"`
	Event    string    `json:"event"` // firing, resolved or test
	Verified bool      `json:"verified"`
	Problem  string    `json:"problem,omitempty"`
	Status   string    `json:"status"`
	Alerts   []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	} `json:"alerts"`
}

type receiver struct {
	mu     sync.Mutex
	secret string
	got    []notification // newest last, at most 500
}

func main() {
	var o options
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8384", "address of the receiver and its page")
	flag.StringVar(&o.api, "api", "http://127.0.0.1:8383", "triad's URL")
	flag.StringVar(&o.tokenFile, "token-file", ".triad/admin-token", "an admin token (to add the webhook)")
	flag.StringVar(&o.name, "name", "demo-receiver", "the webhook's name in triad")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "receiver")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil && ctx.Err() == nil {
		log.Error("stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	token, err := os.ReadFile(o.tokenFile)
	if err != nil {
		return err
	}
	rc := &receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hook", rc.hook)
	mux.HandleFunc("GET /received.json", rc.list)
	mux.HandleFunc("GET /{$}", rc.page)
	srv := &http.Server{Addr: o.listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	// Add the webhook once triad answers (it may still be starting).
	secret, err := register(ctx, o, strings.TrimSpace(string(token)), "http://"+o.listen+"/hook")
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.secret = secret
	rc.mu.Unlock()
	log.Info("receiving", "page", "http://"+o.listen+"/", "webhook", o.name)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// register adds the webhook (replacing one of the same name, whose
// secret this process does not know) and returns its secret.
func register(ctx context.Context, o options, token, url string) (string, error) {
	api := func(method, path string, body any) (int, []byte, error) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, o.api+path, rd)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, b, err
	}
	for {
		code, _, err := api(http.MethodGet, "/api/v1/webhooks", nil)
		if err == nil && code == http.StatusOK {
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
	_, _, _ = api(http.MethodDelete, "/api/v1/webhooks/"+o.name, nil)
	code, b, err := api(http.MethodPost, "/api/v1/webhooks", map[string]any{"name": o.name, "url": url, "send_resolved": true})
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated {
		return "", fmt.Errorf("add webhook: %d %s", code, b)
	}
	var env struct {
		Data struct {
			Secret string `json:"secret"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Data.Secret == "" {
		return "", errors.New("add webhook: no secret in the answer")
	}
	return env.Data.Secret, nil
}

func (rc *receiver) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := notification{At: time.Now(), Delivery: r.Header.Get(alert.DeliveryHeader), Event: r.Header.Get(alert.EventHeader)}
	if err := alert.Verify(rc.secret, r.Header.Get(alert.SignatureHeader), body, time.Now(), 5*time.Minute); err != nil {
		n.Problem = err.Error()
	} else {
		n.Verified = true
	}
	if err := json.Unmarshal(body, &n); err != nil && n.Problem == "" {
		n.Problem = "not JSON: " + err.Error()
	}
	rc.got = append(rc.got, n)
	if len(rc.got) > 500 {
		rc.got = rc.got[len(rc.got)-500:]
	}
	if !n.Verified {
		http.Error(w, n.Problem, http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) snapshot() []notification {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]notification, len(rc.got))
	for i, n := range rc.got {
		out[len(out)-1-i] = n
	}
	return out
}

func (rc *receiver) list(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rc.snapshot())
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>demo webhook receiver</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem}td,th{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.firing{color:#b3261e;font-weight:600}.resolved{color:#1b7f3b;font-weight:600}.bad{color:#b3261e}</style></head>
<body><h1>Demo webhook receiver</h1>
<p>What triad sent to this receiver (newest first; refreshed every 5 s). Each signature is verified with the webhook's secret.</p>
{{if not .}}<p>Nothing yet: alerts arrive when a sweep finds drift above the rule's threshold (DriftRateHigh), and again when it is resolved.</p>{{end}}
<table><thead><tr><th>Received</th><th>Event</th><th>Alerts</th><th>Signature</th></tr></thead><tbody>
{{range .}}<tr><td>{{.At.Format "15:04:05"}}</td><td class="{{.Event}}">{{.Event}}</td><td>
{{range .Alerts}}<div><span class="{{.Status}}">{{.Status}}</span> {{index .Labels "alertname"}} {{index .Labels "entity"}}{{index .Labels "store"}} — {{index .Annotations "summary"}}
{{with index .Annotations "runbook_url"}} <a href="{{.}}">runbook</a>{{end}}</div>{{end}}</td>
<td>{{if .Verified}}verified{{else}}<span class="bad">{{.Problem}}</span>{{end}}</td></tr>{{end}}
</tbody></table></body></html>`))

func (rc *receiver) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, rc.snapshot())
}
