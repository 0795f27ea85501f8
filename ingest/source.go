package ingest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// DefaultMaxLineBytes is the default limit on one input line.
const DefaultMaxLineBytes = 1 << 20

// ErrLineTooLong reports a line over the limit; the reader skips the rest of
// it and carries on with the next line.
var ErrLineTooLong = errors.New("line too long")

// LineReader reads newline-terminated lines of at most max bytes, reusing
// one buffer: a returned line is valid until the next call.
type LineReader struct {
	r    *bufio.Reader
	max  int
	buf  []byte
	line int64
}

// NewLineReader reads from r; max <= 0 means DefaultMaxLineBytes.
func NewLineReader(r io.Reader, max int) *LineReader {
	if max <= 0 {
		max = DefaultMaxLineBytes
	}
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// Next returns the next line without its "\n" or "\r\n" and its 1-based
// number. A line over the limit returns its first bytes and ErrLineTooLong;
// the end of input returns io.EOF.
func (l *LineReader) Next() ([]byte, int64, error) {
	// Fast path: a whole line inside the bufio buffer is returned from it
	// without a copy.
	chunk, err := l.r.ReadSlice('\n')
	if err == nil || (err == io.EOF && len(chunk) > 0) {
		l.line++
		line := trimEOL(chunk)
		if len(line) > l.max {
			return line[:l.max], l.line, fmt.Errorf("%w: over %d bytes", ErrLineTooLong, l.max)
		}
		return line, l.line, nil
	}
	if err == io.EOF {
		return nil, l.line, io.EOF
	}
	if err != bufio.ErrBufferFull {
		return nil, l.line, err
	}
	// A line longer than the buffer: gather it (up to the limit) in l.buf.
	l.buf = append(l.buf[:0], chunk...)
	tooLong := len(l.buf) > l.max+2 // +2: the line ending is not counted
	if tooLong {
		l.buf = l.buf[:l.max]
	}
	for {
		chunk, err = l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+2 {
				l.buf = append(l.buf, chunk[:max(0, l.max-len(l.buf))]...)
				tooLong = true
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return nil, l.line, err
		}
		break
	}
	l.line++
	line := trimEOL(l.buf)
	if tooLong || len(line) > l.max {
		return line[:min(len(line), l.max)], l.line, fmt.Errorf("%w: over %d bytes", ErrLineTooLong, l.max)
	}
	return line, l.line, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// countingReader counts the bytes read through it (for progress and ETA).
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Input is an opened input: a file or stdin, gunzipped when it starts with
// the gzip magic bytes.
type Input struct {
	io.Reader
	Name string
	// Size is the input's size on disk (compressed, for gzip), or -1.
	Size int64
	// Consumed counts the bytes read from disk so far.
	Consumed *atomic.Int64
	closer   io.Closer
}

// Close closes the underlying file.
func (in *Input) Close() error {
	if in.closer != nil {
		return in.closer.Close()
	}
	return nil
}

// Open opens path ("-" for stdin).
func Open(path string) (*Input, error) {
	in := &Input{Name: path, Size: -1, Consumed: new(atomic.Int64)}
	var r io.Reader
	if path == "-" {
		in.Name, r = "stdin", os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			in.Size = st.Size()
		}
		r, in.closer = f, f
	}
	br := bufio.NewReaderSize(countingReader{r, in.Consumed}, 64<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = in.Close()
			return nil, fmt.Errorf("%s: gzip: %w", in.Name, err)
		}
		in.Reader = zr
	} else {
		in.Reader = br
	}
	return in, nil
}

// Quarantine writes rejected lines as JSONL records, one per line:
//
//	{"source": "in.tsv", "line": 17, "reason": "user_id: must be a positive 64-bit integer", "text": "…"}
//
// "text" is the line as read (its first bytes for a line over the limit,
// with "truncated": true); a line that is not valid UTF-8 is kept in
// "text_base64" instead. Safe for concurrent use.
type Quarantine struct {
	mu sync.Mutex
	w  *bufio.Writer
	c  io.Closer
	n  int64
}

// NewQuarantine writes to w (closed by Close when it is an io.Closer).
func NewQuarantine(w io.Writer) *Quarantine {
	q := &Quarantine{w: bufio.NewWriter(w)}
	if c, ok := w.(io.Closer); ok {
		q.c = c
	}
	return q
}

// QuarantineRecord is one rejected line.
type QuarantineRecord struct {
	Source     string `json:"source"`
	Line       int64  `json:"line"`
	Reason     string `json:"reason"`
	Text       string `json:"text,omitempty"`
	TextBase64 []byte `json:"text_base64,omitempty"`
	Truncated  bool   `json:"truncated,omitempty"`
}

// maxQuarantinedText bounds the copy of a too-long line kept in quarantine.
const maxQuarantinedText = 64 << 10

// Add records one rejected line.
func (q *Quarantine) Add(source string, line int64, text []byte, reason error) error {
	rec := QuarantineRecord{Source: source, Line: line, Reason: reason.Error()}
	if errors.Is(reason, ErrLineTooLong) || len(text) > maxQuarantinedText {
		rec.Truncated = true
		text = text[:min(len(text), maxQuarantinedText)]
	}
	if utf8.Valid(text) {
		rec.Text = string(text)
	} else {
		rec.TextBase64 = text
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	if _, err := q.w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	return nil
}

// Count is how many lines were quarantined.
func (q *Quarantine) Count() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Close flushes and closes the quarantine file.
func (q *Quarantine) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	err := q.w.Flush()
	if q.c != nil {
		err = errors.Join(err, q.c.Close())
	}
	return err
}
