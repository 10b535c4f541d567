package executor

import (
	"context"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/logs"
)

// LogOptions selects what Logs returns.
type LogOptions struct {
	// Follow keeps streaming new lines until the container's run ends (the rest of its
	// output is written first) or ctx is done.
	Follow bool
	// Tail returns only the last Tail lines; 0 returns all.
	Tail int
	// Timestamps prefixes each line with its RFC 3339 time.
	Timestamps bool
	// Previous reads the log of the container's previous run (before its last restart).
	Previous bool
}

// Logs writes the captured stdout/stderr of a container of pod namespace/name to w.
// Returns ErrNotFound if the pod, the container or (with Previous) an earlier run is
// unknown.
func (e *Executor) Logs(ctx context.Context, ns, pod, container string, opts LogOptions, w io.Writer) error {
	wk, err := e.workerByName(ns, pod)
	if err != nil {
		return err
	}
	p := wk.pod()
	known := false
	for _, c := range append(append([]corev1.Container{}, p.Pod.Spec.InitContainers...), p.Pod.Spec.Containers...) {
		if c.Name == container {
			known = true
		}
	}
	if !known {
		return fmt.Errorf("container %q in pod %s/%s: %w", container, ns, pod, api.ErrNotFound)
	}
	restarts := wk.restartCount(container)
	if opts.Previous {
		if restarts == 0 {
			return fmt.Errorf("previous run of container %q in pod %s/%s: %w", container, ns, pod, api.ErrNotFound)
		}
		restarts--
	}
	path := logs.Path(e.logDir(wk.uid), container, int(restarts))
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("log of container %q in pod %s/%s: %w", container, ns, pod, api.ErrNotFound)
	}
	tail := opts.Tail
	if tail <= 0 {
		tail = -1 // everything
	}
	return logs.Read(ctx, path, logs.ReadOptions{Follow: opts.Follow, Tail: tail, Timestamps: opts.Timestamps,
		Done: wk.logWritten(container, restarts)}, w)
}

// restartCount is read from the published status: the worker's own state belongs to
// its goroutine.
func (w *podWorker) restartCount(container string) int32 {
	st, _ := w.snapshot()
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		if cs.Name == container {
			return cs.RestartCount
		}
	}
	return 0
}
