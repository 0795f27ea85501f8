package lookup

import (
	"context"
	"sync"
	"time"

	"github.com/triad-dev/triad/ingest"
)

// batcher merges concurrent lookups into one store round trip: each of its
// workers takes the first waiting call, then every call already queued
// (up to maxIDs IDs), and fetches them together. Nothing waits for a batch
// to fill: under light load a call is sent alone at once; under heavy load
// one pipeline or query serves many requests, which saves a round trip and
// two system calls per request (the store's "auto-pipelining").
type batcher struct {
	in      chan *call
	fetch   func(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error)
	maxIDs  int
	timeout time.Duration
	wg      sync.WaitGroup
	quit    chan struct{}
}

type call struct {
	ids  []int64
	res  map[int64]*ingest.Profile // shared between the calls of a batch: read only
	err  error
	done chan struct{}
}

func newBatcher(workers, maxIDs int, timeout time.Duration, fetch func(context.Context, []int64) (map[int64]*ingest.Profile, error)) *batcher {
	b := &batcher{in: make(chan *call, 4*maxIDs), fetch: fetch, maxIDs: maxIDs, timeout: timeout, quit: make(chan struct{})}
	for range workers {
		b.wg.Add(1)
		go b.run()
	}
	return b
}

// get fetches ids, batched with whatever else is waiting.
func (b *batcher) get(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
	c := &call{ids: ids, done: make(chan struct{})}
	select {
	case b.in <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *batcher) run() {
	defer b.wg.Done()
	var calls []*call
	var ids []int64
	for {
		select {
		case c := <-b.in:
			calls, ids = append(calls[:0], c), append(ids[:0], c.ids...)
		case <-b.quit:
			return
		}
	drain:
		for len(ids) < b.maxIDs {
			select {
			case c := <-b.in:
				calls, ids = append(calls, c), append(ids, c.ids...)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		res, err := b.fetch(ctx, ids)
		cancel()
		for _, c := range calls {
			c.res, c.err = res, err
			close(c.done)
		}
		clear(calls)
	}
}

func (b *batcher) close() {
	close(b.quit)
	b.wg.Wait()
}
