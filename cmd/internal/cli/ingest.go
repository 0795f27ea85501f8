package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/trace"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/internal/app"
	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/archive"
	"github.com/triad-dev/triad/ingest/dataset"
)

// ExitPartial is the status of a run that finished but left something out:
// `ingest` quarantined lines, `archive verify` found bad chunks.
const ExitPartial = 3

// exitError carries a specific exit status.
type exitError struct {
	code int
	error
}

// pipelineRun is an open pipeline for a command, with its clients.
type pipelineRun struct {
	set    *clients.Set
	pipe   *app.Pipeline
	log    *slog.Logger
	cfg    config.Config
	cancel context.CancelFunc // stops the dataset follower
	done   chan struct{}
}

func openPipeline(ctx context.Context, cfg config.Config, log *slog.Logger) (*pipelineRun, error) {
	set, err := openMigrated(ctx, cfg)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	stores := app.NewStores(cfg, set, reg)
	// Follow the dataset state like a serving replica, so writes go to
	// every version being written (a build in progress included), and
	// report under a lease so a build waits for this process too.
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	follower := dataset.NewFollower(cfg.Dataset, set.Etcd, dataset.FollowerOptions{
		ID: app.MemberID(), Kind: "ingest", Logger: log, Registerer: reg, Apply: stores.SetVersions,
	})
	run := &pipelineRun{set: set, log: log, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go func() { follower.Run(fctx); close(run.done) }()
	select {
	case <-follower.Known():
	case <-time.After(cfg.Dataset.ConfirmTimeout):
		run.stop()
		return nil, fmt.Errorf("etcd (%v) did not answer within dataset.confirm_timeout (%s): without it triad cannot tell which dataset versions to write", cfg.Etcd.Endpoints, cfg.Dataset.ConfirmTimeout)
	case <-ctx.Done():
		run.stop()
		return nil, ctx.Err()
	}
	p, err := app.BuildPipeline(ctx, cfg, stores, log, reg)
	if err != nil {
		run.stop()
		return nil, err
	}
	run.pipe = p
	return run, nil
}

// stop ends the follower (revoking its report) and closes the clients.
func (r *pipelineRun) stop() {
	r.cancel()
	<-r.done
	r.set.Close()
}

// finish drains the pipeline, then replays the catch-up log for up to wait
// (a derived store that was down may be back; the replay itself runs
// under that deadline); what remains is left to a running `triad serve`.
// It fills sum's catch-up counts.
func (r *pipelineRun) finish(ctx context.Context, stderr io.Writer, wait time.Duration, sum *ingest.Summary) error {
	defer r.stop()
	err := r.pipe.Close()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	stores := r.pipe.Pipeline.Stores()
	for {
		pending, total := map[string]int64{}, int64(0)
		for _, st := range stores {
			cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
			n, cerr := r.pipe.Postgres.Count(cctx, st)
			ccancel()
			if cerr != nil {
				return errors.Join(err, fmt.Errorf("count the catch-up log: %w", cerr))
			}
			if n > 0 {
				pending[st] = n
			}
			total += n
		}
		if sum != nil {
			sum.Recorded, sum.Pending = nonzero(r.pipe.Recorded()), pending
		}
		if total == 0 {
			return err
		}
		if rctx.Err() != nil {
			fmt.Fprintf(stderr, "%d derived-store writes wait in the catch-up log (%v); a running `triad serve` (with the same archive.dir for the archive's) replays them\n", total, pending)
			return err
		}
		if _, rerr := r.pipe.ReplayCatchup(rctx); rerr != nil {
			select {
			case <-rctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func nonzero(m map[string]int64) map[string]int64 {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	if len(m) == 0 {
		return nil
	}
	return m
}

const ingestHelp = `Usage: triad ingest [flags] FILE|-

Reads profiles (TSV or JSONL, gzip detected) from FILE or stdin and writes
them to Postgres, then the archive, Redis and Elasticsearch. Bad lines go to
the quarantine file with their line number and reason.

Exit status: 0 every line taken; 3 some lines quarantined; 1 fatal (e.g.
Postgres down past ingest.primary_retry_for: re-run the same input, it is
idempotent); 2 usage.
`

func (e env) ingest(ctx context.Context, args []string) error {
	var c common
	fs := e.flags("ingest", &c)
	fs.Usage = func() { fmt.Fprint(e.stderr, ingestHelp); fs.PrintDefaults() }
	format := fs.String("format", "", "tsv or jsonl (default: from the file name, else jsonl)")
	quarantine := fs.String("quarantine", "", "quarantine file (default FILE.quarantine.jsonl, or quarantine.jsonl for stdin)")
	progress := fs.String("progress", "auto", "progress line on stderr: auto (when a terminal), always, never")
	wait := fs.Duration("catchup-wait", 30*time.Second, "how long to replay failed Redis/Elasticsearch writes before exiting")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one FILE or - (stdin)")
	}
	path := fs.Arg(0)
	f, err := formatFor(*format, path)
	if err != nil {
		return usageError{err}
	}
	cfg, log, err := e.load(c)
	if err != nil {
		return err
	}
	in, err := ingest.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	qpath := *quarantine
	if qpath == "" {
		qpath = "quarantine.jsonl"
		if path != "-" {
			qpath = strings.TrimSuffix(path, ".gz") + ".quarantine.jsonl"
		}
	}
	run, err := openPipeline(ctx, cfg, log)
	if err != nil {
		return err
	}
	sum, runErr := e.runInput(ctx, run, in, f, qpath, *progress)
	err = errors.Join(runErr, run.finish(ctx, e.stderr, *wait, &sum))
	e.printSummary(sum, qpath, *asJSON)
	if err != nil {
		return err
	}
	if sum.Quarantined > 0 {
		return exitError{ExitPartial, fmt.Errorf("%d lines quarantined in %s", sum.Quarantined, qpath)}
	}
	return owedError(sum)
}

// owedError is the partial exit of a run that ended with writes its
// stores still owe: Postgres holds them, the catch-up log will replay
// them, but the run itself did not finish its job.
func owedError(sum ingest.Summary) error {
	if len(sum.Pending) == 0 {
		return nil
	}
	return exitError{ExitPartial, fmt.Errorf("writes still owed in the catch-up log: %v", sum.Pending)}
}

func formatFor(flagValue, path string) (ingest.Format, error) {
	if flagValue != "" {
		return ingest.ParseFormat(flagValue)
	}
	if strings.HasSuffix(strings.TrimSuffix(path, ".gz"), ".tsv") {
		return ingest.FormatTSV, nil
	}
	return ingest.FormatJSONL, nil
}

// runInput runs one input through the pipeline with a quarantine file
// (created only when a line is rejected) and the progress line.
func (e env) runInput(ctx context.Context, run *pipelineRun, in *ingest.Input, f ingest.Format, qpath, progress string) (ingest.Summary, error) {
	lq := &lazyFile{path: qpath}
	q := ingest.NewQuarantine(lq)
	show := progress == "always" || (progress == "auto" && isTerminal(e.stderr))
	var opts ingest.RunOptions
	opts.Source, opts.Format, opts.Quarantine = in.Name, f, q
	if show {
		opts.Interval = 500 * time.Millisecond
		opts.Progress = func(s ingest.Summary) { e.progressLine(s, in) }
	}
	sum, _, err := run.pipe.Run(ctx, in, opts)
	if show {
		fmt.Fprintln(e.stderr)
	}
	return sum, errors.Join(err, q.Close())
}

func (e env) progressLine(s ingest.Summary, in *ingest.Input) {
	secs := s.Elapsed.Seconds()
	rate := float64(s.Applied+s.Superseded) / max(secs, 0.001)
	read := in.Consumed.Load()
	line := fmt.Sprintf("\r%s: %d lines, %.0f rows/s, %s read, %d quarantined", in.Name, s.Lines, rate, bytesString(read), s.Quarantined)
	if in.Size > 0 && read > 0 {
		eta := time.Duration(float64(in.Size-read) / (float64(read) / max(secs, 0.001)) * float64(time.Second))
		line += fmt.Sprintf(", %.0f%%, ETA %s", 100*float64(read)/float64(in.Size), eta.Round(time.Second))
	}
	fmt.Fprintf(e.stderr, "%-100s", line)
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (e env) printSummary(s ingest.Summary, qpath string, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(e.stdout).Encode(s)
		return
	}
	rate := float64(s.Applied+s.Superseded) / max(s.Elapsed.Seconds(), 0.001)
	fmt.Fprintf(e.stdout, "%s: %d lines in %s (%.0f rows/s): %d applied, %d superseded by newer versions, %d quarantined, %d failed, %d skipped\n",
		s.Source, s.Lines, s.Elapsed.Round(time.Millisecond), rate, s.Applied, s.Superseded, s.Quarantined, s.Failed, s.Skipped)
	if s.Quarantined > 0 {
		fmt.Fprintf(e.stdout, "quarantined lines (line number and reason): %s\n", qpath)
	}
	for _, st := range slices.Sorted(maps.Keys(s.Recorded)) {
		what := "not written to " + st
		if st == ingest.ArchiveStore {
			what = "not archived"
		}
		fmt.Fprintf(e.stdout, "%d rows %s during the run (recorded in the catch-up log; %d still wait there)\n", s.Recorded[st], what, s.Pending[st])
	}
}

// lazyFile creates its file on the first write, so a clean run leaves no
// empty quarantine file behind.
type lazyFile struct {
	path string
	f    *os.File
}

func (l *lazyFile) Write(p []byte) (int, error) {
	if l.f == nil {
		f, err := os.Create(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	return l.f.Write(p)
}

func (l *lazyFile) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

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

const archiveHelp = `Usage: triad archive verify|cat|replay [flags] FILE...
       triad archive backfill [--wait D]

  verify    check every chunk of each file; reports every bad chunk with its
            offset and reads on (exit 3 when any chunk is bad)
  cat       print the records (JSONL) of the good chunks to stdout
  replay    write the records of the good chunks back through the pipeline
  backfill  write the rows the archive (archive.dir) is owed (a full disk, a
            crashed writer: the catch-up log's "archive" entries) from
            Postgres, then the other stores' owed writes; exit 3 when some
            still wait after --wait
`

// archiveBackfill replays every store's owed writes (the archive's
// included) from Postgres through a pipeline with the configured archive.
func (e env) archiveBackfill(ctx context.Context, c common, wait time.Duration) error {
	cfg, log, err := e.load(c)
	if err != nil {
		return err
	}
	if cfg.Archive.Dir == "" {
		return usagef("backfill needs archive.dir (TRIAD_ARCHIVE_DIR)")
	}
	run, err := openPipeline(ctx, cfg, log)
	if err != nil {
		return err
	}
	if _, err := run.pipe.RecoverOutbox(ctx); err != nil {
		log.Warn("outbox recovery", "err", err)
	}
	before, err := run.pipe.Postgres.Count(ctx, ingest.ArchiveStore)
	if err != nil {
		run.stop()
		return err
	}
	var sum ingest.Summary
	err = run.finish(ctx, e.stderr, wait, &sum)
	fmt.Fprintf(e.stdout, "archive: %d rows were owed; %d still wait in the catch-up log\n", before, sum.Pending[ingest.ArchiveStore])
	if err != nil {
		return err
	}
	return owedError(sum)
}

func (e env) archive(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stderr, archiveHelp)
		if len(args) == 0 {
			return usagef("want verify, cat, replay or backfill")
		}
		return flag.ErrHelp
	}
	verb := args[0]
	var c common
	fs := e.flags("archive "+verb, &c)
	asJSON := fs.Bool("json", false, "verify: print the report as JSON")
	wait := fs.Duration("wait", 10*time.Minute, "backfill: how long to keep replaying")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if verb == "backfill" {
		return e.archiveBackfill(ctx, c, *wait)
	}
	if fs.NArg() == 0 {
		return usagef("want at least one archive FILE")
	}
	var run *pipelineRun
	if verb == "replay" {
		cfg, log, err := e.load(c)
		if err != nil {
			return err
		}
		if run, err = openPipeline(ctx, cfg, log); err != nil {
			return err
		}
	} else if verb != "verify" && verb != "cat" {
		return usagef("unknown verb %q: want verify, cat, replay or backfill", verb)
	}
	bad := 0
	var errs []error
	for _, path := range fs.Args() {
		var rep archive.VerifyReport
		var err error
		switch verb {
		case "verify":
			rep, err = verifyFile(path, nil)
		case "cat":
			w := bufio.NewWriterSize(e.stdout, 256<<10)
			// Records are JSON lines from outside triad: control characters
			// are printed as JSON escapes, never raw to the terminal.
			rep, err = verifyFile(path, func(c archive.Chunk) error {
				_, err := w.WriteString(trace.PrintableLines(string(c.Payload)))
				return err
			})
			err = errors.Join(err, w.Flush())
		case "replay":
			var s ingest.Summary
			rep, s, err = archive.Replay(ctx, path, run.pipe.Pipeline)
			fmt.Fprintf(e.stdout, "%s: %d records replayed: %d applied, %d superseded, %d quarantined, %d failed\n",
				path, s.Lines, s.Applied, s.Superseded, s.Quarantined, s.Failed)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		bad += len(rep.Bad)
		for _, b := range rep.Bad {
			fmt.Fprintf(e.stderr, "%s: %v\n", path, b)
		}
		if verb == "verify" {
			if *asJSON {
				_ = json.NewEncoder(e.stdout).Encode(map[string]any{"file": path, "report": rep})
			} else {
				status := "ok"
				if len(rep.Bad) > 0 {
					status = fmt.Sprintf("%d BAD", len(rep.Bad))
				}
				fmt.Fprintf(e.stdout, "%s: %s: %d good chunks, %d records, %s uncompressed\n", path, status, rep.Chunks, rep.Records, bytesString(rep.Bytes))
			}
		}
	}
	if run != nil {
		errs = append(errs, run.finish(ctx, e.stderr, 30*time.Second, nil))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if bad > 0 {
		return exitError{ExitPartial, fmt.Errorf("%d bad chunks", bad)}
	}
	return nil
}

func verifyFile(path string, fn func(archive.Chunk) error) (archive.VerifyReport, error) {
	f, err := os.Open(path)
	if err != nil {
		return archive.VerifyReport{}, err
	}
	defer f.Close()
	return archive.Verify(bufio.NewReaderSize(f, 1<<20), fn)
}
