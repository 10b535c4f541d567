package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/netsvc"
)

// desiredSource plays the reconciler's Desired: the test swaps the applied revision.
type desiredSource struct {
	p atomic.Pointer[manifest.Desired]
}

func (d *desiredSource) get() *manifest.Desired { return d.p.Load() }

// load decodes YAML files as a git revision would be (defaults, validation).
func (d *desiredSource) load(t *testing.T, files map[string]string) {
	t.Helper()
	raw := map[string][]byte{}
	for k, v := range files {
		raw[k] = []byte(v)
	}
	des, diags := manifest.LoadFiles(raw)
	if diags.HasErrors() {
		t.Fatalf("manifests: %v", diags.Errors())
	}
	d.p.Store(des)
}

const servicesYAML = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ipFamilyPolicy: PreferDualStack
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: fixed}
spec:
  clusterIP: 10.96.7.7
  selector: {app: web}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: edge}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// servicePod is a pod bound to node with IPs, Ready or not.
func servicePod(name, app, node string, ready bool, ips ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
	}
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if len(ips) > 0 {
		p.Status.PodIP = ips[0]
	}
	return p
}

// networks records what WatchNetwork delivers.
type networks struct {
	mu   sync.Mutex
	all  []agentclient.Network
	busy atomic.Int32
}

func (n *networks) add(x agentclient.Network) {
	if n.busy.Add(1) != 1 {
		panic("WatchNetwork called fn concurrently")
	}
	defer n.busy.Add(-1)
	n.mu.Lock()
	n.all = append(n.all, x)
	n.mu.Unlock()
}

func (n *networks) last() (agentclient.Network, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.all) == 0 {
		return agentclient.Network{}, 0
	}
	return n.all[len(n.all)-1], len(n.all)
}

// wait polls until the last delivered Network satisfies ok.
func (n *networks) wait(t *testing.T, what string, ok func(agentclient.Network) error) agentclient.Network {
	t.Helper()
	var got agentclient.Network
	eventually(t, what, func() error {
		var k int
		got, k = n.last()
		if k == 0 {
			return errors.New("no Network delivered yet")
		}
		return ok(got)
	})
	return got
}

func findService(n agentclient.Network, name string) (netsvc.Service, []netsvc.Endpoint, error) {
	for _, s := range n.Services.Services {
		if s.Namespace == "default" && s.Name == name {
			return s, n.Services.Endpoints[s.Key()], nil
		}
	}
	return netsvc.Service{}, nil, fmt.Errorf("service default/%s not in the Network (%d services)", name, len(n.Services.Services))
}

// serving lists "ip=port" of the serving endpoints for the service port portName.
func serving(eps []netsvc.Endpoint, portName string) string {
	var out []string
	for _, e := range eps {
		if e.Serving() {
			out = append(out, fmt.Sprintf("%s=%d", e.IP, e.Ports[portName]))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestServicesNetworkFeed(t *testing.T) {
	var src desiredSource
	src.load(t, map[string]string{"svc.yaml": servicesYAML})
	e := startServer(t, controlplane.WithServiceSource(src.get))
	ctx := context.Background()

	credsN1 := e.join(t, "n1")
	credsN2 := e.join(t, "n2")
	if err := e.nodeClient(t, credsN1).Do(ctx, http.MethodPost, "/api/v1/nodes", testNode("n1"), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*corev1.Pod{
		servicePod("web-1", "web", "n1", true, "10.244.0.5", "fd00:10:244::5"),
		servicePod("web-2", "web", "n1", false, "10.244.0.6"),
		servicePod("db-0", "db", "n1", true, "10.244.0.9"),
	} {
		if _, err := e.st.Pods().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// The agent of n2 reads the whole cluster's network, pods of n1 included.
	agent := startAgent(t, e, credsN2, nil, nil)
	var got networks
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); agent.WatchNetwork(wctx, got.add) }()
	t.Cleanup(func() { cancel(); <-done })

	n := got.wait(t, "all services with their endpoints", func(n agentclient.Network) error {
		web, eps, err := findService(n, "web")
		if err != nil {
			return err
		}
		if len(web.ClusterIPs) != 2 || !web.ClusterIPs[0].Is4() || !web.ClusterIPs[1].Is6() {
			return fmt.Errorf("web VIPs %v: want one IPv4 then one IPv6 (PreferDualStack)", web.ClusterIPs)
		}
		if s := serving(eps, "http"); s != "10.244.0.5=8080,fd00:10:244::5=8080" {
			return fmt.Errorf("web serving endpoints %q", s)
		}
		if len(eps) != 3 {
			return fmt.Errorf("web endpoints %d, want 3 (web-2 listed, not serving)", len(eps))
		}
		for _, name := range []string{"fixed", "db", "edge"} {
			if _, _, err := findService(n, name); err != nil {
				return err
			}
		}
		if len(n.Nodes) != 2 {
			return fmt.Errorf("nodes %v, want n1 and n2", n.Nodes)
		}
		return nil
	})
	web, _, _ := findService(n, "web")
	for _, ip := range web.ClusterIPs {
		if !netip.MustParsePrefix("10.96.0.0/16").Contains(ip) && !netip.MustParsePrefix("fd00:10:96::/112").Contains(ip) {
			t.Errorf("web VIP %s is outside the service CIDRs", ip)
		}
	}
	fixed, _, _ := findService(n, "fixed")
	if len(fixed.ClusterIPs) != 1 || fixed.ClusterIPs[0] != netip.MustParseAddr("10.96.7.7") {
		t.Errorf("fixed VIPs %v, want the requested 10.96.7.7", fixed.ClusterIPs)
	}
	db, dbEps, _ := findService(n, "db")
	if !db.Headless || len(db.ClusterIPs) != 0 || serving(dbEps, "") != "10.244.0.9=5432" {
		t.Errorf("headless db: %+v endpoints %q", db, serving(dbEps, ""))
	}
	edge, _, _ := findService(n, "edge")
	if np := edge.Ports[0].NodePort; np < 30000 || np > 32767 {
		t.Errorf("edge NodePort %d outside 30000-32767", np)
	}
	if n.ClusterDomain != "cluster.local" || n.Revision == 0 {
		t.Errorf("domain %q revision %d", n.ClusterDomain, n.Revision)
	}
	if n.Nodes[0].Name != "n1" || len(n.Nodes[0].PodCIDRs) != 2 || n.Nodes[0].PodCIDRs[0] != netip.MustParsePrefix("10.244.0.0/24") {
		t.Errorf("node n1 in the feed: %+v", n.Nodes[0])
	}

	// web-1 fails readiness: the next Network has no serving endpoint for web.
	_, err := e.st.Pods().GuaranteedUpdate(ctx, "default", "web-1", func(p *corev1.Pod) error {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got.wait(t, "web-1 unready", func(n agentclient.Network) error {
		_, eps, err := findService(n, "web")
		if err != nil {
			return err
		}
		if s := serving(eps, "http"); s != "" {
			return fmt.Errorf("web still serves %q", s)
		}
		return nil
	})
	// web-2 becomes ready; web-1 terminates.
	if _, err := e.st.Pods().GuaranteedUpdate(ctx, "default", "web-2", func(p *corev1.Pod) error {
		p.Status.Conditions[0].Status = corev1.ConditionTrue
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "web-2 ready", func(n agentclient.Network) error {
		_, eps, _ := findService(n, "web")
		if s := serving(eps, "http"); s != "10.244.0.6=8080" {
			return fmt.Errorf("web serves %q", s)
		}
		return nil
	})

	// Only changed endpoints are written: db's slice stays at its version while
	// web's endpoints change (every round recomputes both).
	dbSlice, err := e.st.EndpointSlices().Get(ctx, "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	// web-2's node is lost, then web-2 terminates: not serving either way.
	if _, err := e.st.Pods().GuaranteedUpdate(ctx, "default", "web-2", func(p *corev1.Pod) error {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: api.PodConditionNodeLost, Status: corev1.ConditionTrue})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "web-2 on a lost node", func(n agentclient.Network) error {
		_, eps, _ := findService(n, "web")
		if s := serving(eps, "http"); s != "" {
			return fmt.Errorf("web serves %q", s)
		}
		return nil
	})
	if _, err := e.st.Pods().GuaranteedUpdate(ctx, "default", "web-2", func(p *corev1.Pod) error {
		p.Status.Conditions = p.Status.Conditions[:1]
		now := metav1.Now()
		p.DeletionTimestamp = &now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "web-2 terminating", func(n agentclient.Network) error {
		_, eps, _ := findService(n, "web")
		for _, e := range eps {
			if e.PodName == "web-2" && e.Ready && e.Terminating && !e.Serving() {
				return nil
			}
		}
		return fmt.Errorf("web-2 not listed as ready+terminating: %+v", eps)
	})
	if again, err := e.st.EndpointSlices().Get(ctx, "default", "db"); err != nil || again.ResourceVersion != dbSlice.ResourceVersion {
		t.Errorf("db's unchanged endpoints were rewritten: version %s → %v (%v)", dbSlice.ResourceVersion, again, err)
	}

	// A service leaving git leaves the Network; its VIP is freed.
	src.load(t, map[string]string{"svc.yaml": strings.Split(servicesYAML, "---\n")[0]})
	got.wait(t, "only web left", func(n agentclient.Network) error {
		if len(n.Services.Services) != 1 {
			return fmt.Errorf("%d services", len(n.Services.Services))
		}
		return nil
	})
	alloc, _, err := e.st.ServiceAllocations(ctx)
	if err != nil || len(alloc.Services) != 1 {
		t.Errorf("allocations after removal: %v %v", alloc.Services, err)
	}
	if _, err := e.st.EndpointSlices().Get(ctx, "default", "edge"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("edge's endpoint slice after removal: %v", err)
	}

	// Unauthenticated callers get 401; a join token is no credential for it.
	if err := e.client(t, "").Do(ctx, http.MethodGet, agentclient.NetworkPath, nil, nil); !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("unauthenticated network feed: %v, want ErrUnauthenticated", err)
	}
	if err := e.client(t, e.srv.JoinToken().Token.String()).Do(ctx, http.MethodGet, agentclient.NetworkPath, nil, nil); !errors.Is(err, api.ErrPermissionDenied) {
		t.Errorf("join token on the network feed: %v, want ErrPermissionDenied", err)
	}
	var ro agentclient.Network
	if err := e.client(t, e.token(t, api.RoleReadOnly, 0)).Do(ctx, http.MethodGet, agentclient.NetworkPath, nil, &ro); err != nil || len(ro.Services.Services) != 1 {
		t.Errorf("read-only token on the network feed: %v, %d services", err, len(ro.Services.Services))
	}
	// Agents read services through the feed only, not the admin API.
	if err := e.nodeClient(t, credsN1).Do(ctx, http.MethodGet, "/api/v1/services", nil, nil); !errors.Is(err, api.ErrPermissionDenied) {
		t.Errorf("node listing services: %v, want ErrPermissionDenied", err)
	}
}

// TestServiceVIPsStableAcrossRestart: a second server on the same etcd keeps the
// VIPs the first allocated, even when a Service that sorts first now asks for
// web's VIP (without the stored allocations it would get it).
func TestServiceVIPsStableAcrossRestart(t *testing.T) {
	var src desiredSource
	src.load(t, map[string]string{"svc.yaml": strings.Split(servicesYAML, "---\n")[0]})
	e := startServer(t, controlplane.WithServiceSource(src.get))
	ctx := context.Background()
	var vips []string
	eventually(t, "web allocated", func() error {
		s, err := e.st.Services().Get(ctx, "default", "web")
		if err != nil {
			return err
		}
		vips = s.Spec.ClusterIPs
		if len(vips) != 2 {
			return fmt.Errorf("clusterIPs %v", vips)
		}
		return nil
	})
	e.srv.Close()

	src.load(t, map[string]string{"svc.yaml": strings.Split(servicesYAML, "---\n")[0] + `---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  clusterIP: ` + vips[0] + `
  selector: {app: api}
  ports: [{port: 80}]
`})
	srv2 := controlplane.New(e.st, controlplane.WithDataDir(filepath.Join(e.dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(filepath.Join(e.dir, "client.config")), controlplane.WithLogger(quiet),
		controlplane.WithServiceSource(src.get))
	if err := srv2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Close() })
	eventually(t, "api's request refused, web unchanged", func() error {
		a, err := e.st.Services().Get(ctx, "default", "api")
		if err != nil {
			return err
		}
		if len(a.Status.Conditions) != 1 || a.Status.Conditions[0].Status != metav1.ConditionFalse || a.Status.Conditions[0].Reason != "Conflict" {
			return fmt.Errorf("api conditions %+v, want Allocated=False Conflict", a.Status.Conditions)
		}
		if !strings.Contains(a.Status.Conditions[0].Message, "default/web") {
			return fmt.Errorf("api's condition does not name the holder: %s", a.Status.Conditions[0].Message)
		}
		w, err := e.st.Services().Get(ctx, "default", "web")
		if err != nil {
			return err
		}
		if strings.Join(w.Spec.ClusterIPs, ",") != strings.Join(vips, ",") {
			return fmt.Errorf("web VIPs %v after restart, were %v", w.Spec.ClusterIPs, vips)
		}
		return nil
	})
}

// breakingProxy forwards TCP connections on 127.0.0.1 to the server and can cut
// them all, as a network failure would.
type breakingProxy struct {
	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func newBreakingProxy(t *testing.T, target string) *breakingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &breakingProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.accepted++
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *breakingProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *breakingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// TestWatchNetworkReconnects: the feed's connection is cut; WatchNetwork
// reconnects and delivers the change made meanwhile.
func TestWatchNetworkReconnects(t *testing.T) {
	var src desiredSource
	src.load(t, map[string]string{"svc.yaml": strings.Split(servicesYAML, "---\n")[0]})
	e := startServer(t, controlplane.WithServiceSource(src.get))
	ctx := context.Background()
	if _, err := e.st.Pods().Create(ctx, servicePod("web-1", "web", "n1", false, "10.244.0.5")); err != nil {
		t.Fatal(err)
	}
	proxy := newBreakingProxy(t, strings.TrimPrefix(e.srv.URL(), "https://"))
	a := agentclient.New("https://"+proxy.ln.Addr().String(), e.join(t, "n1"), agentclient.WithListen("127.0.0.1:0"),
		agentclient.WithHeartbeat(time.Hour), agentclient.WithLogger(quiet))
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	var got networks
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); a.WatchNetwork(wctx, got.add) }()
	t.Cleanup(func() { cancel(); <-done })
	got.wait(t, "web without serving endpoints", func(n agentclient.Network) error {
		_, eps, err := findService(n, "web")
		if err != nil {
			return err
		}
		if len(eps) != 1 || eps[0].Serving() {
			return fmt.Errorf("endpoints %+v", eps)
		}
		return nil
	})
	before := proxy.count()
	proxy.cut()
	if _, err := e.st.Pods().GuaranteedUpdate(ctx, "default", "web-1", func(p *corev1.Pod) error {
		p.Status.Conditions[0].Status = corev1.ConditionTrue
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got.wait(t, "web-1 ready after the reconnect", func(n agentclient.Network) error {
		_, eps, _ := findService(n, "web")
		if s := serving(eps, "http"); s != "10.244.0.5=8080" {
			return fmt.Errorf("web serves %q", s)
		}
		return nil
	})
	if proxy.count() <= before {
		t.Errorf("no new connection after the cut (%d before, %d after)", before, proxy.count())
	}
}
