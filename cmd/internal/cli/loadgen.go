package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/triad-dev/triad/repair"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/ingest"
)

const loadgenHelp = `Usage: triad loadgen [flags]

Writes deterministic synthetic profiles (same seed, same profiles) as JSONL
or TSV to stdout, or with --ingest straight into the pipeline.

--entity order writes orders instead (JSON documents, order IDs 1..count):
to stdout, or with --ingest into the order entity's stores (Postgres, then
Redis and the index), version-guarded like the pipeline.
`

func (e env) loadgen(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("loadgen", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, loadgenHelp); fs.PrintDefaults() }
	count := fs.Int64("count", 100000, "number of profiles")
	seed := fs.Uint64("seed", 1, "random seed")
	first := fs.Int64("first-id", 1, "user ID of the first profile")
	revision := fs.Int64("revision", 0, "shift versions and times by this many seconds (newer versions of the same users)")
	format := fs.String("format", "jsonl", "jsonl or tsv")
	toPipeline := fs.Bool("ingest", false, "write into the pipeline instead of stdout")
	progress := fs.String("progress", "auto", "with --ingest: progress line on stderr: auto, always, never")
	entity := fs.String("entity", "profile", "profile or order")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch *entity {
	case "profile":
	case "order":
		return e.loadgenOrders(ctx, c, *count, *seed, *toPipeline)
	default:
		return usagef("--entity: profile or order, got %q", *entity)
	}
	f, err := ingest.ParseFormat(*format)
	if err != nil {
		return usageError{err}
	}
	g := ingest.NewGenerator(*seed)
	g.FirstID, g.Revision = *first, *revision
	if !*toPipeline {
		w := bufio.NewWriterSize(e.stdout, 256<<10)
		if err := generate(w, g, *count, f); err != nil {
			return err
		}
		return w.Flush()
	}
	cfg, log, err := e.load(c)
	if err != nil {
		return err
	}
	run, err := openPipeline(ctx, cfg, log)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(generate(pw, g, *count, f)) }()
	in := &ingest.Input{Reader: pr, Name: "loadgen", Size: -1, Consumed: new(atomic.Int64)}
	sum, runErr := e.runInput(ctx, run, in, f, "loadgen.quarantine.jsonl", *progress)
	_ = pr.Close()
	err = errors.Join(runErr, run.finish(ctx, e.stderr, 30*time.Second, &sum))
	e.printSummary(sum, "", false)
	if err != nil {
		return err
	}
	return owedError(sum)
}

// loadgenOrders writes count orders to stdout, or into the order
// entity's stores in batches of 1000.
func (e env) loadgenOrders(ctx context.Context, c common, count int64, seed uint64, store bool) error {
	if !store {
		w := bufio.NewWriterSize(e.stdout, 256<<10)
		var line []byte
		for n := range count {
			line = append(repair.OrderDoc(line[:0], seed, n), '\n')
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	cfg, _, err := e.load(c)
	if err != nil {
		return err
	}
	set, err := openMigrated(ctx, cfg)
	if err != nil {
		return err
	}
	defer set.Close()
	entities, err := app.NewStores(cfg, set, prometheus.NewRegistry()).Entities(cfg, set)
	if err != nil {
		return err
	}
	var orders *repair.Table
	for _, en := range entities {
		if t, ok := en.(*repair.Table); ok && t.Name() == "order" {
			orders = t
		}
	}
	if orders == nil {
		return errors.New("no order entity in repair.entities")
	}
	start := time.Now()
	var total repair.WriteResult
	for lo := int64(0); lo < count; lo += 1000 {
		docs := make([][]byte, 0, 1000)
		for n := lo; n < min(lo+1000, count); n++ {
			docs = append(docs, repair.OrderDoc(nil, seed, n))
		}
		r, err := orders.Write(ctx, docs)
		if err != nil {
			return fmt.Errorf("orders %d..%d: %w", lo+1, lo+int64(len(docs)), err)
		}
		total.Applied += r.Applied
		total.Stale += r.Stale
	}
	fmt.Fprintf(e.stderr, "orders: %d written, %d already at that version or newer, in %s\n", total.Applied, total.Stale, time.Since(start).Round(time.Millisecond))
	return nil
}

func generate(w io.Writer, g *ingest.Generator, count int64, f ingest.Format) error {
	var line []byte
	var d ingest.Decoder
	var err error
	for n := range count {
		if f == ingest.FormatTSV {
			if line, err = g.AppendTSV(line[:0], n, &d); err != nil {
				return err
			}
		} else {
			line = g.AppendJSONL(line[:0], n)
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}
