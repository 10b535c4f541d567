package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPollInterval is how often a follower checks the file for growth or
// rotation once it has read everything.
const DefaultPollInterval = 100 * time.Millisecond

// ReadOptions selects what Read prints.
type ReadOptions struct {
	// Follow keeps reading as the file grows and across rotations, until ctx is done
	// or Done is closed.
	Follow bool
	// Tail is how many of the last lines to print first: negative for all, 0 for
	// none (with Follow: only new lines), N for the last N. Lines are whole lines,
	// however many 16 KiB records they were split into.
	Tail int
	// Timestamps prefixes every line with its record time (RFC 3339, UTC, ns).
	Timestamps bool
	// Stream restricts output to Stdout or Stderr; "" prints both.
	Stream string
	// Since drops lines written before it (zero: none dropped). Applied before Tail.
	Since time.Time
	// Done, when closed while following, makes Read print what is left and return
	// nil: the executor closes it when the container exits.
	Done <-chan struct{}
	// PollInterval overrides DefaultPollInterval.
	PollInterval time.Duration
}

// Path is the naming scheme the executor and Read share: one file per container
// instance, <dir>/<container>/<restartCount>.log, so "previous" (kubectl logs -p) is
// Path(dir, container, restartCount-1). container must be a DNS-1123 label, as the
// manifest validation guarantees.
func Path(dir, container string, restartCount int) string {
	return filepath.Join(dir, container, strconv.Itoa(restartCount)+".log")
}

// Prune removes the log files (and their rotations) of the container's instances
// older than keepFrom: Prune(dir, c, restartCount-1) keeps the current and the
// previous instance, as kubelet does. A missing directory is not an error.
func Prune(dir, container string, keepFrom int) error {
	entries, err := os.ReadDir(filepath.Join(dir, container))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("prune logs of %s: %w", container, err)
	}
	var errs []error
	for _, e := range entries {
		name, _, _ := strings.Cut(e.Name(), ".log")
		n, err := strconv.Atoi(name)
		if err != nil || n >= keepFrom || !strings.Contains(e.Name(), ".log") {
			continue
		}
		if err := os.Remove(filepath.Join(dir, container, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("prune logs: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Read prints the log at path (and its rotated predecessors path.N … path.1) to w as
// selected by opts. It returns an error wrapping os.ErrNotExist if no file exists,
// ctx.Err() if ctx ends a non-following read, and nil when a follow ends by ctx or
// Done. Malformed records are skipped.
func Read(ctx context.Context, path string, opts ReadOptions, w io.Writer) error {
	err := read(ctx, path, opts, w)
	if opts.Follow && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func read(ctx context.Context, path string, opts ReadOptions, w io.Writer) error {
	out := &printer{w: w, opts: opts, pending: map[string]*line{}}
	if opts.Tail >= 0 {
		out.ring = make([]*line, 0, min(opts.Tail, 1024))
	}

	cur, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	r := &recordReader{f: cur, br: bufio.NewReaderSize(cur, 64<<10)}
	defer func() { r.f.Close() }()
	for _, name := range rotatedFiles(path) {
		if err := readFile(ctx, name, out); err != nil {
			return err
		}
	}
	if err := r.drain(ctx, out); err != nil {
		return err
	}
	if !opts.Follow {
		out.flushPending()
		return out.flushRing()
	}
	if err := out.flushRing(); err != nil {
		return err
	}

	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-opts.Done:
			// The writer is gone: read what it left, across a last rotation too.
			if err := catchUp(context.WithoutCancel(ctx), path, &r, out); err != nil {
				return err
			}
			out.flushPending()
			return out.err
		case <-timer.C:
		}
		if err := catchUp(ctx, path, &r, out); err != nil {
			return err
		}
		timer.Reset(interval)
	}
}

// catchUp reads everything written so far, following rotations and truncations; *r
// is replaced when the live file changed.
func catchUp(ctx context.Context, path string, r **recordReader, out *printer) error {
	for {
		moved, err := (*r).step(ctx, path, r, out)
		if err != nil || !moved {
			return err
		}
	}
}

// step drains the open file, then checks whether path is now another file (rotated:
// switch to it) or shorter (truncated: start again at 0). moved reports a switch.
func (r *recordReader) step(ctx context.Context, path string, into **recordReader, out *printer) (moved bool, err error) {
	if err := r.drain(ctx, out); err != nil {
		return false, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return false, nil // between a rename and the new file: next poll
	}
	old, err := r.f.Stat()
	if err != nil {
		return false, fmt.Errorf("read log: %w", err)
	}
	switch {
	case !os.SameFile(st, old):
		next, err := r.switchTo(ctx, path, old, out)
		if err != nil || next == nil {
			return false, err
		}
		r.f.Close()
		*into = &recordReader{f: next, br: bufio.NewReaderSize(next, 64<<10)}
		return true, nil
	case st.Size() < r.offset:
		if _, err := r.f.Seek(0, io.SeekStart); err != nil {
			return false, fmt.Errorf("read log: %w", err)
		}
		r.br.Reset(r.f)
		r.offset, r.partial = 0, nil
		return true, nil
	}
	return false, nil
}

// switchTo handles a rotation seen by a follower: it finishes the old file, opens the
// new live file, and reads the rotated files written in between (when the writer
// rotated more than once between two polls). It returns nil if path is gone again.
func (r *recordReader) switchTo(ctx context.Context, path string, old os.FileInfo, out *printer) (*os.File, error) {
	if err := r.drain(ctx, out); err != nil { // what was written before the rename
		return nil, err
	}
	next, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	nextInfo, err := next.Stat()
	if err != nil {
		next.Close()
		return nil, nil
	}
	names := rotatedFiles(path) // oldest first
	var between []string
	for i := len(names) - 1; i >= 0; i-- { // newest rotated first, back to our old file
		st, err := os.Stat(names[i])
		if err != nil {
			continue
		}
		if os.SameFile(st, old) {
			break
		}
		if !os.SameFile(st, nextInfo) {
			between = append([]string{names[i]}, between...)
		}
	}
	for _, name := range between {
		if err := readFile(ctx, name, out); err != nil {
			next.Close()
			return nil, err
		}
	}
	return next, nil
}

// rotatedFiles returns path.N … path.1 that exist, oldest first.
func rotatedFiles(path string) []string {
	matches, _ := filepath.Glob(globEscape(path) + ".*")
	type numbered struct {
		n    int
		name string
	}
	var files []numbered
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+"."))
		if err == nil && n > 0 {
			files = append(files, numbered{n, m})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].n > files[j].n })
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	return names
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func readFile(ctx context.Context, name string, out *printer) error {
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // rotated away while we listed
		}
		return fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	r := &recordReader{f: f, br: bufio.NewReaderSize(f, 64<<10)}
	return r.drain(ctx, out)
}

// recordReader reads complete records from a file that may still be growing.
type recordReader struct {
	f       *os.File
	br      *bufio.Reader
	partial []byte // bytes of a record whose newline has not been written yet
	offset  int64  // bytes consumed as complete records
}

// drain feeds every complete record currently in the file to out.
func (r *recordReader) drain(ctx context.Context, out *printer) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk, err := r.br.ReadSlice('\n')
		if len(chunk) > 0 {
			if err == nil && len(r.partial) == 0 {
				r.offset += int64(len(chunk))
				out.record(chunk[:len(chunk)-1])
			} else {
				r.partial = append(r.partial, chunk...)
				if err == nil {
					r.offset += int64(len(r.partial))
					out.record(r.partial[:len(r.partial)-1])
					r.partial = r.partial[:0]
				}
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
			if out.err != nil {
				return out.err
			}
			continue
		case errors.Is(err, io.EOF):
			return out.err
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return fmt.Errorf("read log %s: %w", r.f.Name(), err)
		}
	}
}

// line is one logical line: the records of a stream up to its F record.
type line struct {
	ts   string
	msg  []byte
	done bool
}

// printer assembles records into lines, filters them, and either prints them or keeps
// the last Tail in a ring until the initial read is over.
type printer struct {
	w       io.Writer
	opts    ReadOptions
	pending map[string]*line // per stream: a line whose F record has not come yet
	ring    []*line          // nil: print at once
	start   int              // ring start when full
	live    bool             // the initial tail has been printed
	err     error
}

func (p *printer) record(rec []byte) {
	ts, rest, ok := bytes.Cut(rec, []byte{' '})
	if !ok {
		return
	}
	streamName, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return
	}
	tag, msg, _ := bytes.Cut(rest, []byte{' '})
	s := string(streamName)
	if p.opts.Stream != "" && s != p.opts.Stream {
		return
	}
	l := p.pending[s]
	if l == nil {
		l = &line{ts: string(ts)}
	}
	l.msg = append(l.msg, msg...)
	if string(tag) == tagPartial {
		p.pending[s] = l
		return
	}
	delete(p.pending, s)
	l.done = true
	p.emit(l)
}

// flushPending emits lines still waiting for their F record (the writer died mid-line).
func (p *printer) flushPending() {
	for _, s := range []string{Stdout, Stderr} {
		if l := p.pending[s]; l != nil {
			delete(p.pending, s)
			p.emit(l)
		}
	}
	for s, l := range p.pending {
		delete(p.pending, s)
		p.emit(l)
	}
}

func (p *printer) emit(l *line) {
	if !p.opts.Since.IsZero() {
		t, err := time.Parse(time.RFC3339Nano, l.ts)
		if err == nil && t.Before(p.opts.Since) {
			return
		}
	}
	if p.live || p.opts.Tail < 0 {
		p.print(l)
		return
	}
	if p.opts.Tail == 0 {
		return
	}
	if len(p.ring) < p.opts.Tail {
		p.ring = append(p.ring, l)
		return
	}
	p.ring[p.start] = l
	p.start = (p.start + 1) % len(p.ring)
}

// flushRing prints the kept tail; later lines print at once.
func (p *printer) flushRing() error {
	for i := range p.ring {
		p.print(p.ring[(p.start+i)%len(p.ring)])
	}
	p.ring, p.start, p.live = nil, 0, true
	return p.err
}

func (p *printer) print(l *line) {
	if p.err != nil {
		return
	}
	var b []byte
	if p.opts.Timestamps {
		b = append(b, l.ts...)
		b = append(b, ' ')
	}
	b = append(b, l.msg...)
	b = append(b, '\n')
	if _, err := p.w.Write(b); err != nil {
		p.err = fmt.Errorf("write log output: %w", err)
	}
}
