package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Loss is a sign that Redis lost data: it restarted (a new run_id; in a
// cluster, a master restarted or a replica took over), or
// the watch's marker key is gone (the database was flushed or replaced).
type Loss struct {
	At     time.Time
	Reason string // "restart" or "flushed"
	// Keys is the database's key count now (DBSIZE; shared with whatever
	// else uses it: for the message, never for the decision).
	Keys int64
}

func (l Loss) String() string {
	if l.Reason == "restart" {
		return fmt.Sprintf("Redis restarted (new run_id); its database holds %d keys", l.Keys)
	}
	return fmt.Sprintf("the watch's marker key is gone (the database was flushed or replaced); it holds %d keys", l.Keys)
}

// Watch notices that Redis lost triad's data: a restart (a Redis without
// persistence, or with an fsync policy that lost the last second, comes
// back with less than triad wrote), or a flush or restore, which removes
// a marker key the watch keeps (no TTL) beside triad's keys. The key
// count is not used: in a database other services share, their deletes
// and expiries would read as losses. Deletes of triad's own keys are
// drift, which sweeps find. Not safe for concurrent use (one leader job
// drives it); several leaders in turn share the marker.
type Watch struct {
	rdb      goredis.UniversalClient
	marker   string
	baseline Baseline
	runID    string
	token    string
	seen     bool
	// before is the look a reported loss was judged against, kept for
	// Retry.
	before struct{ runID, token string }
}

// Baseline keeps the watch's last look (run_id and marker token) where the
// next leader's watch finds it, so that a restart or flush while
// leadership changes hands is still compared with what was seen before.
// Implementations are safe for concurrent use.
type Baseline interface {
	// Load returns the last look saved; ok is false when there is none.
	Load(ctx context.Context) (runID, token string, ok bool, err error)
	// Save records a look.
	Save(ctx context.Context, runID, token string) error
}

// NewWatch returns a watch whose marker key is prefix+"triad:watch". With
// a baseline, its first look compares with the saved one and every look
// that differs is saved; without, its first look only sets the baseline.
func NewWatch(rdb goredis.UniversalClient, prefix string, baseline Baseline) *Watch {
	return &Watch{rdb: rdb, marker: prefix + "triad:watch", baseline: baseline}
}

// Marker is the watch's marker key.
func (w *Watch) Marker() string { return w.marker }

// Look reads Redis's run_id and the marker and compares them with the
// last look (this watch's, or the saved baseline's); a first look with no
// baseline only sets it (creating the marker when it is missing).
func (w *Watch) Look(ctx context.Context) (*Loss, error) {
	runID, err := runIDs(ctx, w.rdb)
	if err != nil {
		return nil, err
	}
	token, err := w.rdb.Get(ctx, w.marker).Result()
	if errors.Is(err, goredis.Nil) {
		token = ""
	} else if err != nil {
		return nil, err
	}
	if token == "" {
		// First look, or the marker went with the data: set a new one
		// (SET NX: a leader before us may just have).
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		fresh := hex.EncodeToString(b)
		if ok, err := w.rdb.SetNX(ctx, w.marker, fresh, 0).Result(); err != nil {
			return nil, err
		} else if ok {
			token = fresh
		} else if token, err = w.rdb.Get(ctx, w.marker).Result(); err != nil {
			return nil, err
		}
	}
	if !w.seen && w.baseline != nil {
		run, tok, ok, err := w.baseline.Load(ctx)
		if err != nil {
			return nil, fmt.Errorf("load the watch's baseline: %w", err)
		}
		w.runID, w.token, w.seen = run, tok, ok
	}
	first := !w.seen
	prevRun, prevToken := w.runID, w.token
	w.before.runID, w.before.token = prevRun, prevToken
	w.runID, w.token, w.seen = runID, token, true
	if first {
		return nil, w.Settle(ctx)
	}
	var reason string
	switch {
	case runID != prevRun:
		reason = "restart"
	case token != prevToken:
		reason = "flushed"
	default:
		return nil, nil
	}
	keys, err := w.rdb.DBSize(ctx).Result()
	if err != nil {
		keys = -1
	}
	return &Loss{At: time.Now(), Reason: reason, Keys: keys}, nil
}

// Settle saves the last look as the baseline. Look leaves a loss it
// reports unsaved: the caller settles it once it has acted, so a leader
// that dies in between leaves the loss for the next leader to report
// again (a second re-warm is harmless) rather than not at all.
func (w *Watch) Settle(ctx context.Context) error {
	if w.baseline == nil || !w.seen {
		return nil
	}
	if err := w.baseline.Save(ctx, w.runID, w.token); err != nil {
		return fmt.Errorf("save the watch's baseline: %w", err)
	}
	return nil
}

// Retry puts back the look the last reported loss was judged against:
// the caller could not act on the loss (a re-warm that did not start), so
// the next Look reports it again.
func (w *Watch) Retry() {
	w.runID, w.token = w.before.runID, w.before.token
}

// runIDs is the server's run_id, or a cluster's masters' (sorted, joined):
// a master that restarted, or a replica promoted in its place (whose
// asynchronous replication may have lost the last writes), changes it.
func runIDs(ctx context.Context, rdb goredis.UniversalClient) (string, error) {
	one := func(ctx context.Context, c goredis.Cmdable) (string, error) {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
				return v, nil
			}
		}
		return "", errors.New("INFO server has no run_id")
	}
	cc, ok := rdb.(*goredis.ClusterClient)
	if !ok {
		return one(ctx, rdb)
	}
	var mu sync.Mutex
	var ids []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		id, err := one(ctx, m)
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return err
	})
	slices.Sort(ids)
	return strings.Join(ids, ","), err
}

// String describes the last look.
func (w *Watch) String() string { return "run_id " + w.runID + ", marker " + w.marker }
