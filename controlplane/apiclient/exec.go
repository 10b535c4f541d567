package apiclient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// Exec output framing. The response body of POST .../pods/NAME/exec is a sequence of
// frames: one byte stream id, a big-endian uint32 length, then that many bytes. The
// last frame is FrameExit (the decimal exit code) or FrameError (a message). The
// request body, if any, is the command's stdin.
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameExit   byte = 3
	FrameError  byte = 4
)

// maxFrame bounds one frame so a corrupt stream cannot make a reader allocate much.
const maxFrame = 1 << 20

// FrameWriter writes frames of one stream to a shared writer; Flush, if set, is called
// after every frame so output reaches the caller as it is produced.
type FrameWriter struct {
	mu    *sync.Mutex
	w     io.Writer
	id    byte
	flush func()
}

// NewFrameWriters returns stdout and stderr writers that frame onto w.
func NewFrameWriters(w io.Writer, flush func()) (stdout, stderr *FrameWriter) {
	mu := &sync.Mutex{}
	return &FrameWriter{mu: mu, w: w, id: FrameStdout, flush: flush},
		&FrameWriter{mu: mu, w: w, id: FrameStderr, flush: flush}
}

// Write frames p.
func (f *FrameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		if err := f.frame(f.id, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// Exit writes the final frame: the exit code, or the error if err is not nil.
func (f *FrameWriter) Exit(code int, err error) error {
	if err != nil {
		return f.frame(FrameError, []byte(err.Error()))
	}
	return f.frame(FrameExit, []byte(strconv.Itoa(code)))
}

func (f *FrameWriter) frame(id byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hdr [5]byte
	hdr[0] = id
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := f.w.Write(p); err != nil {
		return err
	}
	if f.flush != nil {
		f.flush()
	}
	return nil
}

// ErrRemote is wrapped by ReadFrames when the agent reported a failure to run the
// command (not a non-zero exit).
var ErrRemote = errors.New("exec failed on the node")

// ReadFrames demultiplexes an exec stream into stdout and stderr and returns the
// command's exit code.
func ReadFrames(r io.Reader, stdout, stderr io.Writer) (int, error) {
	var hdr [5]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return -1, fmt.Errorf("exec stream ended without an exit code: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > maxFrame {
			return -1, fmt.Errorf("exec stream: frame of %d bytes", n)
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return -1, fmt.Errorf("exec stream: %w", err)
		}
		switch hdr[0] {
		case FrameStdout:
			if _, err := stdout.Write(buf); err != nil {
				return -1, err
			}
		case FrameStderr:
			if _, err := stderr.Write(buf); err != nil {
				return -1, err
			}
		case FrameExit:
			code, err := strconv.Atoi(string(buf))
			if err != nil {
				return -1, fmt.Errorf("exec stream: exit code %q", buf)
			}
			return code, nil
		case FrameError:
			return -1, fmt.Errorf("%s: %w", buf, ErrRemote)
		default:
			return -1, fmt.Errorf("exec stream: unknown frame %d", hdr[0])
		}
	}
}
