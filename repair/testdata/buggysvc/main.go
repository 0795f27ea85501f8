// Command buggysvc is the demo's "buggy service" (make demo): another
// team's service that shares triad's stores and writes to them the way
// real services go wrong, through each store's own API, never through
// triad.
//
// Every tick it updates a few profiles correctly, through triad's API
// (POST /api/v1/profiles/batch: traced ingest batches). During a burst it
// then drifts some of the profiles it just wrote, one of each kind:
//
//	redis_stale           a cache writer that raced: HSET of the previous version
//	redis_field           a cache writer that patches one field (HSET props)
//	redis_wrong_type      a cache writer that stores JSON strings (SET, where a hash belongs)
//	es_partial_update     a search admin's _update of one field
//	es_delete             a cleanup job that deletes a document
//	pg_update_behind      a service that updates Postgres and tells no one (UPDATE … version + 1)
//
// Bursts alternate with quiet spells, so scheduled sweeps find drift,
// repair it, and then find none: the demo's alert fires and resolves.
// What it did is written to -report (JSON) after every tick.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// kinds of drift, with the (store, class) a sweep finds for each.
var kinds = []struct{ name, store, class string }{
	{"redis_stale", "redis", "stale"},
	{"redis_field", "redis", "field_mismatch"},
	{"redis_wrong_type", "redis", "corrupt"},
	{"es_partial_update", "elasticsearch", "field_mismatch"},
	{"es_delete", "elasticsearch", "missing"},
	{"pg_update_behind", "elasticsearch", "stale"},
}

type options struct {
	api, tokenFile, pg, redisAddr, redisPrefix, es, index, report string
	every, burst, quiet                                           time.Duration
	writes                                                        int
}

// profile is one row as the service read it from Postgres.
type profile struct {
	ID                                        int64
	Version                                   int64
	UpdatedAt                                 *time.Time
	Tags, Interests, Devices, Behavior, Props string
}

// report is what the service did, for the demo's check and for people.
type report struct {
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	Ticks   int       `json:"ticks"`
	Written int       `json:"written"` // profiles updated through triad's API
	// Drifts counts each kind made; Expect names what a sweep finds for
	// it (store/class); Last is the last key of each kind.
	Drifts map[string]int    `json:"drifts"`
	Expect map[string]string `json:"expect"`
	Last   map[string]string `json:"last"`
	Errors int               `json:"errors"`
}

func main() {
	var o options
	flag.StringVar(&o.api, "api", "http://127.0.0.1:8383", "triad's URL")
	flag.StringVar(&o.tokenFile, "token-file", ".triad/admin-token", "a token that may write profiles (operator)")
	flag.StringVar(&o.pg, "pg", "postgres://triad@127.0.0.1:15432/triad?sslmode=disable", "Postgres URL")
	flag.StringVar(&o.redisAddr, "redis", "127.0.0.1:16379", "Redis address")
	flag.StringVar(&o.redisPrefix, "redis-prefix", "", "Redis key prefix (profile_cache.key_prefix)")
	flag.StringVar(&o.es, "es", "http://127.0.0.1:19200", "Elasticsearch URL")
	flag.StringVar(&o.index, "index", "profiles", "Elasticsearch alias of profiles")
	flag.StringVar(&o.report, "report", ".triad/buggysvc.json", "where to write what it did")
	flag.DurationVar(&o.every, "every", 10*time.Second, "time between ticks")
	flag.DurationVar(&o.burst, "burst", 60*time.Second, "how long drift is made")
	flag.DurationVar(&o.quiet, "quiet", 150*time.Second, "how long no drift is made after a burst")
	flag.IntVar(&o.writes, "writes", 12, "profiles updated through triad per tick")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "buggysvc")
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
	pool, err := pgxpool.New(ctx, o.pg)
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb := redis.NewClient(&redis.Options{Addr: o.redisAddr})
	defer rdb.Close()
	s := &service{o: o, token: strings.TrimSpace(string(token)), pool: pool, rdb: rdb, log: log,
		http: &http.Client{Timeout: 10 * time.Second},
		rep:  report{Started: time.Now().UTC(), Drifts: map[string]int{}, Expect: map[string]string{}, Last: map[string]string{}}}
	for _, k := range kinds {
		s.rep.Expect[k.name] = k.store + "/" + k.class
	}
	log.Info("started", "every", o.every, "burst", o.burst, "quiet", o.quiet)
	t := time.NewTicker(o.every)
	defer t.Stop()
	for {
		if err := s.tick(ctx); err != nil {
			s.rep.Errors++
			log.Warn("tick", "err", err)
		}
		s.save()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type service struct {
	o     options
	token string
	pool  *pgxpool.Pool
	rdb   *redis.Client
	http  *http.Client
	log   *slog.Logger
	rep   report
}

// bursting is whether now is in a burst (cycles of burst then quiet,
// from the start).
func (s *service) bursting() bool {
	cycle := s.o.burst + s.o.quiet
	return time.Since(s.rep.Started)%cycle < s.o.burst
}

func (s *service) tick(ctx context.Context) error {
	s.rep.Ticks++
	rows, err := s.sample(ctx, s.o.writes)
	if err != nil {
		return fmt.Errorf("read profiles: %w", err)
	}
	if err := s.write(ctx, rows); err != nil {
		return fmt.Errorf("write through triad: %w", err)
	}
	s.rep.Written += len(rows)
	if !s.bursting() || len(rows) < len(kinds) {
		return nil
	}
	// Let the pipeline reach the derived stores, then go wrong.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	for i, k := range kinds {
		p := rows[i]
		key := strconv.FormatInt(p.ID, 10)
		if err := s.drift(ctx, k.name, p); err != nil {
			s.rep.Errors++
			s.log.Warn("drift", "kind", k.name, "user", p.ID, "err", err)
			continue
		}
		s.rep.Drifts[k.name]++
		s.rep.Last[k.name] = key
		s.log.Info("drift", "kind", k.name, "user", p.ID, "expect", k.store+"/"+k.class)
	}
	return nil
}

// sample reads n random live profiles, as the service's own reads would.
func (s *service) sample(ctx context.Context, n int) ([]profile, error) {
	rows, err := s.pool.Query(ctx, `SELECT user_id, version, updated_at, tags::text, interests::text, devices::text, behavior::text, props::text
		FROM profiles WHERE NOT deleted ORDER BY random() LIMIT $1`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []profile
	for rows.Next() {
		var p profile
		if err := rows.Scan(&p.ID, &p.Version, &p.UpdatedAt, &p.Tags, &p.Interests, &p.Devices, &p.Behavior, &p.Props); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// write updates the profiles correctly, through triad: the next version,
// with props.last_seen set.
func (s *service) write(ctx context.Context, rows []profile) error {
	var body bytes.Buffer
	now := time.Now().UTC()
	for _, p := range rows {
		var props map[string]string
		if err := json.Unmarshal([]byte(p.Props), &props); err != nil || props == nil {
			props = map[string]string{}
		}
		props["last_seen"] = now.Format(time.RFC3339)
		line, err := json.Marshal(map[string]any{"user_id": p.ID, "version": p.Version + 1, "updated_at": now.Format(time.RFC3339Nano),
			"tags": json.RawMessage(p.Tags), "interests": json.RawMessage(p.Interests), "devices": json.RawMessage(p.Devices),
			"behavior": json.RawMessage(p.Behavior), "props": props})
		if err != nil {
			return err
		}
		body.Write(line)
		body.WriteByte('\n')
	}
	return s.call(ctx, http.MethodPost, s.o.api+"/api/v1/profiles/batch", "Bearer "+s.token, "application/x-ndjson", &body)
}

// drift makes one kind of drift on p (read before the update through
// triad, so p.Version is the previous version now).
func (s *service) drift(ctx context.Context, kind string, p profile) error {
	id := strconv.FormatInt(p.ID, 10)
	key := s.o.redisPrefix + "profile:" + id
	switch kind {
	case "redis_stale", "redis_field":
		// HSET on a key that is gone would make half a hash: only patch
		// one that is there, as a careful cache writer would.
		n, err := s.rdb.Exists(ctx, key).Result()
		if err != nil || n == 0 {
			return fmt.Errorf("key %s not cached (%v)", key, err)
		}
		if kind == "redis_stale" {
			// The previous version, as a writer that raced would leave it
			// (Postgres's jsonb text is the cache's canonical form).
			return s.rdb.HSet(ctx, key, "v", strconv.FormatInt(p.Version, 10), "tags", p.Tags).Err()
		}
		return s.rdb.HSet(ctx, key, "props", `{"city": "Atlantis"}`).Err()
	case "redis_wrong_type":
		doc, _ := json.Marshal(map[string]any{"user_id": p.ID, "version": p.Version + 1, "tags": json.RawMessage(p.Tags)})
		return s.rdb.Set(ctx, key, doc, time.Hour).Err()
	case "es_partial_update":
		return s.call(ctx, http.MethodPost, s.o.es+"/"+s.o.index+"/_update/"+id, "", "application/json",
			strings.NewReader(`{"doc": {"tags": ["edited-by-search-admin"]}}`))
	case "es_delete":
		return s.call(ctx, http.MethodDelete, s.o.es+"/"+s.o.index+"/_doc/"+id, "", "", nil)
	case "pg_update_behind":
		_, err := s.pool.Exec(ctx, `UPDATE profiles SET props = props || '{"plan": "gold"}', version = version + 1 WHERE user_id = $1`, p.ID)
		return err
	}
	return fmt.Errorf("unknown kind %q", kind)
}

func (s *service) call(ctx context.Context, method, url, auth, contentType string, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, url, res.Status, msg)
	}
	return nil
}

// save writes the report (whole, then renamed: readers never see half).
func (s *service) save() {
	s.rep.Updated = time.Now().UTC()
	b, _ := json.MarshalIndent(s.rep, "", "  ")
	tmp := s.o.report + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err == nil {
		_ = os.Rename(tmp, s.o.report)
	}
}
