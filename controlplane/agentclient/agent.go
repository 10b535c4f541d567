package agentclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/apiclient"
)

// Defaults of an Agent.
const (
	DefaultListen         = "0.0.0.0:10250"
	DefaultHeartbeat      = 5 * time.Second
	DefaultStatusInterval = 500 * time.Millisecond
	DefaultMaxPods        = 110
)

// Agent is one node's connection to the control plane. New has no side effects;
// Start serves the agent endpoint and starts registration, heartbeats, the pod
// watch and status reporting, all of which retry with back-off while the server is
// unreachable; Close stops them (and is safe after a partial Start). Stopping the
// agent does not touch the pods: that is the executor's business.
type Agent struct {
	server string
	creds  *Credentials
	o      agentOpts

	cli     *apiclient.Client
	ln      net.Listener
	httpSrv *http.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time

	mu   sync.Mutex
	pods map[string]*corev1.Pod // ns/name → pod bound to this node

	statusMu sync.Mutex
	pending  map[string]pendingStatus
	sent     map[string]corev1.PodStatus
	kick     chan struct{}

	registered chan struct{}
	regOnce    sync.Once
}

type pendingStatus struct {
	ns, name string
	uid      types.UID
	status   corev1.PodStatus
}

type agentOpts struct {
	listen, advertise string
	heartbeat         time.Duration
	statusInterval    time.Duration
	runtime           Runtime
	onPods            func([]*corev1.Pod)
	capacity          func() (corev1.ResourceList, error)
	labels            map[string]string
	logger            *slog.Logger
}

// Option configures an Agent.
type Option func(*agentOpts)

// WithListen sets the listen address of the agent endpoint (logs, exec) the server
// proxies to. Default "0.0.0.0:10250"; port 0 picks one.
func WithListen(a string) Option { return func(o *agentOpts) { o.listen = a } }

// WithAdvertiseAddress sets the IP the server reaches the agent endpoint at (the
// node's InternalIP). Default: the listen IP if it is specific, else the local
// address this host uses to reach the server.
func WithAdvertiseAddress(ip string) Option { return func(o *agentOpts) { o.advertise = ip } }

// WithHeartbeat sets the heartbeat interval. Default 5s.
func WithHeartbeat(d time.Duration) Option { return func(o *agentOpts) { o.heartbeat = d } }

// WithStatusInterval sets the minimum spacing of pod status batches: a change after a
// quiet interval is sent at once, changes that follow are collected until the
// interval has passed since the last batch (one write per changed pod per batch).
// Default 500ms.
func WithStatusInterval(d time.Duration) Option { return func(o *agentOpts) { o.statusInterval = d } }

// WithRuntime sets what serves logs and exec. Default none (the endpoints answer 503).
func WithRuntime(rt Runtime) Option { return func(o *agentOpts) { o.runtime = rt } }

// WithPodsHandler sets the callback that receives the full set of pods bound to this
// node (sorted by namespace/name) after every change, and once after each (re)list —
// also when it is empty, so that the executor removes what the server no longer
// assigns here. Called from one goroutine, never concurrently.
func WithPodsHandler(f func([]*corev1.Pod)) Option { return func(o *agentOpts) { o.onPods = f } }

// WithCapacity overrides the node capacity. Default: HostCapacity.
func WithCapacity(f func() (corev1.ResourceList, error)) Option {
	return func(o *agentOpts) { o.capacity = f }
}

// WithNodeLabels adds labels to the node object.
func WithNodeLabels(l map[string]string) Option { return func(o *agentOpts) { o.labels = l } }

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *agentOpts) { o.logger = l } }

// New returns an agent for the node of creds talking to server (https://HOST:PORT).
func New(server string, creds *Credentials, opts ...Option) *Agent {
	o := agentOpts{listen: DefaultListen, heartbeat: DefaultHeartbeat, statusInterval: DefaultStatusInterval, capacity: HostCapacity}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return &Agent{server: server, creds: creds, o: o, pods: map[string]*corev1.Pod{},
		pending: map[string]pendingStatus{}, sent: map[string]corev1.PodStatus{}, kick: make(chan struct{}, 1),
		registered: make(chan struct{})}
}

// NodeName returns the node's name (the certificate's CN).
func (a *Agent) NodeName() string { return a.creds.NodeName }

// Registered is closed once the node object has been written the first time.
func (a *Agent) Registered() <-chan struct{} { return a.registered }

// Endpoint returns the agent endpoint's listen address (valid after Start).
func (a *Agent) Endpoint() string { return a.ln.Addr().String() }

// Start serves the agent endpoint and starts the background loops. It fails only for
// local problems (bad credentials, a listen address in use), never because the
// server is down.
func (a *Agent) Start(ctx context.Context) error {
	cert, err := a.creds.TLSCertificate()
	if err != nil {
		return err
	}
	a.cli, err = apiclient.New(apiclient.Config{Server: a.server, CertificateAuthority: string(a.creds.CAPEM)}, apiclient.WithCertificate(cert))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.creds.CAPEM) {
		return fmt.Errorf("cluster CA: no PEM certificate: %w", api.ErrInvalidArgument)
	}
	ln, err := net.Listen("tcp", a.o.listen)
	if err != nil {
		return fmt.Errorf("agent endpoint: listen on %s: %w", a.o.listen, err)
	}
	a.ln = ln
	if a.o.advertise == "" {
		a.o.advertise = advertiseFor(ln.Addr(), a.server)
	}
	a.httpSrv = &http.Server{
		Handler: EndpointHandler(a.o.runtime, a.lookup),
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	a.started = time.Now()
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(4)
	go func() {
		defer a.wg.Done()
		if err := a.httpSrv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.o.logger.Error("agent endpoint stopped", "err", err)
		}
	}()
	go func() { defer a.wg.Done(); a.heartbeatLoop(runCtx) }()
	go func() { defer a.wg.Done(); a.watchLoop(runCtx) }()
	go func() { defer a.wg.Done(); a.statusLoop(runCtx) }()
	return nil
}

// Close stops the loops and the endpoint. Safe after a partial Start.
func (a *Agent) Close() error {
	if a.cancel != nil {
		a.cancel()
	}
	if a.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = a.httpSrv.Shutdown(ctx)
		cancel()
		_ = a.httpSrv.Close()
	} else if a.ln != nil {
		_ = a.ln.Close()
	}
	a.wg.Wait()
	if a.cli != nil {
		a.cli.Close()
	}
	return nil
}

// advertiseFor picks the node IP: the listen IP if specific, else the source address
// of the route to the server.
func advertiseFor(listen net.Addr, server string) string {
	if ta, ok := listen.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		return ta.IP.String()
	}
	u, err := url.Parse(server)
	if err == nil {
		port := u.Port()
		if port == "" {
			port = "443"
		}
		if c, err := net.Dial("udp", net.JoinHostPort(u.Hostname(), port)); err == nil {
			defer c.Close()
			return c.LocalAddr().(*net.UDPAddr).IP.String()
		}
	}
	return "127.0.0.1"
}

// HostCapacity reads the host's capacity: CPUs (runtime.NumCPU) and memory (MemTotal
// of /proc/meminfo), and DefaultMaxPods pods.
func HostCapacity() (corev1.ResourceList, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return nil, fmt.Errorf("host memory: %w", err)
	}
	defer f.Close()
	var memKiB int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			memKiB, err = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("host memory: MemTotal %q: %w", rest, err)
			}
		}
	}
	if memKiB == 0 {
		return nil, fmt.Errorf("host memory: no MemTotal in /proc/meminfo")
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memKiB*1024, resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
	}, nil
}

func (a *Agent) nodeObject() (*corev1.Node, error) {
	capacity, err := a.o.capacity()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	port := a.ln.Addr().(*net.TCPAddr).Port
	labels := map[string]string{"kubernetes.io/hostname": a.creds.NodeName, "kubernetes.io/os": runtime.GOOS, "kubernetes.io/arch": runtime.GOARCH}
	for k, v := range a.o.labels {
		labels[k] = v
	}
	now := metav1.Now()
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.creds.NodeName, Labels: labels},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: api.ReasonAgentReady,
				Message: "agent is posting status", LastHeartbeatTime: now, LastTransitionTime: metav1.NewTime(a.started)}},
			Addresses:       nodeAddresses(a.o.advertise, host),
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			NodeInfo: corev1.NodeSystemInfo{Architecture: runtime.GOARCH, OperatingSystem: runtime.GOOS,
				KernelVersion: readTrim("/proc/sys/kernel/osrelease"), OSImage: osImage(), KubeletVersion: "gantry",
				ContainerRuntimeVersion: "containerd"},
		},
	}
	return n, nil
}

// nodeAddresses lists the node's InternalIPs — the advertised address first (the
// server dials the agent endpoint on it), then one address of the other IP family
// from the same interface, if it has a global one (other nodes route this node's pod
// CIDR of that family through it) — and its hostname.
func nodeAddresses(advertise, host string) []corev1.NodeAddress {
	out := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: advertise}}
	if other := otherFamilyAddr(advertise); other != "" {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: other})
	}
	return append(out, corev1.NodeAddress{Type: corev1.NodeHostName, Address: host})
}

// otherFamilyAddr returns the first global unicast address of the other IP family
// on the interface that holds ip, or "".
func otherFamilyAddr(ip string) string {
	want := net.ParseIP(ip)
	if want == nil {
		return ""
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		holds := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(want) {
				holds = true
			}
		}
		if !holds {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if ok && (n.IP.To4() == nil) != (want.To4() == nil) && n.IP.IsGlobalUnicast() {
				return n.IP.String()
			}
		}
	}
	return ""
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func osImage() string {
	for _, line := range strings.Split(readTrim("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

// heartbeat writes the node's status, creating the node object when it is missing.
func (a *Agent) heartbeat(ctx context.Context) error {
	n, err := a.nodeObject()
	if err != nil {
		return err
	}
	path := apiclient.Path(api.KindNode, "", n.Name, "status")
	err = a.cli.Do(ctx, http.MethodPut, path, n, nil)
	if errors.Is(err, api.ErrNotFound) {
		err = a.cli.Do(ctx, http.MethodPost, apiclient.Path(api.KindNode, "", "", ""), n, nil)
	}
	if err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", n.Name, err)
	}
	a.regOnce.Do(func() { close(a.registered) })
	return nil
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	b := newBackoff()
	for ctx.Err() == nil {
		wait := a.o.heartbeat
		if err := a.heartbeat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.o.logger.Warn("heartbeat failed", "err", err)
			wait = min(b.next(), a.o.heartbeat)
		} else {
			b.reset()
		}
		sleep(ctx, wait)
	}
}

// backoff doubles from 200ms to 10s.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = 200 * time.Millisecond
	} else {
		b.d = min(b.d*2, 10*time.Second)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func key(ns, name string) string { return ns + "/" + name }

func (a *Agent) lookup(ns, name string) (*corev1.Pod, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.pods[key(ns, name)]
	return p, ok
}

// Pods returns the pods bound to this node as last seen, sorted by namespace/name.
func (a *Agent) Pods() []*corev1.Pod {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*corev1.Pod, 0, len(a.pods))
	for _, p := range a.pods {
		out = append(out, p.DeepCopy())
	}
	sort.Slice(out, func(i, j int) bool {
		return key(out[i].Namespace, out[i].Name) < key(out[j].Namespace, out[j].Name)
	})
	return out
}

func (a *Agent) deliver() {
	pods := a.Pods()
	a.statusMu.Lock()
	live := map[string]bool{}
	for _, p := range pods {
		live[key(p.Namespace, p.Name)] = true
	}
	for k := range a.sent {
		if !live[k] {
			delete(a.sent, k)
			delete(a.pending, k)
		}
	}
	a.statusMu.Unlock()
	if a.o.onPods != nil {
		a.o.onPods(pods)
	}
}

// watchLoop lists the node's pods, hands them over, and follows the watch from the
// list's resourceVersion; it resumes after disconnects and relists when the server
// says the version expired.
func (a *Agent) watchLoop(ctx context.Context) {
	path := apiclient.Path(api.KindPod, "", "", "") + "?fieldSelector=" + url.QueryEscape("spec.nodeName="+a.creds.NodeName)
	b := newBackoff()
	for ctx.Err() == nil {
		var list corev1.PodList
		if err := a.cli.Do(ctx, http.MethodGet, path, nil, &list); err != nil {
			if ctx.Err() == nil {
				a.o.logger.Warn("list pods", "err", err)
			}
			sleep(ctx, b.next())
			continue
		}
		a.mu.Lock()
		a.pods = map[string]*corev1.Pod{}
		for i := range list.Items {
			p := &list.Items[i]
			a.pods[key(p.Namespace, p.Name)] = p
		}
		a.mu.Unlock()
		a.deliver()
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			err := a.cli.Watch(ctx, path+"&resourceVersion="+rv, func(ev api.WatchEvent) error {
				var p corev1.Pod
				if err := json.Unmarshal(ev.Object, &p); err != nil {
					return err
				}
				a.mu.Lock()
				if ev.Type == "DELETED" {
					delete(a.pods, key(p.Namespace, p.Name))
				} else {
					a.pods[key(p.Namespace, p.Name)] = &p
				}
				a.mu.Unlock()
				rv = p.ResourceVersion
				b.reset()
				a.deliver()
				return nil
			})
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, api.ErrFailedPrecondition) {
				break // expired: relist
			}
			if err != nil {
				a.o.logger.Warn("watch pods", "err", err)
			}
			sleep(ctx, b.next())
		}
	}
}

// ReportStatus queues a pod's status for the server. It is sent within the status
// interval, coalesced with later reports of the same pod, and not at all if it equals
// what was last sent. Reports for pods not bound to this node are dropped.
func (a *Agent) ReportStatus(ns, name string, uid types.UID, st corev1.PodStatus) {
	k := key(ns, name)
	if p, ok := a.lookup(ns, name); !ok || (uid != "" && p.UID != uid) {
		return
	}
	a.statusMu.Lock()
	if last, ok := a.sent[k]; ok && equality.Semantic.DeepEqual(last, st) {
		delete(a.pending, k)
		a.statusMu.Unlock()
		return
	}
	a.pending[k] = pendingStatus{ns: ns, name: name, uid: uid, status: *st.DeepCopy()}
	a.statusMu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *Agent) statusLoop(ctx context.Context) {
	b := newBackoff()
	var lastFlush time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		// Leading edge: a change after a quiet spell goes out at once (a new pod's
		// Running reaches the planner without waiting); changes that follow within
		// the interval are collected into the next batch, so a busy node sends at
		// most one batch per interval.
		if wait := a.o.statusInterval - time.Since(lastFlush); wait > 0 {
			sleep(ctx, wait)
		}
		if ctx.Err() != nil {
			return
		}
		lastFlush = time.Now()
		a.statusMu.Lock()
		batch := a.pending
		a.pending = map[string]pendingStatus{}
		a.statusMu.Unlock()
		failed := false
		for k, ps := range batch {
			body := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ps.ns, Name: ps.name, UID: ps.uid}, Status: ps.status}
			err := a.cli.Do(ctx, http.MethodPut, apiclient.Path(api.KindPod, ps.ns, ps.name, "status"), body, nil)
			a.statusMu.Lock()
			switch {
			case err == nil:
				a.sent[k] = ps.status
			case errors.Is(err, api.ErrNotFound), errors.Is(err, api.ErrPermissionDenied):
				// The pod is gone or no longer ours: nothing to report.
			default:
				if _, newer := a.pending[k]; !newer {
					a.pending[k] = ps
				}
				failed = true
				a.o.logger.Warn("report pod status", "pod", k, "err", err)
			}
			a.statusMu.Unlock()
		}
		if failed {
			sleep(ctx, b.next())
			select {
			case a.kick <- struct{}{}:
			default:
			}
		} else {
			b.reset()
		}
	}
}

// ReportEvent records an event about a pod on this node (the server attributes it to
// this node whatever the source says).
func (a *Agent) ReportEvent(ctx context.Context, pod *corev1.Pod, eventType, reason, message string) error {
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, GenerateName: pod.Name + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace,
			Name: pod.Name, UID: pod.UID},
		Type: eventType, Reason: reason, Message: message,
	}
	if err := a.cli.Do(ctx, http.MethodPost, apiclient.Path(api.KindEvent, pod.Namespace, "", ""), ev, nil); err != nil {
		return fmt.Errorf("event %s on pod %s/%s: %w", reason, pod.Namespace, pod.Name, err)
	}
	return nil
}
