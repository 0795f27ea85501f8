package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Summary counts one run's lines and outcomes.
type Summary struct {
	Source      string        `json:"source"`
	Lines       int64         `json:"lines"`
	Bytes       int64         `json:"bytes"`
	Skipped     int64         `json:"skipped"` // blank lines and a TSV header
	Quarantined int64         `json:"quarantined"`
	Applied     int64         `json:"applied"`
	Superseded  int64         `json:"superseded"`
	Failed      int64         `json:"failed"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	// Recorded is, per derived store (redis, elasticsearch, archive), how
	// many of this run's writes failed and went to the catch-up log;
	// Pending is what still waited there (from any run) when it ended.
	Recorded map[string]int64 `json:"catchup_recorded,omitempty"`
	Pending  map[string]int64 `json:"catchup_pending,omitempty"`
}

// LineError is one rejected line, as the batch endpoint reports it.
type LineError struct {
	Line  int64  `json:"line"`
	Error string `json:"error"`
}

// RunOptions are the inputs of Run.
type RunOptions struct {
	Source string // name for the quarantine file and logs
	Format Format
	// Quarantine receives rejected lines; nil keeps them only in Errors.
	Quarantine *Quarantine
	// MaxLineBytes: 0 means the pipeline's configuration.
	MaxLineBytes int
	// MaxErrors bounds Summary errors kept in memory for the caller (the
	// batch endpoint's response); 0 keeps none.
	MaxErrors int
	// Progress, if set, is called about every Interval with the counts so far.
	Progress func(Summary)
	Interval time.Duration
}

// Run reads lines from r, quarantines the bad ones and submits the good ones
// to the pipeline, then waits until Postgres has taken every submitted line.
// Bad lines never stop a run; it stops early only when ctx ends or the
// pipeline fails (Postgres down for longer than its retry window).
func (p *Pipeline) Run(ctx context.Context, r io.Reader, o RunOptions) (Summary, []LineError, error) {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = p.cfg.MaxLineBytes
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	start := time.Now()
	var (
		s                           = Summary{Source: o.Source}
		applied, superseded, failed atomic.Int64
		wg                          sync.WaitGroup
		errs                        []LineError
		errMu                       sync.Mutex
		firstFail                   atomic.Pointer[error]
		dec                         Decoder
	)
	addErr := func(line int64, err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < o.MaxErrors {
			errs = append(errs, LineError{Line: line, Error: err.Error()})
		}
	}
	snapshot := func() Summary {
		c := s
		c.Applied, c.Superseded, c.Failed, c.Elapsed = applied.Load(), superseded.Load(), failed.Load(), time.Since(start)
		return c
	}
	lr := NewLineReader(r, o.MaxLineBytes)
	lastProgress := time.Now()
	var runErr error
	for {
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		line, no, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, ErrLineTooLong) {
			runErr = fmt.Errorf("%s: read line %d: %w", o.Source, no+1, err)
			break
		}
		s.Lines = no
		s.Bytes += int64(len(line)) + 1
		if err == nil && (len(bytes.TrimSpace(line)) == 0 || (no == 1 && o.Format == FormatTSV && isHeader(line))) {
			s.Skipped++
			continue
		}
		var pr *Profile
		if err == nil {
			pr, err = dec.Decode(o.Format, line)
		}
		if err != nil {
			s.Quarantined++
			p.m.lines.WithLabelValues("quarantined").Inc()
			p.m.quarantined.WithLabelValues(reasonClass(err)).Inc()
			addErr(no, err)
			if o.Quarantine != nil {
				if qerr := o.Quarantine.Add(o.Source, no, line, err); qerr != nil {
					runErr = qerr
					break
				}
			}
			continue
		}
		p.m.lines.WithLabelValues("ok").Inc()
		wg.Add(1)
		lineNo := no
		ack := func(out Outcome, err error) {
			defer wg.Done()
			switch out {
			case Applied:
				applied.Add(1)
			case Superseded:
				superseded.Add(1)
			default:
				failed.Add(1)
				firstFail.CompareAndSwap(nil, &err)
				addErr(lineNo, err)
			}
		}
		if err := p.Submit(ctx, pr, ack); err != nil {
			wg.Done()
			runErr = err
			break
		}
		if o.Progress != nil && time.Since(lastProgress) >= o.Interval {
			lastProgress = time.Now()
			o.Progress(snapshot())
		}
	}
	// Wait for every submitted profile's Postgres outcome, or for ctx: a
	// caller with a deadline (the batch endpoint) is answered at it even
	// while Postgres hangs. What was submitted is still written when
	// Postgres answers; the summary counts what was known by then.
	acked := make(chan struct{})
	go func() { wg.Wait(); close(acked) }()
	select {
	case <-acked:
	case <-ctx.Done():
		if runErr == nil {
			runErr = fmt.Errorf("%s: %w before every line's outcome was known", o.Source, ctx.Err())
		}
	}
	if runErr == nil {
		if e := firstFail.Load(); e != nil {
			runErr = *e
		}
	}
	out := snapshot()
	if o.Progress != nil {
		o.Progress(out)
	}
	errMu.Lock()
	defer errMu.Unlock()
	return out, append([]LineError(nil), errs...), runErr
}

func isHeader(line []byte) bool {
	return bytes.Equal(line, []byte("user_id")) || bytes.HasPrefix(line, []byte("user_id\t"))
}

// reasonClass is a bounded label for the quarantine counter.
func reasonClass(err error) string {
	var fe *FieldError
	var se *SyntaxError
	switch {
	case errors.Is(err, ErrLineTooLong):
		return "too_long"
	case errors.Is(err, ErrInvalidUTF8):
		return "invalid_utf8"
	case errors.As(err, &fe):
		if fe.Msg == "unknown field" {
			return "unknown_field"
		}
		if fieldIndex([]byte(fe.Field)) >= 0 || fe.Field == "user_id" || fe.Field == "version" || fe.Field == "updated_at" || fe.Field == "deleted" {
			return "bad_" + fe.Field
		}
		return "malformed"
	case errors.As(err, &se):
		return "malformed_json"
	default:
		return "malformed"
	}
}
