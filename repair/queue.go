package repair

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
)

// TriggerReadPath marks repairs queued by the read path, which found a
// cached value it could not decode.
const TriggerReadPath = "read_path"

// Queue collects keys that need a repair (the read path's undecodable
// cache values) and repairs them in batches through the Repairer: logged
// and guarded like every other repair. Bounded: keys past Max pending are
// dropped (a later read or sweep finds them again). Safe for concurrent
// use.
type Queue struct {
	r      *Repairer
	entity string
	log    *slog.Logger
	max    int

	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

// NewQueue returns a queue of entity's keys; Run repairs them.
func NewQueue(r *Repairer, entity string, max int, log *slog.Logger) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{r: r, entity: entity, max: max, log: log.With("component", "repair.queue"), pending: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// AddIDs queues int64 keys; it never blocks.
func (q *Queue) AddIDs(ids []int64) {
	q.mu.Lock()
	for _, id := range ids {
		if len(q.pending) >= q.max {
			break
		}
		q.pending[strconv.FormatInt(id, 10)] = true
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Run repairs what is queued, a batch at most every interval, until ctx
// ends.
func (q *Queue) Run(ctx context.Context, interval time.Duration) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		q.mu.Lock()
		keys := make([]string, 0, len(q.pending))
		for k := range q.pending {
			keys = append(keys, k)
		}
		clear(q.pending)
		q.mu.Unlock()
		slices.Sort(keys)
		for chunk := range slices.Chunk(keys, q.r.checker.MaxKeys) {
			run, _, err := q.r.Repair(ctx, Request{Entity: q.entity, Keys: chunk, Trigger: TriggerReadPath, Actor: "read path"})
			if err != nil {
				q.log.WarnContext(ctx, "queued repair", "err", err, "keys", len(chunk))
				continue
			}
			q.log.InfoContext(ctx, "repaired values the read path could not decode", "run", run.ID, "repaired", run.Repaired, "conflicts", run.Conflicts)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
