package sandbox

import (
	"fmt"
	"os"
	"time"
)

// Pending is a sandbox Begin is still attaching to the network. Its methods are safe
// for concurrent use.
type Pending struct {
	partial Sandbox
	done    chan struct{}
	sb      *Sandbox // set before done is closed, on success
	err     error    // set before done is closed, on failure
	trace   func(phase string, d time.Duration)
}

// finishedPending wraps a sandbox that exists already.
func finishedPending(sb *Sandbox) *Pending {
	p := &Pending{partial: *sb, sb: sb, done: make(chan struct{})}
	close(p.done)
	return p
}

// Sandbox returns the sandbox as far as it is known before the CNI ADD ends: UID,
// names, Hostname, NetNSPath, the three file paths, Network and Ports. The addresses,
// gateways and HostVeth are unset. The result is a copy.
func (p *Pending) Sandbox() *Sandbox {
	sb := p.partial
	sb.Ports = append([]PortMapping(nil), p.partial.Ports...)
	return &sb
}

// Done is closed when the background part has ended, with success or not.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait blocks until the background part has ended and returns the complete sandbox,
// or the error after the sandbox was rolled back (nothing of it is left; the caller
// may Begin again). Cancelling the ctx given to Begin makes it end early with an
// error. Wait may be called any number of times and returns the same result.
//
// With WithTrace, each Wait reports the time it blocked as phase "wait" (0 when the
// ADD had ended already): how much of the ADD the caller did not overlap.
func (p *Pending) Wait() (*Sandbox, error) {
	t0 := time.Now()
	<-p.done
	if p.trace != nil {
		p.trace("wait", time.Since(t0))
	}
	return p.sb, p.err
}

// writeFileInPlace replaces the contents of the existing file path without changing its
// inode, so that bind mounts of it (a container created before the write) show the new
// contents. It is not atomic: use it only while nobody reads the file.
func writeFileInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
