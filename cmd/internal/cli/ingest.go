package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/triad-dev/triad/ingest"
)

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
