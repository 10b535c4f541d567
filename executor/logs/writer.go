package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Defaults of the writer.
const (
	DefaultMaxSize  = 10 << 20 // bytes per file before rotation
	DefaultMaxFiles = 5        // files kept: path, path.1, …, path.4
	// MaxLineSize is the longest message of one record; longer lines are split into
	// P records of this size followed by an F record with the rest.
	MaxLineSize = 16 << 10
)

// TimeFormat is the record timestamp: RFC 3339 in UTC with exactly nine fraction
// digits, so records sort as text.
const TimeFormat = "2006-01-02T15:04:05.000000000Z07:00"

// Stream names.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Tags.
const (
	tagFull    = "F"
	tagPartial = "P"
)

// Option configures Open.
type Option func(*options)

type options struct {
	maxSize  int64
	maxFiles int
	now      func() time.Time
}

// WithMaxSize rotates the file before a record would take it past n bytes (a single
// record larger than n still goes into a file of its own). Default DefaultMaxSize.
func WithMaxSize(n int64) Option { return func(o *options) { o.maxSize = n } }

// WithMaxFiles keeps n files in all, the live one included (path, path.1 … path.n-1;
// higher numbers are older). 1 truncates on rotation. Default DefaultMaxFiles.
func WithMaxFiles(n int) Option { return func(o *options) { o.maxFiles = n } }

// WithClock sets the time source of record timestamps. Default time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// File is one container instance's log file. Its streams may be written
// concurrently; every record is a single write, so readers never see records of two
// streams mixed within a line.
type File struct {
	path string
	opts options

	mu      sync.Mutex
	f       *os.File
	size    int64
	closed  bool
	streams []*stream
}

// Open opens (creating it and its directory if needed) the log file at path for
// appending. It returns an error if the directory or file cannot be created.
func Open(path string, opts ...Option) (*File, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxSize <= 0 {
		o.maxSize = DefaultMaxSize
	}
	if o.maxFiles <= 0 {
		o.maxFiles = DefaultMaxFiles
	}
	if o.now == nil {
		o.now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log dir for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log %s: %w", path, err)
	}
	return &File{path: path, opts: o, f: f, size: st.Size()}, nil
}

// Path returns the file's path.
func (lf *File) Path() string { return lf.path }

// Stream returns a writer for the named stream (Stdout or Stderr). Bytes are cut into
// lines at '\n'; an unterminated line is held until its newline arrives, it reaches
// MaxLineSize (then written as a P record), or the stream or File is closed (then
// written as an F record). Closing the stream does not close the File.
func (lf *File) Stream(name string) io.WriteCloser {
	s := &stream{file: lf, name: name}
	lf.mu.Lock()
	lf.streams = append(lf.streams, s)
	lf.mu.Unlock()
	return s
}

// Close flushes every stream's held partial line and closes the file. Writes after
// Close fail with os.ErrClosed. Close is safe to call more than once.
func (lf *File) Close() error {
	lf.mu.Lock()
	streams := lf.streams
	lf.mu.Unlock()
	var errs []error
	for _, s := range streams {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed {
		return errors.Join(errs...)
	}
	lf.closed = true
	if err := lf.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close log %s: %w", lf.path, err))
	}
	return errors.Join(errs...)
}

// writeRecord appends one record, rotating first if it would overflow the file.
func (lf *File) writeRecord(streamName, tag string, msg []byte) error {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.closed {
		return fmt.Errorf("log %s: %w", lf.path, os.ErrClosed)
	}
	rec := make([]byte, 0, len(TimeFormat)+len(streamName)+len(msg)+5)
	rec = lf.opts.now().UTC().AppendFormat(rec, TimeFormat)
	rec = append(rec, ' ')
	rec = append(rec, streamName...)
	rec = append(rec, ' ')
	rec = append(rec, tag...)
	rec = append(rec, ' ')
	rec = append(rec, msg...)
	rec = append(rec, '\n')
	if lf.size > 0 && lf.size+int64(len(rec)) > lf.opts.maxSize {
		if err := lf.rotate(); err != nil {
			return err
		}
	}
	n, err := lf.f.Write(rec)
	lf.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log %s: %w", lf.path, err)
	}
	return nil
}

// rotate shifts path.i to path.i+1 (dropping the oldest) and starts a new path.
func (lf *File) rotate() error {
	if err := lf.f.Close(); err != nil {
		return fmt.Errorf("rotate log %s: close: %w", lf.path, err)
	}
	for i := lf.opts.maxFiles - 1; i >= 1; i-- {
		src, dst := rotatedName(lf.path, i-1), rotatedName(lf.path, i)
		if err := os.Rename(src, dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate log %s: %w", lf.path, err)
		}
	}
	f, err := os.OpenFile(lf.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o640)
	if err != nil {
		lf.closed = true
		return fmt.Errorf("rotate log %s: reopen: %w", lf.path, err)
	}
	lf.f, lf.size = f, 0
	return nil
}

// rotatedName is path for i == 0, else path.i.
func rotatedName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// stream cuts one stream's bytes into records.
type stream struct {
	file *File
	name string

	mu     sync.Mutex
	buf    []byte
	closed bool
}

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("log stream %s: %w", s.name, os.ErrClosed)
	}
	written := 0
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i >= 0 && len(s.buf)+i <= MaxLineSize {
			line := p[:i]
			if len(s.buf) > 0 {
				line = append(s.buf, line...)
			}
			if err := s.file.writeRecord(s.name, tagFull, line); err != nil {
				return written, err
			}
			s.buf = s.buf[:0]
			written += i + 1
			p = p[i+1:]
			continue
		}
		// No newline within reach: fill the buffer up to MaxLineSize.
		room := MaxLineSize - len(s.buf)
		take := len(p)
		if i >= 0 || take > room {
			take = min(room, take)
		}
		s.buf = append(s.buf, p[:take]...)
		written += take
		p = p[take:]
		if len(s.buf) == MaxLineSize {
			if err := s.file.writeRecord(s.name, tagPartial, s.buf); err != nil {
				return written, err
			}
			s.buf = s.buf[:0]
		}
	}
	return written, nil
}

// Close writes a held partial line as a complete record.
func (s *stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if len(s.buf) == 0 {
		return nil
	}
	err := s.file.writeRecord(s.name, tagFull, s.buf)
	s.buf = nil
	return err
}

var _ io.WriteCloser = (*stream)(nil)
