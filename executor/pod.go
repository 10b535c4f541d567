package executor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/backoff"
	"gantry.io/gantry/executor/logs"
	"gantry.io/gantry/executor/probe"
	"gantry.io/gantry/executor/sandbox"
	"gantry.io/gantry/executor/volumes"
)

// podWorker owns one pod: it is the only goroutine that changes the pod's containers,
// sandbox and volumes. Sync, probes and task exits only wake it.
type podWorker struct {
	e    *Executor
	uid  string
	ns   string
	name string

	wakeCh chan struct{}
	done   chan struct{}

	mu        sync.Mutex // guards desired, hash, deleting, status, events, dataDirty
	desired   Pod
	hash      string
	deleting  bool
	dataDirty bool
	status    corev1.PodStatus
	events    []Event
	published string
	cancelOp  context.CancelFunc       // aborts in-flight pulls and starts when the pod is removed
	logDone   map[string]chan struct{} // per "container/restart": closed when that run's log is complete
	life      context.Context          // the worker's lifetime: exit waits and probes run under it

	// Owned by the worker goroutine.
	adopt    []containerd.Container
	sb       *sandbox.Sandbox
	sbPend   *sandbox.Pending // the sandbox's CNI ADD, running while the first container is created
	sbErr    error
	sbNext   time.Time
	sbFails  int
	vols     map[string]string
	volErr   error
	ctrs     map[string]*ctrState
	started  time.Time
	failed   bool // restartPolicy Never and an init container failed
	initDone bool
}

// ctrState is one container of the pod (init or app) across its restarts.
type ctrState struct {
	name string
	init bool

	restarts int32 // restart count of the current (or next) run
	id       string
	ctr      containerd.Container
	task     containerd.Task
	io       cio.IO
	logf     *logs.File
	exitCh   chan containerd.ExitStatus
	running  bool
	started  time.Time

	term     *corev1.ContainerStateTerminated // the current run's end (not running)
	lastTerm *corev1.ContainerStateTerminated // the previous run's end
	waiting  *corev1.ContainerStateWaiting
	next     time.Time        // earliest next start (back-off)
	step     int              // back-off steps since the last reset (backoff.Decide)
	decision backoff.Decision // what to do after the current run's end
	final    bool             // terminated and not to be restarted
	pulls    int              // consecutive pull failures
	pullMsg  string           // the last pull error, as shown in status
	pullAt   time.Time        // when the last pull failed
	image    string           // image ID of the current run

	probes    *probe.Container
	liveFail  atomic.Pointer[string] // set by a liveness/startup probe failure
	succeeded bool                   // init container exited 0
}

func newPodWorker(e *Executor, p Pod, hash string, adopt []containerd.Container) *podWorker {
	return &podWorker{
		e:       e,
		uid:     string(p.Pod.UID),
		ns:      p.Pod.Namespace,
		name:    p.Pod.Name,
		wakeCh:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		desired: p,
		hash:    hash,
		adopt:   adopt,
		ctrs:    map[string]*ctrState{},
		status:  corev1.PodStatus{Phase: corev1.PodPending},
	}
}

func (w *podWorker) wake() {
	select {
	case w.wakeCh <- struct{}{}:
	default:
	}
}

func (w *podWorker) specHash() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hash
}

func (w *podWorker) removing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deleting
}

func (w *podWorker) remove() {
	w.mu.Lock()
	w.deleting = true
	cancel := w.cancelOp
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wake()
}

func (w *podWorker) update(p Pod) {
	w.mu.Lock()
	changed := !equality.Semantic.DeepEqual(w.desired.ConfigMaps, p.ConfigMaps) || !equality.Semantic.DeepEqual(w.desired.Secrets, p.Secrets)
	w.desired = p
	if changed {
		w.dataDirty = true
	}
	w.mu.Unlock()
	if changed {
		w.wake()
	}
}

func (w *podWorker) pod() Pod {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired
}

func (w *podWorker) snapshot() (corev1.PodStatus, []Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return *w.status.DeepCopy(), append([]Event(nil), w.events...)
}

func (w *podWorker) event(typ, reason, container, format string, args ...any) {
	ev := Event{Time: time.Now().UTC(), Type: typ, Reason: reason, Container: container, Message: fmt.Sprintf(format, args...)}
	w.mu.Lock()
	w.events = append(w.events, ev)
	if len(w.events) > MaxEvents {
		w.events = append([]Event(nil), w.events[len(w.events)-MaxEvents:]...)
	}
	w.mu.Unlock()
	w.e.opts.logger.Info("pod event", "pod", w.ns+"/"+w.name, "type", typ, "reason", reason, "container", container, "message", ev.Message)
}

// run is the worker's loop: reconcile, publish the status, sleep until woken or the
// next due time. after, when set, is the done channel of the pod's previous
// incarnation (a replaced spec), which must be gone first.
func (w *podWorker) run(ctx context.Context, after <-chan struct{}) {
	defer close(w.done)
	if after != nil {
		select {
		case <-after:
		case <-ctx.Done():
			return
		}
	}
	w.started = time.Now()
	w.life = ctx
	w.adoptContainers(ctx)
	// Pulls and starts run under opCtx, so removing the pod does not wait for a slow
	// pull; stopping and removal run under ctx.
	opCtx, cancelOp := context.WithCancel(ctx)
	defer cancelOp()
	w.mu.Lock()
	w.cancelOp = cancelOp
	if w.deleting {
		cancelOp()
	}
	w.mu.Unlock()
	for {
		if w.removing() {
			w.terminate(ctx)
			return
		}
		due := w.reconcile(opCtx)
		w.publish()
		if ctx.Err() != nil {
			w.detach()
			return
		}
		wait := time.Until(due)
		if wait <= 0 || wait > w.e.opts.resyncPeriod {
			wait = w.e.opts.resyncPeriod
		}
		t := time.NewTimer(wait)
		select {
		case <-w.wakeCh:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if ctx.Err() != nil {
			w.detach()
			return
		}
	}
}

// detach stops probes and log copying without touching the containers: the agent is
// stopping and the next one adopts them.
func (w *podWorker) detach() {
	if w.sbPend != nil {
		// Its ADD was cancelled with the agent's context; let the rollback finish
		// before the agent exits (the next agent would clean the remains, but need not).
		_, _ = w.sbPend.Wait()
		w.sbPend = nil
	}
	for _, st := range w.ctrs {
		w.stopProbes(st)
		// The log file is closed first, so the copy goroutines stop at their next write.
		// The IO is not closed: closing removes the FIFOs, which the shim keeps writing
		// to and the next agent re-opens.
		if st.logf != nil {
			_ = st.logf.Close()
			st.logf = nil
		}
		if st.io != nil {
			st.io.Cancel()
			st.io = nil
		}
		w.endLog(st)
	}
}

func (w *podWorker) publish() {
	w.mu.Lock()
	st := w.status.DeepCopy()
	key := statusKey(st)
	changed := key != w.published
	w.published = key
	ev := append([]Event(nil), w.events...)
	w.mu.Unlock()
	if changed && w.e.opts.sink != nil {
		w.e.opts.sink(PodStatusUpdate{UID: w.uid, Namespace: w.ns, Name: w.name, Status: *st, Events: ev})
	}
}

// reconcile makes one pass towards the desired pod and returns when it wants to run
// again at the latest (a back-off expiring).
func (w *podWorker) reconcile(ctx context.Context) time.Time {
	p := w.pod()
	due := time.Now().Add(w.e.opts.resyncPeriod)
	defer func() { w.computeStatus(p) }()

	w.dropDeadSandbox(ctx)
	if w.sb == nil {
		if w.sbPend == nil {
			if time.Now().Before(w.sbNext) {
				return w.sbNext
			}
			if !w.e.acquire(ctx) {
				return due
			}
			// Begin returns once the netns and the pod files exist; the CNI ADD runs
			// in the background while the first container is created, and that
			// container's start waits for it (sandboxReady).
			pend, err := w.e.opts.sandbox.Begin(ctx, sandbox.PodRef{UID: w.uid, Namespace: w.ns, Name: w.name, Hostname: p.Pod.Spec.Hostname, DNSPolicy: string(p.Pod.Spec.DNSPolicy)}, portMappings(p.Pod))
			w.e.release()
			if err != nil {
				if ctx.Err() != nil {
					return due
				}
				w.sandboxFailed(err)
				return w.sbNext
			}
			w.sbPend = pend
			go func() {
				<-pend.Done()
				w.wake()
			}()
		}
		w.sandboxReady(ctx, false)
		if w.sb == nil && w.sbPend == nil {
			// The attachment failed (its back-off is set) or was cancelled.
			if ctx.Err() != nil {
				return due
			}
			return w.sbNext
		}
	}

	w.mu.Lock()
	dirty := w.dataDirty
	w.dataDirty = false
	w.mu.Unlock()
	if w.vols == nil {
		vols, err := volumes.Prepare(w.e.podDir(w.uid), p.Pod, volumes.Data{ConfigMaps: p.ConfigMaps, Secrets: p.Secrets})
		if err != nil {
			if w.volErr == nil || w.volErr.Error() != err.Error() {
				w.event("Warning", "FailedMount", "", "%v", err)
			}
			w.volErr = err
			return due
		}
		w.vols, w.volErr = vols, nil
	} else if dirty {
		if err := volumes.Update(w.e.podDir(w.uid), p.Pod, volumes.Data{ConfigMaps: p.ConfigMaps, Secrets: p.Secrets}); err != nil {
			w.event("Warning", "FailedMount", "", "updating volumes: %v", err)
		}
	}

	// Init containers run one at a time, in order, each to completion.
	if !w.initDone {
		for i := range p.Pod.Spec.InitContainers {
			c := &p.Pod.Spec.InitContainers[i]
			st := w.state(c.Name, true)
			w.collectExit(ctx, st, p)
			if st.succeeded {
				continue
			}
			if st.running {
				return due
			}
			if w.failed {
				return due
			}
			if st.final {
				w.failed = true
				w.event("Warning", "InitFailed", c.Name, "init container failed and restartPolicy is Never")
				return due
			}
			if next := w.startIfDue(ctx, p, c, st); !next.IsZero() {
				return next
			}
			return due
		}
		w.initDone = true
	}

	for i := range p.Pod.Spec.Containers {
		c := &p.Pod.Spec.Containers[i]
		st := w.state(c.Name, false)
		w.collectExit(ctx, st, p)
		if st.running {
			if msg := st.liveFail.Swap(nil); msg != nil {
				w.event("Warning", "Unhealthy", c.Name, "%s; restarting the container", *msg)
				w.stopContainer(ctx, p, c, st, "liveness")
				w.collectExit(ctx, st, p)
			} else {
				continue
			}
		}
		if st.final {
			continue
		}
		if next := w.startIfDue(ctx, p, c, st); !next.IsZero() && next.Before(due) {
			due = next
		}
	}
	return due
}

func (w *podWorker) state(name string, init bool) *ctrState {
	st, ok := w.ctrs[name]
	if !ok {
		st = &ctrState{name: name, init: init}
		w.ctrs[name] = st
	}
	return st
}

// startIfDue starts container c unless its back-off has not expired; it returns the
// time the back-off ends (zero when it started or failed without a back-off).
func (w *podWorker) startIfDue(ctx context.Context, p Pod, c *corev1.Container, st *ctrState) time.Time {
	now := time.Now()
	if st.pulls > 0 {
		pb := w.e.opts.backoff.PullBackoff(c.Image, st.pulls, st.pullAt, now)
		if !pb.Attempt {
			st.waiting = &corev1.ContainerStateWaiting{Reason: pb.Reason, Message: pb.Message + ": " + st.pullMsg}
			return pb.At
		}
	} else if st.term != nil {
		d := w.e.opts.backoff.Decide(effectivePolicy(p.Pod, c, st.init), termination(st.term), st.step, now)
		if d.Action == backoff.Wait {
			st.waiting = &corev1.ContainerStateWaiting{Reason: d.Reason,
				Message: fmt.Sprintf("%s %s of pod %s/%s", d.Message, c.Name, w.ns, w.name)}
			return d.At
		}
		st.decision = d
	}
	if !w.e.acquire(ctx) {
		return time.Time{}
	}
	defer w.e.release()
	w.startContainer(ctx, p, c, st)
	if !st.running && st.next.After(now) {
		return st.next
	}
	return time.Time{}
}

// startContainer pulls the image, creates the container and starts its task. Failures
// become the container's waiting or terminated state with a back-off.
func (w *podWorker) startContainer(ctx context.Context, p Pod, c *corev1.Container, st *ctrState) {
	cl := w.e.client()
	sb := w.sb
	if sb == nil {
		if w.sbPend == nil {
			// The sandbox failed meanwhile: nothing starts without the pod's network
			// namespace.
			st.next = w.sbNext
			return
		}
		// Created now, started once the network is attached (before task.Start).
		sb = w.sbPend.Sandbox()
	}
	prevRestarts, prevTerm, prevLast, prevStep := st.restarts, st.term, st.lastTerm, st.step
	// notNow undoes this attempt's bookkeeping when the start did not happen through
	// no fault of the container: the sandbox failed, or the pod is being removed.
	notNow := func() {
		st.restarts, st.term, st.lastTerm, st.step = prevRestarts, prevTerm, prevLast, prevStep
		st.id, st.ctr, st.image, st.waiting = "", nil, "", nil
		st.next = w.sbNext
	}
	if st.term != nil {
		// A restart: keep the last run's end, count it.
		st.lastTerm = st.term
		st.term = nil
		st.restarts++
		st.step = st.decision.Step
	}
	img, err := w.e.ensureImage(ctx, c)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, api.ErrUnavailable) {
			// Not the image's fault: no pull back-off, try again on the next pass.
			msg := registryMessage(err)
			if st.waiting == nil || st.waiting.Message != msg {
				w.event("Warning", "ContainerdUnavailable", c.Name, "%s", msg)
			}
			st.waiting = &corev1.ContainerStateWaiting{Reason: ReasonContainerCreating, Message: msg}
			st.next = time.Now().Add(w.e.opts.resyncPeriod)
			return
		}
		st.pulls++
		st.pullAt = time.Now()
		st.next = w.e.opts.backoff.PullBackoff(c.Image, st.pulls, st.pullAt, st.pullAt).At
		msg := registryMessage(err)
		st.pullMsg = msg
		st.waiting = &corev1.ContainerStateWaiting{Reason: ReasonErrImagePull, Message: msg}
		w.event("Warning", "Failed", c.Name, "Failed to pull image %q: %s", c.Image, msg)
		return
	}
	st.pulls = 0
	if w.sb == nil && needsPodIPs(c) && !w.sandboxReady(ctx, true) {
		notNow()
		return
	}
	env, err := resolveEnv(&p, c, w.e.nodeName(), w.podIPs())
	if err != nil {
		st.waiting = &corev1.ContainerStateWaiting{Reason: ReasonCreateConfigError, Message: err.Error()}
		st.next = time.Now().Add(w.e.opts.backoff.Next(1))
		w.event("Warning", "Failed", c.Name, "%v", err)
		return
	}
	id := containerID(w.uid, c.Name, st.restarts)
	opts, err := specOpts(specInput{pod: p.Pod, c: c, id: id, img: img, env: env, sb: sb, volumes: w.vols})
	if err != nil {
		w.cannotRun(st, c, err)
		return
	}
	labels := containerLabels(p.Pod, c.Name, st.init, st.restarts, w.hash)
	// Set at creation, a moment before the start, to save a round trip per start; an
	// adopting agent reports it as the start time.
	labels[LabelStartedAt] = time.Now().UTC().Format(time.RFC3339Nano)
	// containerd calls that create or delete run under mctx, which the pod's removal
	// does not cancel: a call cancelled mid-way can leave behind what the server
	// finished (a task, a shim) with nothing in the agent knowing of it. ctx is
	// checked between the steps instead, and what was made is undone.
	mctx, cancelM := context.WithTimeout(context.WithoutCancel(ctx), containerdCallTimeout)
	defer cancelM()
	create := func() (containerd.Container, error) {
		return cl.NewContainer(mctx, id,
			containerd.WithImage(img),
			containerd.WithSnapshotter(w.e.opts.snapshotter),
			containerd.WithNewSnapshot(id, img),
			containerd.WithNewSpec(opts...),
			containerd.WithContainerLabels(labels),
		)
	}
	ctr, err := create()
	if errdefs.IsAlreadyExists(err) {
		// A container (or snapshot) left from an earlier attempt with the same run
		// number is stale. Looked for only now: the usual start saves the round trip.
		if old, lerr := cl.LoadContainer(mctx, id); lerr == nil {
			w.e.deleteContainer(mctx, old)
		} else if sn := cl.SnapshotService(w.e.opts.snapshotter); sn != nil {
			_ = sn.Remove(mctx, id)
		}
		ctr, err = create()
	}
	if err != nil {
		w.e.forgetImage(c)
		w.cannotRun(st, c, fmt.Errorf("create container: %w", err))
		return
	}
	st.id, st.ctr, st.image = id, ctr, img.Name()
	if ctx.Err() != nil {
		w.e.deleteContainer(mctx, ctr)
		notNow()
		return
	}
	if err := w.openLog(st); err != nil {
		w.cannotRun(st, c, err)
		w.e.deleteContainer(mctx, ctr)
		return
	}
	task, err := ctr.NewTask(mctx, cio.NewCreator(cio.WithStreams(nil, st.logf.Stream("stdout"), st.logf.Stream("stderr")), cio.WithFIFODir(filepath.Join(w.e.fifoDir(), id))))
	if err != nil {
		w.closeLog(st)
		w.e.deleteContainer(mctx, ctr)
		if w.sb == nil && !w.sandboxReady(ctx, true) {
			// The ADD failed and its rollback removed the netns under runc's feet:
			// the sandbox's failure, not the container's.
			notNow()
			return
		}
		w.cannotRun(st, c, err)
		return
	}
	undo := func() {
		_, _ = task.Delete(mctx, containerd.WithProcessKill)
		w.closeLog(st)
		w.e.deleteContainer(mctx, ctr)
	}
	// The process must see its network: wait for the sandbox's CNI ADD (it ran while
	// the container and task were created).
	if !w.sandboxReady(ctx, true) || ctx.Err() != nil {
		undo()
		notNow()
		return
	}
	// The exit wait outlives opCtx: it must see the exit of a pod being removed.
	ch, err := task.Wait(w.life)
	if err == nil {
		err = task.Start(mctx)
	}
	if err != nil {
		undo()
		w.cannotRun(st, c, err)
		return
	}
	st.task, st.io = task, task.IO()
	st.running, st.started, st.waiting = true, time.Now(), nil
	st.exitCh = make(chan containerd.ExitStatus, 1)
	go w.waitExit(w.life, st, ctr, ch, st.exitCh)
	w.startProbes(w.life, p, c, st)
	w.event("Normal", "Started", c.Name, "started container %s (image %s, restart %d)", id, img.Name(), st.restarts)
}

// cannotRun records a start that failed before the process ran (an executable that is
// not there, a bad spec): terminated with ContainerCannotRun and the runtime's message.
func (w *podWorker) cannotRun(st *ctrState, c *corev1.Container, err error) {
	now := metav1.Now()
	st.running = false
	st.term = &corev1.ContainerStateTerminated{ExitCode: 128, Reason: ReasonContainerCannotRun, Message: err.Error(), StartedAt: now, FinishedAt: now}
	st.waiting = nil
	w.decideRestart(st, c)
	w.event("Warning", "Failed", c.Name, "Error: %v", err)
}

// containerdCallTimeout bounds one containerd call that runs without the pod's
// cancellation (create, start, delete).
const containerdCallTimeout = 2 * time.Minute

// dropDeadSandbox forgets a sandbox whose network namespace file is gone (removed
// behind the agent's back, e.g. by a reboot or a cleanup of its data dir) while none
// of the pod's containers runs: no new container could join it, so it is torn down
// and the next pass creates a new one, as kubelet re-creates a dead pod sandbox.
func (w *podWorker) dropDeadSandbox(ctx context.Context) {
	if w.sb == nil || w.sb.NetNSPath == "" {
		return
	}
	if _, err := os.Stat(w.sb.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		return
	}
	for _, st := range w.ctrs {
		if st.running {
			return
		}
	}
	w.event("Warning", "SandboxChanged", "", "network namespace %s is gone: the pod sandbox is re-created", w.sb.NetNSPath)
	if err := w.e.opts.sandbox.Teardown(ctx, w.uid); err != nil {
		w.event("Warning", "FailedKillPod", "", "tear down the dead sandbox: %v", err)
	}
	w.sb = nil
}

// sandboxReady reports whether the pod's sandbox is complete (w.sb set), collecting the
// pending CNI ADD if it has ended — or, with block, once it has. A failed ADD is
// recorded (FailedCreatePodSandBox, the back-off in sbNext) and leaves w.sb and
// w.sbPend nil, so the next pass begins the sandbox again.
func (w *podWorker) sandboxReady(ctx context.Context, block bool) bool {
	if w.sb != nil {
		return true
	}
	if w.sbPend == nil {
		return false
	}
	if !block {
		select {
		case <-w.sbPend.Done():
		default:
			return false
		}
	}
	sb, err := w.sbPend.Wait()
	w.sbPend = nil
	if err != nil {
		if ctx.Err() == nil {
			w.sandboxFailed(err)
		}
		return false
	}
	w.sb, w.sbErr, w.sbFails = sb, nil, 0
	w.event("Normal", "SandboxReady", "", "network namespace %s, IPs %v", sb.NetNSPath, sb.IPs())
	return true
}

// sandboxFailed records a failed sandbox and its back-off.
func (w *podWorker) sandboxFailed(err error) {
	w.sbFails++
	w.sbErr = err
	w.sbNext = time.Now().Add(w.e.opts.backoff.Next(w.sbFails))
	w.event("Warning", "FailedCreatePodSandBox", "", "%v", err)
}

// needsPodIPs reports whether c's environment refers to the pod's addresses, which
// are known only once the sandbox's CNI ADD has ended.
func needsPodIPs(c *corev1.Container) bool {
	for _, ev := range c.Env {
		if ev.ValueFrom != nil && ev.ValueFrom.FieldRef != nil {
			switch ev.ValueFrom.FieldRef.FieldPath {
			case "status.podIP", "status.podIPs":
				return true
			}
		}
	}
	return false
}

// decideRestart applies the restart policy and back-off to the run that just ended.
func (w *podWorker) decideRestart(st *ctrState, c *corev1.Container) {
	p := w.pod()
	d := w.e.opts.backoff.Decide(effectivePolicy(p.Pod, c, st.init), termination(st.term), st.step, time.Now())
	st.decision = d
	st.final = d.Action == backoff.DoNotRestart
	st.next = d.At
}

// effectivePolicy is the restart policy of one container (see backoff.EffectivePolicy).
func effectivePolicy(pod *corev1.Pod, c *corev1.Container, init bool) corev1.RestartPolicy {
	var crp *corev1.ContainerRestartPolicy
	if c != nil {
		crp = c.RestartPolicy
	}
	return backoff.EffectivePolicy(pod.Spec.RestartPolicy, crp, init)
}

func termination(t *corev1.ContainerStateTerminated) backoff.Termination {
	bt := backoff.Termination{ExitCode: t.ExitCode, OOMKilled: t.Reason == ReasonOOMKilled,
		StartedAt: t.StartedAt.Time, FinishedAt: t.FinishedAt.Time}
	if t.Reason == ReasonContainerCannotRun {
		bt.StartError = t.Message
	}
	return bt
}

func (w *podWorker) openLog(st *ctrState) error {
	path := logs.Path(w.e.logDir(w.uid), st.name, int(st.restarts))
	f, err := logs.Open(path, logs.WithMaxSize(w.e.opts.logMaxSize), logs.WithMaxFiles(w.e.opts.logMaxFiles))
	if err != nil {
		return fmt.Errorf("open log %s: %w", path, err)
	}
	st.logf = f
	w.mu.Lock()
	if w.logDone == nil {
		w.logDone = map[string]chan struct{}{}
	}
	if _, ok := w.logDone[logKey(st)]; !ok {
		w.logDone[logKey(st)] = make(chan struct{})
	}
	w.mu.Unlock()
	return nil
}

func (w *podWorker) closeLog(st *ctrState) {
	if st.io != nil {
		st.io.Wait()
		_ = st.io.Close()
		st.io = nil
	}
	if st.logf != nil {
		_ = st.logf.Close()
		st.logf = nil
	}
	w.endLog(st)
}

// endLog tells followers of the run's log that nothing more will be written.
func (w *podWorker) endLog(st *ctrState) {
	w.mu.Lock()
	if ch, ok := w.logDone[logKey(st)]; ok {
		close(ch)
		delete(w.logDone, logKey(st))
	}
	w.mu.Unlock()
}

// logWritten returns a channel closed once the log of the container's run with this
// restart count is complete (the run ended, or the agent is stopping); already closed
// when no run is writing it.
func (w *podWorker) logWritten(container string, restarts int32) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.logDone[container+"/"+strconv.Itoa(int(restarts))]; ok {
		return ch
	}
	ch := make(chan struct{})
	close(ch)
	return ch
}

func logKey(st *ctrState) string { return st.name + "/" + strconv.Itoa(int(st.restarts)) }

// waitExit forwards the task's exit to the worker. A wait that fails because
// containerd went away (restart) is re-established once it serves again.
func (w *podWorker) waitExit(ctx context.Context, st *ctrState, ctr containerd.Container, ch <-chan containerd.ExitStatus, out chan<- containerd.ExitStatus) {
	for {
		var s containerd.ExitStatus
		select {
		case s = <-ch:
		case <-ctx.Done():
			return
		}
		if s.Error() == nil {
			out <- s
			w.wake()
			return
		}
		// containerd is gone or restarting: wait until we can wait again.
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			task, err := ctr.Task(ctx, nil)
			if errdefs.IsNotFound(err) {
				out <- *containerd.NewExitStatus(255, time.Now(), nil)
				w.wake()
				return
			}
			if err != nil {
				continue
			}
			nch, err := task.Wait(ctx)
			if err != nil {
				continue
			}
			ch = nch
			break
		}
	}
}

// collectExit takes a finished task's exit status, if there is one, deletes the task
// and records the container's terminated state and back-off.
func (w *podWorker) collectExit(ctx context.Context, st *ctrState, p Pod) {
	if !st.running || st.exitCh == nil {
		return
	}
	var s containerd.ExitStatus
	select {
	case s = <-st.exitCh:
	default:
		return
	}
	w.finishRun(ctx, st, s.ExitCode(), s.ExitTime(), p)
}

func (w *podWorker) finishRun(ctx context.Context, st *ctrState, code uint32, at time.Time, p Pod) {
	// The run's task and container are deleted even when the pod's removal has
	// cancelled ctx: a delete cancelled half-way can leave the shim running.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), containerdCallTimeout)
	defer cancel()
	w.stopProbes(st)
	reason := ReasonError
	oom := w.e.sawOOM(st.id) || oomKilled(string(p.Pod.UID), st.id)
	switch {
	case oom:
		reason = ReasonOOMKilled
	case code == 0:
		reason = ReasonCompleted
	}
	if st.task != nil {
		if _, err := st.task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
			_, _ = st.task.Delete(ctx, containerd.WithProcessKill)
		}
	}
	w.closeLog(st)
	if at.IsZero() || at.Year() < 2000 {
		at = time.Now()
	}
	st.running, st.task, st.exitCh = false, nil, nil
	st.term = &corev1.ContainerStateTerminated{
		ExitCode:    int32(code),
		Reason:      reason,
		StartedAt:   metav1.NewTime(st.started),
		FinishedAt:  metav1.NewTime(at),
		ContainerID: "containerd://" + st.id,
	}
	w.e.forgetOOM(st.id)
	if st.init && code == 0 {
		st.succeeded = true
		if st.ctr != nil {
			_, _ = st.ctr.SetLabels(ctx, map[string]string{LabelExitCode: "0", LabelFinishedAt: at.UTC().Format(time.RFC3339Nano)})
		}
		w.event("Normal", "Completed", st.name, "init container exited 0")
		return
	}
	if st.ctr != nil {
		w.e.deleteContainer(ctx, st.ctr)
		st.ctr = nil
	}
	w.decideRestart(st, specOf(p.Pod, st.name))
	typ := "Normal"
	if code != 0 {
		typ = "Warning"
	}
	w.event(typ, reason, st.name, "container exited with code %d", code)
}

// stopContainer runs the preStop hook, sends SIGTERM, waits for the grace period and
// then sends SIGKILL; it returns when the task has exited (its exit is then collected).
func (w *podWorker) stopContainer(ctx context.Context, p Pod, c *corev1.Container, st *ctrState, why string) {
	if !st.running || st.task == nil {
		return
	}
	grace := 30 * time.Second
	if g := p.Pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	deadline := time.Now().Add(grace)
	w.stopProbes(st)
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil && why != "liveness" {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		code, out, err := w.e.execIn(hctx, st.task, c.Lifecycle.PreStop.Exec.Command, nil, nil, nil)
		cancel()
		if err != nil || code != 0 {
			w.event("Warning", "FailedPreStopHook", c.Name, "preStop hook: exit %d: %v %s", code, err, out)
		}
	}
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil && why != "liveness" {
		// preStop sleep: the container keeps serving while the pod leaves the
		// services' endpoints; bounded by the grace period, like an exec hook.
		d := min(time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second, time.Until(deadline))
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	if err := st.task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
		w.e.opts.logger.Warn("SIGTERM", "container", st.id, "err", err)
	}
	select {
	case s := <-st.exitCh:
		st.exitCh = make(chan containerd.ExitStatus, 1)
		st.exitCh <- s
		return
	case <-time.After(time.Until(deadline)):
	case <-ctx.Done():
		return
	}
	_ = st.task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
	select {
	case s := <-st.exitCh:
		st.exitCh = make(chan containerd.ExitStatus, 1)
		st.exitCh <- s
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
}

// terminate stops every container of the pod (app containers first, in parallel,
// each with its grace period), deletes them, tears down the sandbox and volumes, and
// tells the sink the pod is gone.
func (w *podWorker) terminate(ctx context.Context) {
	defer w.e.workerDone(w)
	p := w.pod()
	if ctx.Err() != nil {
		w.detach()
		return
	}
	specs := map[string]*corev1.Container{}
	for i := range p.Pod.Spec.Containers {
		specs[p.Pod.Spec.Containers[i].Name] = &p.Pod.Spec.Containers[i]
	}
	for i := range p.Pod.Spec.InitContainers {
		specs[p.Pod.Spec.InitContainers[i].Name] = &p.Pod.Spec.InitContainers[i]
	}
	var wg sync.WaitGroup
	for _, st := range w.ctrs {
		if !st.running {
			continue
		}
		wg.Add(1)
		go func(st *ctrState) {
			defer wg.Done()
			w.stopContainer(ctx, p, specs[st.name], st, "delete")
		}(st)
	}
	wg.Wait()
	if ctx.Err() != nil {
		// The agent stopped while the pod's containers were stopping (in a preStop
		// hook or the grace period): leave what still runs to the next agent,
		// which finds the pod no longer desired and removes it. Waiting here for
		// logs of containers nobody kills would hang the agent's exit.
		w.detach()
		return
	}
	for _, st := range w.ctrs {
		w.collectExit(ctx, st, p)
		w.stopProbes(st)
		w.closeLog(st)
		if st.ctr != nil {
			w.e.deleteContainer(ctx, st.ctr)
		}
	}
	// Whatever containerd still has for this pod (an earlier run, an adopted one).
	w.e.deletePodContainers(ctx, w.uid)
	if w.sbPend != nil {
		// Its ADD was cancelled with the pod's operations; it ends (rolled back or
		// complete) before Teardown runs.
		_, _ = w.sbPend.Wait()
		w.sbPend = nil
	}
	var errs []error
	if err := w.e.opts.sandbox.Teardown(ctx, w.uid); err != nil {
		errs = append(errs, err)
	}
	if err := volumes.Cleanup(w.e.podDir(w.uid)); err != nil {
		errs = append(errs, err)
	}
	removeCgroups(w.uid)
	if err := os.RemoveAll(w.e.podDir(w.uid)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		// The garbage collector retries what is left.
		w.event("Warning", "FailedKillPod", "", "%v", err)
	}
	w.event("Normal", "Killing", "", "pod removed")
	if w.e.opts.sink != nil {
		st, ev := w.snapshot()
		w.e.opts.sink(PodStatusUpdate{UID: w.uid, Namespace: w.ns, Name: w.name, Status: st, Events: ev, Deleted: true})
	}
}

// startProbes starts c's probes; their initial delays count from st.started (for an
// adopted container, its real start, not the adoption).
func (w *podWorker) startProbes(ctx context.Context, p Pod, c *corev1.Container, st *ctrState) {
	if c.StartupProbe == nil && c.LivenessProbe == nil && c.ReadinessProbe == nil {
		return
	}
	ports := map[string]int32{}
	for _, cp := range c.Ports {
		if cp.Name != "" {
			ports[cp.Name] = cp.ContainerPort
		}
	}
	var ip net.IP
	if w.sb != nil {
		ip = w.sb.IPv4
		if ip == nil {
			ip = w.sb.IPv6
		}
	}
	task := st.task
	target := probe.Target{IP: ip, Ports: ports, Exec: func(ctx context.Context, cmd []string) (int, []byte, error) {
		return w.e.execIn(ctx, task, cmd, nil, nil, nil)
	}}
	st.probes = probe.NewContainer(c, target, probe.RealClock{}, func(kind probe.Kind, ok bool, msg string) {
		if !ok && (kind == probe.Liveness || kind == probe.Startup) {
			m := fmt.Sprintf("%s probe failed: %s", kind, msg)
			st.liveFail.Store(&m)
		}
		if kind == probe.Readiness {
			if ok {
				w.event("Normal", "Ready", c.Name, "readiness probe succeeded")
			} else {
				w.event("Warning", "Unhealthy", c.Name, "readiness probe failed: %s", msg)
			}
		}
		w.wake()
	})
	st.probes.StartSince(ctx, st.started)
}

func (w *podWorker) stopProbes(st *ctrState) {
	if st.probes != nil {
		st.probes.Stop()
		st.probes = nil
	}
}

func (w *podWorker) podIPs() []string {
	if w.sb == nil {
		return nil
	}
	var out []string
	for _, ip := range w.sb.IPs() {
		out = append(out, ip.String())
	}
	return out
}

// specOf returns the pod's container (init or app) with this name, or nil.
func specOf(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

func portMappings(pod *corev1.Pod) []sandbox.PortMapping {
	var out []sandbox.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			out = append(out, sandbox.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: string(p.Protocol), HostIP: p.HostIP})
		}
	}
	return out
}

func restartCountLabel(l map[string]string) int32 {
	n, err := strconv.Atoi(l[LabelRestartCount])
	if err != nil || n < 0 {
		return 0
	}
	return int32(n)
}
