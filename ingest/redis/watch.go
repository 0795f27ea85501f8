package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Loss is a sign that Redis lost data: it restarted (a new run_id), or
// its keyspace shrank by more than the watch's ratio between two looks.
type Loss struct {
	At     time.Time
	Reason string // "restart" or "keyspace_drop"
	// Keys before and after (DBSIZE of triad's database).
	Before, After int64
}

func (l Loss) String() string {
	if l.Reason == "restart" {
		return fmt.Sprintf("Redis restarted (new run_id); its database holds %d keys, %d before", l.After, l.Before)
	}
	return fmt.Sprintf("Redis's database shrank from %d to %d keys", l.Before, l.After)
}

// Watch notices Redis restarts and keyspace drops: a Redis without
// persistence (or with an fsync policy that lost the last second) comes
// back with fewer keys than triad wrote, and nothing else would say so.
// It is not safe for concurrent use (one leader job drives it).
type Watch struct {
	rdb   *goredis.Client
	ratio float64
	runID string
	keys  int64
	seen  bool
}

// NewWatch returns a watch that reports a drop of more than ratio (0.1:
// a tenth of the keys) between two looks.
func NewWatch(rdb *goredis.Client, ratio float64) *Watch { return &Watch{rdb: rdb, ratio: ratio} }

// Look reads Redis's run_id and key count and compares them with the last
// look; the first look only sets the baseline.
func (w *Watch) Look(ctx context.Context) (*Loss, error) {
	info, err := w.rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil, err
	}
	runID := ""
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			runID = v
		}
	}
	if runID == "" {
		return nil, fmt.Errorf("INFO server has no run_id")
	}
	keys, err := w.rdb.DBSize(ctx).Result()
	if err != nil {
		return nil, err
	}
	defer func() { w.runID, w.keys, w.seen = runID, keys, true }()
	if !w.seen {
		return nil, nil
	}
	now := time.Now()
	switch {
	case runID != w.runID:
		return &Loss{At: now, Reason: "restart", Before: w.keys, After: keys}, nil
	case w.keys > 0 && float64(w.keys-keys) > w.ratio*float64(w.keys):
		return &Loss{At: now, Reason: "keyspace_drop", Before: w.keys, After: keys}, nil
	}
	return nil, nil
}

// String describes the last look.
func (w *Watch) String() string {
	return "run_id " + w.runID + ", " + strconv.FormatInt(w.keys, 10) + " keys"
}
