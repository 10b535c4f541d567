package executor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"gantry.io/gantry/api"
)

// Exec runs cmd in a running container of pod namespace/name, with the container's
// environment, user and working directory, and returns its exit code. stdin, stdout
// and stderr may be nil. Returns ErrNotFound if the pod or container is unknown and
// ErrFailedPrecondition if the container is not running.
func (e *Executor) Exec(ctx context.Context, ns, pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(cmd) == 0 {
		return -1, fmt.Errorf("exec: empty command: %w", api.ErrInvalidArgument)
	}
	w, err := e.workerByName(ns, pod)
	if err != nil {
		return -1, err
	}
	task, err := w.runningTask(container)
	if err != nil {
		return -1, err
	}
	code, _, err := e.execIn(e.nsCtx(ctx), task, cmd, stdin, stdout, stderr)
	return code, err
}

// runningTask returns the task of a running container. It is called from other
// goroutines, so it asks containerd rather than reading the worker's state.
func (w *podWorker) runningTask(container string) (containerd.Task, error) {
	cl := w.e.client()
	ctx := w.e.nsCtx(context.Background())
	ctrs, err := cl.Containers(ctx, fmt.Sprintf(`labels.%q==%q,labels.%q==%q`, LabelPodUID, w.uid, LabelContainer, container))
	if err != nil {
		return nil, fmt.Errorf("container %q of pod %s/%s: %w: %v", container, w.ns, w.name, api.ErrUnavailable, err)
	}
	for _, c := range ctrs {
		task, err := c.Task(ctx, nil)
		if err != nil {
			continue
		}
		if st, err := task.Status(ctx); err == nil && st.Status == containerd.Running {
			return task, nil
		}
	}
	if len(ctrs) == 0 {
		return nil, fmt.Errorf("container %q of pod %s/%s: %w", container, w.ns, w.name, api.ErrNotFound)
	}
	return nil, fmt.Errorf("container %q of pod %s/%s is not running: %w", container, w.ns, w.name, api.ErrFailedPrecondition)
}

// execIn runs cmd as an extra process of task. With nil stdout and stderr the combined
// output is returned (bounded to 64 KiB), as probes and hooks want it.
func (e *Executor) execIn(ctx context.Context, task containerd.Task, cmd []string, stdin io.Reader, stdout, stderr io.Writer) (int, []byte, error) {
	if task == nil {
		return -1, nil, fmt.Errorf("exec: no task: %w", api.ErrFailedPrecondition)
	}
	ctx = e.nsCtx(ctx)
	spec, err := task.Spec(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("exec: read spec: %w", err)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false
	var out *limitedBuffer
	if stdout == nil && stderr == nil {
		out = &limitedBuffer{max: 64 << 10}
		stdout, stderr = out, out
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	id := execID()
	var in *eofCloser
	if stdin != nil {
		in = &eofCloser{r: stdin, ready: make(chan struct{})}
		stdin = in
		pspec.Terminal = false
	}
	proc, err := task.Exec(ctx, id, &pspec, cio.NewCreator(cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(e.fifoDir())))
	if err != nil {
		return -1, nil, fmt.Errorf("exec %v: %w", cmd, err)
	}
	if in != nil {
		in.proc = proc
		close(in.ready)
	}
	// Delete also closes the process's IO and removes its FIFOs.
	defer func() { _, _ = proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill) }()
	ch, err := proc.Wait(ctx)
	if err != nil {
		return -1, nil, fmt.Errorf("exec %v: wait: %w", cmd, err)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, nil, fmt.Errorf("exec %v: %w", cmd, err)
	}
	select {
	case s := <-ch:
		if pio := proc.IO(); pio != nil {
			pio.Wait()
		}
		code, _, err := s.Result()
		if err != nil {
			return -1, out.bytes(), fmt.Errorf("exec %v: %w", cmd, err)
		}
		return int(code), out.bytes(), nil
	case <-ctx.Done():
		_ = proc.Kill(context.WithoutCancel(ctx), 9)
		return -1, out.bytes(), fmt.Errorf("exec %v: %w", cmd, ctx.Err())
	}
}

// eofCloser closes the exec'd process's stdin when the caller's reader ends, so a
// command reading stdin sees EOF.
type eofCloser struct {
	r     io.Reader
	proc  containerd.Process
	ready chan struct{}
	once  sync.Once
}

func (c *eofCloser) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		c.once.Do(func() {
			go func() {
				<-c.ready
				_ = c.proc.CloseIO(context.Background(), containerd.WithStdinCloser)
			}()
		})
	}
	return n, err
}

func execID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "exec-" + hex.EncodeToString(b)
}

type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		if len(p) > room {
			l.buf.Write(p[:room])
		} else {
			l.buf.Write(p)
		}
	}
	return len(p), nil
}

func (l *limitedBuffer) bytes() []byte {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf.Bytes()...)
}
