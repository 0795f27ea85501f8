package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/triad-dev/triad/trace"

	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/archive"
)

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
