package agentclient

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
)

// PodConditionSecretUnavailable is the condition type set True (with the server's
// reason: store, Vault path, Vault's answer — never a value or a token) on a pod that
// is held back because its ConfigMaps or Secrets could not be fetched.
const PodConditionSecretUnavailable = "SecretUnavailable"

// Defaults of a Materializer.
const (
	DefaultMaterialPoll       = 10 * time.Second
	DefaultMaterialMinBackoff = time.Second
	DefaultMaterialMaxBackoff = time.Minute
	DefaultMaterialTimeout    = 10 * time.Second
)

// Material is the wire form of GET /api/v1/nodes/{node}/pods/{ns}/{name}/material:
// the ConfigMaps and Secrets (by name, in the pod's namespace) the pod references,
// and a hash over all of them. Secret values travel only in this response.
type Material struct {
	ConfigMaps map[string]*corev1.ConfigMap `json:"configMaps,omitempty"`
	Secrets    map[string]*corev1.Secret    `json:"secrets,omitempty"`
	// Hash changes when any referenced ConfigMap or Secret changes; "" when the pod
	// references none.
	Hash string `json:"hash"`
}

// String never prints values: only names and the hash.
func (m Material) String() string {
	return fmt.Sprintf("material{configMaps:%v secrets:%v hash:%s}", sortedKeys(m.ConfigMaps), sortedKeys(m.Secrets), m.Hash)
}

// GoString is String, so %#v does not print values either.
func (m Material) GoString() string { return m.String() }

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Reference is one ConfigMap or Secret a pod names, and whether it is optional
// everywhere it is named (one non-optional use makes it required).
type Reference struct {
	Name     string
	Optional bool
}

// PodReferences returns the ConfigMaps and Secrets the pod names in env valueFrom,
// envFrom and volumes (configMap, secret, projected sources), of every init and app
// container, sorted by name. A nil pod references nothing.
func PodReferences(pod *corev1.Pod) (configMaps, secrets []Reference) {
	if pod == nil {
		return nil, nil
	}
	return SpecReferences(&pod.Spec)
}

// SpecReferences is PodReferences for a pod spec (a workload's template).
func SpecReferences(spec *corev1.PodSpec) (configMaps, secrets []Reference) {
	cms, secs := map[string]bool{}, map[string]bool{} // name → optional so far
	add := func(m map[string]bool, name string, opt *bool) {
		if name == "" {
			return
		}
		o := opt != nil && *opt
		if prev, ok := m[name]; ok {
			m[name] = prev && o
			return
		}
		m[name] = o
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add(cms, e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
			}
			if e.SecretRef != nil {
				add(secs, e.SecretRef.Name, e.SecretRef.Optional)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add(cms, r.Name, r.Optional)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add(secs, r.Name, r.Optional)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add(cms, v.ConfigMap.Name, v.ConfigMap.Optional)
		}
		if v.Secret != nil {
			add(secs, v.Secret.SecretName, v.Secret.Optional)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add(cms, s.ConfigMap.Name, s.ConfigMap.Optional)
				}
				if s.Secret != nil {
					add(secs, s.Secret.Name, s.Secret.Optional)
				}
			}
		}
	}
	return refList(cms), refList(secs)
}

func refList(m map[string]bool) []Reference {
	out := make([]Reference, 0, len(m))
	for n, o := range m {
		out = append(out, Reference{Name: n, Optional: o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// MaterialPath is the API path of a pod's material on node.
func MaterialPath(node, ns, name string) string {
	return api.APIPrefix + "/nodes/" + url.PathEscape(node) + "/pods/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/material"
}

// FetchMaterial asks the server for the material of pod over the agent's mTLS
// connection. It must be called after Start. Errors are classed: 503
// api.ErrUnavailable (a secret cannot be resolved; the text names the store and the
// Vault path), 403 api.ErrPermissionDenied (the pod is not bound to this node), 404
// api.ErrNotFound.
func (a *Agent) FetchMaterial(ctx context.Context, pod *corev1.Pod) (*Material, error) {
	if a.cli == nil {
		return nil, fmt.Errorf("fetch material of pod %s/%s: agent not started: %w", pod.Namespace, pod.Name, api.ErrFailedPrecondition)
	}
	var m Material
	if err := a.cli.Do(ctx, http.MethodGet, MaterialPath(a.creds.NodeName, pod.Namespace, pod.Name), nil, &m); err != nil {
		return nil, fmt.Errorf("fetch material of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return &m, nil
}

// MaterialFetcher gets a pod's material; *Agent implements it.
type MaterialFetcher interface {
	FetchMaterial(ctx context.Context, pod *corev1.Pod) (*Material, error)
}

// ReadyPod is a pod with everything the executor needs to start it: the ConfigMaps
// and Secrets it references, by name.
type ReadyPod struct {
	Pod        *corev1.Pod
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
	// Hash is the material hash these maps were fetched with.
	Hash string
}

// StatusReporter records a pod status for the server; (*Agent).ReportStatus fits.
type StatusReporter func(ns, name string, uid types.UID, st corev1.PodStatus)

// Materializer sits between the agent's pod watch and the executor. It fetches the
// material of each pod it is given, caches it by pod UID and material hash, and hands
// only pods whose material it has to the deliver callback:
//
//   - a pod whose material cannot be fetched, and that was never delivered, is held
//     back (not handed over, so not started) and reported Pending with the condition
//     SecretUnavailable and the server's reason; it is retried with back-off
//     (1s doubling to 1 min) and released as soon as the material arrives;
//   - a pod already delivered keeps its last material when a refetch fails: running
//     pods are never touched by an unavailable secret;
//   - every poll interval (default 10s) the material of every delivered pod that
//     references a ConfigMap or Secret is fetched again; when its hash changed the pod
//     is delivered with the new maps (the executor then updates volume files in place).
//
// Pods that reference nothing are delivered without a round trip. New has no side
// effects; Run does the work and must be running for pods to be delivered.
type Materializer struct {
	fetch   MaterialFetcher
	deliver func([]ReadyPod)
	o       materialOpts

	kick chan struct{}

	mu      sync.Mutex
	pods    []*corev1.Pod
	entries map[types.UID]*materialEntry
}

type materialEntry struct {
	m         *Material // last good; nil while held back
	delivered bool
	reason    string // last failure, "" if the last fetch worked
	failures  int
	next      time.Time // when to fetch again
}

type materialOpts struct {
	poll, minBackoff, maxBackoff, timeout time.Duration
	report                                StatusReporter
	logger                                *slog.Logger
	now                                   func() time.Time
}

// MaterialOption configures a Materializer.
type MaterialOption func(*materialOpts)

// WithMaterialPoll sets how often delivered pods' material is fetched again to see a
// changed hash. Default 10s.
func WithMaterialPoll(d time.Duration) MaterialOption { return func(o *materialOpts) { o.poll = d } }

// WithMaterialBackoff sets the retry delays of a held-back pod. Default 1s to 1m.
func WithMaterialBackoff(minDelay, maxDelay time.Duration) MaterialOption {
	return func(o *materialOpts) { o.minBackoff, o.maxBackoff = minDelay, maxDelay }
}

// WithMaterialStatus sets where the SecretUnavailable status of held pods goes.
// Default: nowhere.
func WithMaterialStatus(r StatusReporter) MaterialOption {
	return func(o *materialOpts) { o.report = r }
}

// WithMaterialLogger sets the logger. Default slog.Default(). Only reasons (which
// never hold values) are logged.
func WithMaterialLogger(l *slog.Logger) MaterialOption {
	return func(o *materialOpts) { o.logger = l }
}

// WithMaterialClock sets the clock used for back-off and polling. Default time.Now.
func WithMaterialClock(now func() time.Time) MaterialOption {
	return func(o *materialOpts) { o.now = now }
}

// NewMaterializer returns a Materializer that fetches with f (nil: see UseAgent) and hands ready pods to
// deliver (called from Run's goroutine only, never concurrently, with the full set of
// ready pods sorted as given).
func NewMaterializer(f MaterialFetcher, deliver func([]ReadyPod), opts ...MaterialOption) *Materializer {
	o := materialOpts{}
	for _, fn := range opts {
		fn(&o)
	}
	if o.poll <= 0 {
		o.poll = DefaultMaterialPoll
	}
	if o.minBackoff <= 0 {
		o.minBackoff = DefaultMaterialMinBackoff
	}
	if o.maxBackoff < o.minBackoff {
		o.maxBackoff = max(DefaultMaterialMaxBackoff, o.minBackoff)
	}
	if o.timeout <= 0 {
		o.timeout = DefaultMaterialTimeout
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &Materializer{fetch: f, deliver: deliver, o: o, kick: make(chan struct{}, 1), entries: map[types.UID]*materialEntry{}}
}

// UseAgent makes a fetch from a (when NewMaterializer got a nil fetcher) and sends
// the SecretUnavailable status through a.ReportStatus (when WithMaterialStatus was
// not given). It lets the Materializer be made before the agent whose pods handler
// it is. Call it before Run.
func (m *Materializer) UseAgent(a *Agent) {
	if m.fetch == nil {
		m.fetch = a
	}
	if m.o.report == nil {
		m.o.report = a.ReportStatus
	}
}

// Pods takes the full set of pods bound to the node; it fits WithPodsHandler. It
// returns at once; Run fetches and delivers.
func (m *Materializer) Pods(pods []*corev1.Pod) {
	m.mu.Lock()
	m.pods = pods
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run fetches and delivers until ctx ends: after every Pods call, and every time a
// poll or a back-off is due.
func (m *Materializer) Run(ctx context.Context) {
	tick := min(m.o.poll, m.o.minBackoff)
	t := time.NewTicker(tick)
	defer t.Stop()
	var last []ReadyPod
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
			force = true
		case <-t.C:
		}
		ready, changed := m.sync(ctx)
		if force || changed || !sameReady(last, ready) {
			last = ready
			m.deliver(ready)
		}
	}
}

func sameReady(a, b []ReadyPod) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Pod.UID != b[i].Pod.UID || a[i].Hash != b[i].Hash {
			return false
		}
	}
	return true
}

// sync fetches what is due and returns the ready set; changed says a delivered pod's
// material hash changed.
func (m *Materializer) sync(ctx context.Context) ([]ReadyPod, bool) {
	m.mu.Lock()
	pods := m.pods
	m.mu.Unlock()
	now := m.o.now()
	live := map[types.UID]bool{}
	changed := false
	var ready []ReadyPod
	for _, p := range pods {
		live[p.UID] = true
		cms, secs := PodReferences(p)
		if len(cms) == 0 && len(secs) == 0 {
			ready = append(ready, ReadyPod{Pod: p})
			continue
		}
		m.mu.Lock()
		e := m.entries[p.UID]
		if e == nil {
			e = &materialEntry{}
			m.entries[p.UID] = e
		}
		due := e.m == nil || !now.Before(e.next)
		m.mu.Unlock()
		if due {
			var got *Material
			err := fmt.Errorf("fetch material of pod %s/%s: no fetcher (UseAgent not called): %w", p.Namespace, p.Name, api.ErrFailedPrecondition)
			if m.fetch != nil {
				fctx, cancel := context.WithTimeout(ctx, m.o.timeout)
				got, err = m.fetch.FetchMaterial(fctx, p)
				cancel()
			}
			m.mu.Lock()
			if err != nil {
				m.failed(p, e, err, now)
			} else {
				if e.m != nil && e.m.Hash != got.Hash {
					changed = true
				}
				if e.reason != "" {
					m.o.logger.Info("pod material available again", "pod", p.Namespace+"/"+p.Name, "hash", got.Hash)
				}
				e.m, e.reason, e.failures, e.next = got, "", 0, now.Add(m.o.poll)
			}
			m.mu.Unlock()
		}
		m.mu.Lock()
		if e.m != nil {
			ready = append(ready, ReadyPod{Pod: p, ConfigMaps: e.m.ConfigMaps, Secrets: e.m.Secrets, Hash: e.m.Hash})
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	for uid := range m.entries {
		if !live[uid] {
			delete(m.entries, uid)
		}
	}
	m.mu.Unlock()
	return ready, changed
}

// failed records a fetch failure (m.mu held): a held pod gets back-off and a SecretUnavailable
// status; a delivered pod keeps its material and is polled again later.
func (m *Materializer) failed(p *corev1.Pod, e *materialEntry, err error, now time.Time) {
	reason := err.Error()
	if e.m != nil {
		if reason != e.reason {
			m.o.logger.Warn("pod material refresh failed; the pod keeps its current material", "pod", p.Namespace+"/"+p.Name, "reason", reason)
		}
		e.reason, e.next = reason, now.Add(m.o.poll)
		return
	}
	e.failures++
	d := m.o.minBackoff << min(e.failures-1, 20)
	if d > m.o.maxBackoff || d <= 0 {
		d = m.o.maxBackoff
	}
	e.next = now.Add(d)
	if reason == e.reason {
		return
	}
	e.reason = reason
	m.o.logger.Warn("pod held back: material unavailable", "pod", p.Namespace+"/"+p.Name, "reason", reason, "retry", d)
	if m.o.report == nil {
		return
	}
	st := *p.Status.DeepCopy()
	st.Phase = corev1.PodPending
	cond := corev1.PodCondition{Type: PodConditionSecretUnavailable, Status: corev1.ConditionTrue,
		Reason: PodConditionSecretUnavailable, Message: reason, LastTransitionTime: metav1.NewTime(now)}
	replaced := false
	for i := range st.Conditions {
		if st.Conditions[i].Type == PodConditionSecretUnavailable {
			st.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		st.Conditions = append(st.Conditions, cond)
	}
	m.o.report(p.Namespace, p.Name, p.UID, st)
}

// Held returns the reasons of the pods currently held back, by namespace/name.
func (m *Materializer) Held() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	uids := map[types.UID]string{}
	for _, p := range m.pods {
		uids[p.UID] = p.Namespace + "/" + p.Name
	}
	out := map[string]string{}
	for uid, e := range m.entries {
		if e.m == nil && e.reason != "" {
			if k, ok := uids[uid]; ok {
				out[k] = e.reason
			}
		}
	}
	return out
}

var _ MaterialFetcher = (*Agent)(nil)
