package executor

import (
	"context"
	"os"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/executor/volumes"
)

// adoptContainers takes over the containers a previous agent left for this pod. With
// the same spec hash, running tasks are re-attached (logs, exit wait, probes) without
// being restarted, exited ones are recorded as terminated, and completed init
// containers count as done. With another spec hash the old containers and sandbox are
// removed first: the pod is replaced.
func (w *podWorker) adoptContainers(ctx context.Context) {
	if w.adoptTerminal() {
		for _, ctr := range w.adopt {
			w.e.deleteContainer(ctx, ctr)
		}
		w.adopt = nil
		return
	}
	if len(w.adopt) == 0 {
		return
	}
	p := w.pod()
	specs := map[string]*corev1.Container{}
	inits := map[string]bool{}
	for i := range p.Pod.Spec.InitContainers {
		specs[p.Pod.Spec.InitContainers[i].Name] = &p.Pod.Spec.InitContainers[i]
		inits[p.Pod.Spec.InitContainers[i].Name] = true
	}
	for i := range p.Pod.Spec.Containers {
		specs[p.Pod.Spec.Containers[i].Name] = &p.Pod.Spec.Containers[i]
	}
	type found struct {
		ctr    containerd.Container
		labels map[string]string
	}
	best := map[string]found{}
	stale := false
	for _, ctr := range w.adopt {
		labels, err := ctr.Labels(ctx)
		if err != nil {
			continue
		}
		name := labels[LabelContainer]
		if labels[LabelSpecHash] != w.hash || specs[name] == nil {
			stale = true
			w.e.deleteContainer(ctx, ctr)
			continue
		}
		if cur, ok := best[name]; ok {
			if restartCountLabel(cur.labels) >= restartCountLabel(labels) {
				w.e.deleteContainer(ctx, ctr)
				continue
			}
			w.e.deleteContainer(ctx, cur.ctr)
		}
		best[name] = found{ctr, labels}
	}
	w.adopt = nil
	if stale && len(best) == 0 {
		w.event("Normal", "Replacing", "", "spec changed while the agent was away; replacing the pod")
		_ = w.e.opts.sandbox.Teardown(ctx, w.uid)
		_ = volumes.Cleanup(w.e.podDir(w.uid))
		return
	}
	for name, f := range best {
		st := w.state(name, inits[name])
		st.restarts = restartCountLabel(f.labels)
		st.id, st.ctr = f.ctr.ID(), f.ctr
		if img, err := f.ctr.Image(ctx); err == nil {
			st.image = img.Name()
		}
		if t, err := time.Parse(time.RFC3339Nano, f.labels[LabelStartedAt]); err == nil {
			st.started = t
		}
		if st.init && f.labels[LabelExitCode] == "0" {
			fin, _ := time.Parse(time.RFC3339Nano, f.labels[LabelFinishedAt])
			st.succeeded = true
			st.term = &corev1.ContainerStateTerminated{ExitCode: 0, Reason: ReasonCompleted,
				StartedAt: metav1.NewTime(st.started), FinishedAt: metav1.NewTime(fin), ContainerID: "containerd://" + st.id}
			continue
		}
		if err := w.openLog(st); err != nil {
			w.event("Warning", "AdoptFailed", name, "%v", err)
		}
		var attach cio.Attach
		if st.logf != nil {
			attach = cio.NewAttach(cio.WithStreams(nil, st.logf.Stream("stdout"), st.logf.Stream("stderr")))
		}
		task, err := f.ctr.Task(ctx, attach)
		if err != nil {
			// No task: it never started or was deleted; start afresh (same run number).
			w.closeLog(st)
			if !errdefs.IsNotFound(err) {
				w.event("Warning", "AdoptFailed", name, "load task: %v", err)
			}
			w.e.deleteContainer(ctx, f.ctr)
			st.ctr, st.id = nil, ""
			continue
		}
		ch, err := task.Wait(ctx)
		if err != nil {
			w.closeLog(st)
			w.e.deleteContainer(ctx, f.ctr)
			st.ctr, st.id = nil, ""
			continue
		}
		st.task, st.io = task, task.IO()
		st.running = true
		if st.started.IsZero() {
			st.started = time.Now()
		}
		st.exitCh = make(chan containerd.ExitStatus, 1)
		go w.waitExit(ctx, st, f.ctr, ch, st.exitCh)
		w.event("Normal", "Adopted", name, "adopted running container %s (pid %d)", st.id, task.Pid())
	}
	// Probes need the sandbox IP; start them once the sandbox is known.
	w.mu.Lock()
	w.dataDirty = true
	w.mu.Unlock()
	if sb, err := w.e.opts.sandbox.Get(w.uid); err == nil {
		w.sb = sb
		for name, st := range w.ctrs {
			if st.running && !st.init {
				w.startProbes(ctx, p, specs[name], st)
			}
		}
	}
}

// deleteContainer kills and deletes a container's task (if any), then the container
// and its snapshot. Errors are logged: garbage collection retries.
func (e *Executor) deleteContainer(ctx context.Context, ctr containerd.Container) {
	if task, err := ctr.Task(ctx, nil); err == nil {
		if st, err := task.Status(ctx); err == nil && st.Status != containerd.Stopped {
			_ = task.Kill(ctx, 9, containerd.WithKillAll)
			if ch, err := task.Wait(ctx); err == nil {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
		}
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			e.opts.logger.Warn("delete task", "container", ctr.ID(), "err", err)
		}
	}
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		e.opts.logger.Warn("delete container", "container", ctr.ID(), "err", err)
	}
	e.forgetOOM(ctr.ID())
	_ = os.RemoveAll(e.fifoDir() + "/" + ctr.ID())
}

// deletePodContainers deletes every containerd container labelled with this pod UID.
func (e *Executor) deletePodContainers(ctx context.Context, uid string) {
	cl := e.client()
	if cl == nil {
		return
	}
	ctrs, err := cl.Containers(ctx, "labels."+quoteLabel(LabelPodUID)+"=="+quoteLabel(uid))
	if err != nil {
		return
	}
	for _, c := range ctrs {
		e.deleteContainer(ctx, c)
	}
}

func quoteLabel(s string) string { return `"` + s + `"` }

// gcLoop removes, every 10 s once the first Sync has told the executor what belongs on
// the node, the containers, sandboxes (netns, CNI attachment, IPAM lease), volumes and
// cgroups of pods it does not hold.
func (e *Executor) gcLoop(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		e.CollectGarbage(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CollectGarbage runs one garbage-collection pass now (see gcLoop). It does nothing
// before the first Sync.
func (e *Executor) CollectGarbage(ctx context.Context) {
	ctx = e.nsCtx(ctx)
	e.mu.Lock()
	synced := e.synced
	e.mu.Unlock()
	cl := e.client()
	if !synced || cl == nil {
		return
	}
	owned := func(uid string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		_, ok := e.workers[uid]
		return ok
	}
	if ctrs, err := cl.Containers(ctx, "labels."+quoteLabel(LabelPodUID)); err == nil {
		for _, c := range ctrs {
			labels, err := c.Labels(ctx)
			if err != nil || owned(labels[LabelPodUID]) {
				continue
			}
			e.opts.logger.Info("garbage collecting container", "container", c.ID(), "pod", labels[LabelPodNamespace]+"/"+labels[LabelPodName])
			e.deleteContainer(ctx, c)
		}
	}
	if uids, err := e.opts.sandbox.List(); err == nil {
		for _, uid := range uids {
			if owned(uid) {
				continue
			}
			e.opts.logger.Info("garbage collecting sandbox", "uid", uid)
			if err := e.opts.sandbox.Teardown(ctx, uid); err != nil {
				e.opts.logger.Warn("garbage collecting sandbox", "uid", uid, "err", err)
			}
		}
	}
	if entries, err := os.ReadDir(e.podsDir()); err == nil {
		for _, d := range entries {
			uid := d.Name()
			if owned(uid) {
				continue
			}
			if err := volumes.Cleanup(e.podDir(uid)); err != nil {
				e.opts.logger.Warn("garbage collecting volumes", "uid", uid, "err", err)
				continue
			}
			removeCgroups(uid)
			_ = os.RemoveAll(e.podDir(uid))
		}
	}
}

// adoptTerminal keeps a pod that had finished before this agent started finished:
// a pod whose reported phase is Succeeded or Failed never runs again (terminal
// phases are final, as in Kubernetes), so a finished Job pod is not run a second
// time after a restart (its containers were deleted when they exited, so there is
// nothing to adopt). The containers' reported terminated states are restored as
// final; the pod's log files stay (the pod is still assigned). Reports whether
// the pod was terminal.
func (w *podWorker) adoptTerminal() bool {
	p := w.pod()
	phase := p.Pod.Status.Phase
	if phase != corev1.PodSucceeded && phase != corev1.PodFailed {
		return false
	}
	reported := map[string]corev1.ContainerStatus{}
	for _, cs := range p.Pod.Status.InitContainerStatuses {
		reported["init/"+cs.Name] = cs
	}
	for _, cs := range p.Pod.Status.ContainerStatuses {
		reported[cs.Name] = cs
	}
	restore := func(name string, init bool) {
		key := name
		if init {
			key = "init/" + name
		}
		st := w.state(name, init)
		cs := reported[key]
		st.restarts = cs.RestartCount
		st.final = true
		if t := cs.State.Terminated; t != nil {
			term := *t
			st.term = &term
		} else {
			code := int32(0)
			if phase == corev1.PodFailed {
				code = 1
			}
			st.term = &corev1.ContainerStateTerminated{ExitCode: code, Reason: "Unknown",
				Message: "the pod had finished before the agent restarted"}
		}
		st.started = st.term.StartedAt.Time
		st.succeeded = init && st.term.ExitCode == 0
	}
	for i := range p.Pod.Spec.InitContainers {
		restore(p.Pod.Spec.InitContainers[i].Name, true)
	}
	for i := range p.Pod.Spec.Containers {
		restore(p.Pod.Spec.Containers[i].Name, false)
	}
	w.initDone = true
	return true
}
