package trace

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Batcher groups the spans of concurrent export requests into store
// batches (a group commit) and answers each request once its spans are
// written, so an accepted request is a stored request. The spans waiting
// are bounded: above Config.MaxPendingSpans, Submit refuses at once with
// ErrOverloaded rather than queue without end.
type Batcher struct {
	store   Store
	cfg     Config
	log     *slog.Logger
	m       *Metrics
	pending atomic.Int64
	queue   chan *job
}

type job struct {
	spans []Span
	done  chan error
}

// NewBatcher returns a batcher over store; Run writes.
func NewBatcher(store Store, cfg Config, log *slog.Logger, m *Metrics) *Batcher {
	return &Batcher{store: store, cfg: cfg, log: log.With("component", "trace.batcher"), m: m,
		queue: make(chan *job, 4096)}
}

// Submit queues spans and waits until they are written (or ctx ends:
// the write still happens). It never blocks on a full queue.
func (b *Batcher) Submit(ctx context.Context, spans []Span) error {
	n := int64(len(spans))
	if n == 0 {
		return nil
	}
	if b.pending.Add(n) > int64(b.cfg.MaxPendingSpans) {
		b.pending.Add(-n)
		return ErrOverloaded
	}
	j := &job{spans: spans, done: make(chan error, 1)}
	select {
	case b.queue <- j:
		b.m.pending.Add(float64(n))
	default:
		b.pending.Add(-n)
		return ErrOverloaded
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run writes batches with Config.Writers writers until ctx ends, then
// writes what is queued (receivers are stopped first) and returns.
func (b *Batcher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range b.cfg.Writers {
		wg.Go(func() { b.writer(ctx) })
	}
	wg.Wait()
	return nil
}

func (b *Batcher) writer(ctx context.Context) {
	var batch []*job
	for {
		var first *job
		select {
		case first = <-b.queue:
		case <-ctx.Done():
			// Drain: what was accepted is written.
			for {
				select {
				case j := <-b.queue:
					b.write(context.WithoutCancel(ctx), []*job{j})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		size := len(first.spans)
		linger := time.NewTimer(b.cfg.BatchDelay)
	gather:
		for size < b.cfg.BatchSpans {
			select {
			case j := <-b.queue:
				batch = append(batch, j)
				size += len(j.spans)
			case <-linger.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		linger.Stop()
		b.write(context.WithoutCancel(ctx), batch)
	}
}

func (b *Batcher) write(ctx context.Context, batch []*job) {
	var spans []Span
	if len(batch) == 1 {
		spans = batch[0].spans
	} else {
		for _, j := range batch {
			spans = append(spans, j.spans...)
		}
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := b.store.Write(wctx, spans)
	cancel()
	b.m.writeDur.Observe(time.Since(start).Seconds())
	if err != nil {
		b.m.batches.WithLabelValues("failed").Inc()
		b.log.Error("span batch not written", "spans", len(spans), "requests", len(batch), "err", err)
	} else {
		b.m.batches.WithLabelValues("ok").Inc()
	}
	n := int64(len(spans))
	b.pending.Add(-n)
	b.m.pending.Sub(float64(n))
	if err != nil && len(batch) > 1 && errors.Is(err, ErrRejected) {
		// One request's content must not fail another's: each is written
		// alone, and only those the store refuses again fail.
		for _, j := range batch {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			jerr := b.store.Write(wctx, j.spans)
			cancel()
			if jerr != nil {
				b.log.Warn("span request refused when written alone", "spans", len(j.spans), "err", jerr)
			}
			j.done <- jerr
		}
		return
	}
	for _, j := range batch {
		j.done <- err
	}
}
