package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/metrics"
)

// Pod is one pod assigned to this node, with the ConfigMaps and Secrets (by name, in
// the pod's namespace) that its env valueFrom/envFrom and volumes refer to.
type Pod struct {
	Pod        *corev1.Pod
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
}

// Event is one entry of a pod's bounded event ring (the last MaxEvents are kept).
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"` // "Normal" or "Warning"
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Container string    `json:"container,omitempty"`
}

// MaxEvents is how many events a pod keeps.
const MaxEvents = 64

// PodStatusUpdate is what the status sink receives: a pod's full status after every
// change, or Deleted once the pod and everything it held on the node are gone.
type PodStatusUpdate struct {
	UID       string           `json:"uid"`
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	Status    corev1.PodStatus `json:"status"`
	Events    []Event          `json:"events,omitempty"`
	Deleted   bool             `json:"deleted,omitempty"`
}

// Executor converges containerd on this node to the set of pods given to Sync. It is
// level-triggered: every Sync carries the full desired set, and each pod's worker
// re-reads containerd's state on every pass.
//
// New has no side effects; Start connects to containerd, adopts what a previous agent
// left running and starts the background loops; Close stops them and leaves every
// container running, so the next Start adopts them. Close is safe after a partial
// Start and more than once.
type Executor struct {
	opts options

	mu      sync.Mutex
	cl      *containerd.Client
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	sem     chan struct{}
	workers map[string]*podWorker // by pod UID
	adopt   map[string][]containerd.Container
	synced  bool
	closed  bool

	metricsStore *metrics.Store
	sampler      *metrics.Sampler

	oomMu sync.Mutex
	oom   map[string]bool // containerd IDs that saw an OOM event

	// images are the present, unpacked images by reference (IfNotPresent/Never), so a
	// start does not look them up again; an entry is dropped when a create fails.
	images sync.Map
}

// New returns an Executor; see the With* options for the defaults.
func New(opts ...Option) *Executor {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	o.applyDefaults()
	e := &Executor{
		opts:         o,
		workers:      map[string]*podWorker{},
		adopt:        map[string][]containerd.Container{},
		oom:          map[string]bool{},
		sem:          make(chan struct{}, o.maxParallel),
		metricsStore: metrics.NewStore(),
	}
	e.sampler = metrics.NewSampler(metricsSource{e}, e.metricsStore, metrics.WithInterval(o.sampleEvery))
	return e
}

// Namespace returns the containerd namespace the executor works in.
func (e *Executor) Namespace() string { return e.opts.namespace }

// DataDir returns the executor's data directory.
func (e *Executor) DataDir() string { return e.opts.dataDir }

// Client returns the containerd client (nil before Start).
func (e *Executor) Client() *containerd.Client { return e.client() }

func (e *Executor) client() *containerd.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cl
}

func (e *Executor) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, e.opts.namespace)
}

// Start connects to containerd (waiting up to 30 s for it to serve), loads the
// containers a previous agent left so that Sync can adopt them, and starts the OOM
// event watch, the metrics sampler and garbage collection. Returns an error wrapping
// api.ErrUnavailable if containerd cannot be reached.
func (e *Executor) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.cl != nil || e.closed {
		e.mu.Unlock()
		return fmt.Errorf("executor: Start called twice or after Close: %w", api.ErrFailedPrecondition)
	}
	e.mu.Unlock()
	for _, d := range []string{e.podsDir(), e.fifoDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("executor data dir: %w", err)
		}
	}
	cl, err := containerd.New(e.opts.address, containerd.WithDefaultNamespace(e.opts.namespace), containerd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("containerd at %s: %w: %v", e.opts.address, api.ErrUnavailable, err)
	}
	if err := waitServing(ctx, cl, 30*time.Second); err != nil {
		_ = cl.Close()
		return fmt.Errorf("containerd at %s: %w: %v", e.opts.address, api.ErrUnavailable, err)
	}
	bg, cancel := context.WithCancel(e.nsCtx(context.Background()))
	e.mu.Lock()
	e.cl, e.ctx, e.cancel = cl, bg, cancel
	e.mu.Unlock()

	if err := e.loadAdoptable(bg); err != nil {
		return err
	}
	e.goLoop(e.watchOOM)
	e.goLoop(e.gcLoop)
	e.sampler.Start(bg)
	return nil
}

func (e *Executor) goLoop(f func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.ctx)
	}()
}

func waitServing(ctx context.Context, cl *containerd.Client, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := cl.IsServing(c)
		cancel()
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = errors.New("not serving")
			}
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// loadAdoptable lists the containers gantry created (they carry LabelPodUID) and keeps
// them, by pod UID, for the workers Sync creates; what no pod claims is collected.
func (e *Executor) loadAdoptable(ctx context.Context) error {
	ctrs, err := e.client().Containers(ctx, fmt.Sprintf("labels.%q", LabelPodUID))
	if err != nil {
		return fmt.Errorf("list containers: %w: %v", api.ErrUnavailable, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range ctrs {
		labels, err := c.Labels(ctx)
		if err != nil {
			continue
		}
		uid := labels[LabelPodUID]
		e.adopt[uid] = append(e.adopt[uid], c)
	}
	return nil
}

// Close stops every pod worker, probe and background loop and closes the containerd
// connection. Containers keep running; the next Start adopts them.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	cancel := e.cancel
	workers := make([]*podWorker, 0, len(e.workers))
	for _, w := range e.workers {
		workers = append(workers, w)
	}
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, w := range workers {
		<-w.done
	}
	e.wg.Wait()
	_ = e.sampler.Close()
	e.mu.Lock()
	cl := e.cl
	e.mu.Unlock()
	if cl != nil {
		return cl.Close()
	}
	return nil
}

// Sync sets the full desired set of pods for this node. Pods not yet known are started
// (or adopted, when a previous agent left their containers running with the same spec
// hash); pods whose spec hash changed are replaced; pods missing from the set are
// stopped (preStop, SIGTERM, grace period, SIGKILL) and removed with their sandbox and
// volumes. Changed ConfigMap/Secret data is written to the pod's volumes in place.
// Sync returns at once; the work happens in per-pod workers, at most MaxParallel of
// them pulling, creating or stopping at a time. Entries without a pod, UID or name
// are ignored. Sync before Start or after Close does nothing.
func (e *Executor) Sync(pods []Pod) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cl == nil || e.closed {
		return
	}
	want := map[string]Pod{}
	for _, p := range pods {
		if p.Pod == nil || p.Pod.UID == "" || p.Pod.Name == "" {
			continue
		}
		want[string(p.Pod.UID)] = p
	}
	for uid, w := range e.workers {
		if _, ok := want[uid]; !ok {
			w.remove()
		}
	}
	for uid, p := range want {
		hash := SpecHash(p.Pod)
		w, ok := e.workers[uid]
		switch {
		case !ok:
			e.startWorker(p, hash, nil)
		case w.specHash() != hash:
			w.remove()
			e.startWorker(p, hash, w.done)
		default:
			w.update(p)
		}
	}
	e.synced = true
}

func (e *Executor) startWorker(p Pod, hash string, after <-chan struct{}) {
	uid := string(p.Pod.UID)
	w := newPodWorker(e, p, hash, e.adopt[uid])
	delete(e.adopt, uid)
	e.workers[uid] = w
	go w.run(e.ctx, after)
}

// workerDone is called by a worker that has removed its pod.
func (e *Executor) workerDone(w *podWorker) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.workers[w.uid] == w {
		delete(e.workers, w.uid)
	}
}

// Status returns the current status of the pod with this UID, and false if the
// executor does not know it.
func (e *Executor) Status(uid string) (corev1.PodStatus, bool) {
	w := e.worker(uid)
	if w == nil {
		return corev1.PodStatus{}, false
	}
	st, _ := w.snapshot()
	return st, true
}

// Events returns the pod's recent events, oldest first.
func (e *Executor) Events(uid string) []Event {
	w := e.worker(uid)
	if w == nil {
		return nil
	}
	_, ev := w.snapshot()
	return ev
}

// PodUIDs returns the UIDs of the pods the executor holds (including those being
// removed), sorted.
func (e *Executor) PodUIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.workers))
	for uid := range e.workers {
		out = append(out, uid)
	}
	sort.Strings(out)
	return out
}

func (e *Executor) worker(uid string) *podWorker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workers[uid]
}

// workerByName finds the worker of pod namespace/name; ErrNotFound if none.
func (e *Executor) workerByName(ns, name string) (*podWorker, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, w := range e.workers {
		if w.ns == ns && w.name == name && !w.removing() {
			return w, nil
		}
	}
	return nil, fmt.Errorf("pod %s/%s: %w", ns, name, api.ErrNotFound)
}

// acquire takes one of the MaxParallel slots for heavy work (pull, create, stop).
func (e *Executor) acquire(ctx context.Context) bool {
	select {
	case e.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *Executor) release() { <-e.sem }

func (e *Executor) podsDir() string             { return filepath.Join(e.opts.dataDir, "pods") }
func (e *Executor) podDir(uid string) string    { return filepath.Join(e.podsDir(), uid) }
func (e *Executor) logDir(uid string) string    { return filepath.Join(e.podDir(uid), "logs") }
func (e *Executor) fifoDir() string             { return filepath.Join(e.opts.dataDir, "fifo") }
func (e *Executor) volumeDir(uid string) string { return filepath.Join(e.podDir(uid), "volumes") }

func (e *Executor) nodeName() string {
	if e.opts.nodeName != "" {
		return e.opts.nodeName
	}
	h, _ := os.Hostname()
	return h
}
