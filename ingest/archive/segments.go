package archive

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/triad-dev/triad/ingest"
)

// Config is the archive's configuration (key `archive`).
type Config struct {
	// Dir holds the segment files; empty disables the archive.
	Dir string `yaml:"dir"`
	// Codec is none, zstd or s2.
	Codec string `yaml:"codec"`
	// ChunkBytes is the uncompressed size at which a chunk is cut.
	ChunkBytes int `yaml:"chunk_bytes"`
	// SegmentBytes is the file size after which a new segment file starts.
	SegmentBytes int64 `yaml:"segment_bytes"`
	// Fsync is when data reaches the disk: "chunk" (after every chunk),
	// "interval" (every FlushInterval, and when a segment closes) or "never"
	// (left to the OS).
	Fsync string `yaml:"fsync"`
	// FlushInterval cuts a partial chunk (and fsyncs, with Fsync interval)
	// so a quiet pipeline's records reach the disk within this time.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultConfig returns the defaults (archive disabled until Dir is set).
func DefaultConfig() Config {
	return Config{Codec: "zstd", ChunkBytes: DefaultChunkBytes, SegmentBytes: 256 << 20, Fsync: "interval", FlushInterval: time.Second}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if _, err := ParseCodec(c.Codec); err != nil {
		errs = append(errs, fmt.Errorf("archive.codec: %w", err))
	}
	if c.ChunkBytes < 4096 || c.ChunkBytes > MaxChunkBytes/2 {
		errs = append(errs, fmt.Errorf("archive.chunk_bytes: must be from 4096 to %d, got %d", MaxChunkBytes/2, c.ChunkBytes))
	}
	if c.SegmentBytes < int64(c.ChunkBytes) {
		errs = append(errs, fmt.Errorf("archive.segment_bytes: must be at least chunk_bytes, got %d", c.SegmentBytes))
	}
	switch c.Fsync {
	case "chunk", "interval", "never":
	default:
		errs = append(errs, fmt.Errorf("archive.fsync: must be chunk, interval or never, got %q", c.Fsync))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("archive.flush_interval: must be positive, got %s", c.FlushInterval))
	}
	return errors.Join(errs...)
}

// Segments is the archive of a pipeline: profiles appended as JSONL records
// to ChunkedWriter segment files named profiles-<start time>-<pid>-<n>.tca in Dir,
// rotated by size. It implements ingest.Archiver and is safe for concurrent
// use.
type Segments struct {
	cfg   Config
	codec Codec
	m     *Metrics
	mu    sync.Mutex
	f     *os.File
	bw    *bufio.Writer
	cw    *ChunkedWriter
	n     int
	stamp string
	line  []byte
	// good is how many bytes of the current segment are whole chunks in
	// the file: after a failed write the segment is cut back to it.
	good int64
	stop chan struct{}
	done chan struct{}
}

// Open creates Dir if needed and starts the flusher; the first segment is
// created on the first Append.
func Open(cfg Config, m *Metrics) (*Segments, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	codec, _ := ParseCodec(cfg.Codec)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive dir: %w", err)
	}
	s := &Segments{cfg: cfg, codec: codec, m: m, stamp: time.Now().UTC().Format("20060102T150405Z"),
		stop: make(chan struct{}), done: make(chan struct{})}
	go s.flusher()
	return s, nil
}

func (s *Segments) flusher() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			_ = s.flushLocked(s.cfg.Fsync == "interval")
			s.mu.Unlock()
		}
	}
}

// Append implements ingest.Archiver: the batch ends its chunk, which is
// in the file (and, with fsync "chunk", on disk) when Append returns. A
// failed write (a full disk) cuts the segment back to its last whole
// chunk and closes it, so the archive never ends torn and the next Append
// starts a new segment; the caller owes the whole batch again.
func (s *Segments) Append(batch []*ingest.Profile) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cw == nil || s.cw.Written() >= s.cfg.SegmentBytes {
		if err := s.rotateLocked(); err != nil {
			return err
		}
	}
	for _, p := range batch {
		s.line = append(p.AppendRecord(s.line[:0]), '\n')
		if _, err := s.cw.Write(s.line); err != nil {
			return s.failLocked(err)
		}
	}
	if err := s.cw.Flush(); err != nil {
		return s.failLocked(err)
	}
	if err := s.bw.Flush(); err != nil {
		return s.failLocked(err)
	}
	if s.cfg.Fsync == "chunk" {
		if err := s.f.Sync(); err != nil {
			return s.failLocked(err)
		}
	}
	s.good = s.cw.Written()
	return nil
}

// failLocked counts a write error, cuts the segment back to its last
// whole chunk (removing it when nothing whole is left) and drops it.
func (s *Segments) failLocked(err error) error {
	if s.m != nil {
		s.m.ChunkWriteErrors.Inc()
	}
	name := s.f.Name()
	if s.good > 0 {
		_ = s.f.Truncate(s.good)
		_ = s.f.Close()
	} else {
		_ = s.f.Close()
		_ = os.Remove(name)
	}
	if s.cw != nil {
		_ = s.cw.Close()
	}
	s.cw, s.bw, s.f, s.good = nil, nil, nil, 0
	return fmt.Errorf("archive %s: %w", name, err)
}

func (s *Segments) flushLocked(sync bool) error {
	if s.cw == nil {
		return nil
	}
	if err := s.cw.Flush(); err != nil {
		return s.failLocked(err)
	}
	if err := s.bw.Flush(); err != nil {
		return s.failLocked(err)
	}
	if sync {
		if err := s.f.Sync(); err != nil {
			return s.failLocked(err)
		}
	}
	return nil
}

func (s *Segments) closeLocked() error {
	if s.cw == nil {
		return nil
	}
	if err := s.flushLocked(s.cfg.Fsync != "never"); err != nil {
		return err // failLocked has cut and dropped the segment
	}
	err := errors.Join(s.cw.Close(), s.f.Close())
	s.cw, s.bw, s.f, s.good = nil, nil, nil, 0
	return err
}

func (s *Segments) rotateLocked() error {
	if err := s.closeLocked(); err != nil {
		return err
	}
	s.n++
	// The process ID keeps two processes started in the same second (serve
	// and a CLI ingest) from colliding in one directory.
	path := filepath.Join(s.cfg.Dir, fmt.Sprintf("profiles-%s-%d-%06d.tca", s.stamp, os.Getpid(), s.n))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		if s.m != nil {
			s.m.ChunkWriteErrors.Inc()
		}
		return fmt.Errorf("archive segment: %w", err)
	}
	s.f, s.bw = f, bufio.NewWriterSize(f, 256<<10)
	if s.cw, err = NewChunkedWriter(s.bw, s.codec, s.cfg.ChunkBytes, s.m); err != nil {
		_ = f.Close()
		s.f, s.bw = nil, nil
		return err
	}
	if s.m != nil {
		s.m.Segments.Inc()
	}
	return nil
}

// Close flushes the last chunk and closes the segment.
func (s *Segments) Close() error {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeLocked()
}

// Files lists the segment files in dir, oldest first.
func Files(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.tca"))
	sort.Strings(files)
	return files, err
}
