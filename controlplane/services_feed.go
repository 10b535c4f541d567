package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/netsvc"
	"gantry.io/gantry/store"
)

// feedDebounce gathers a burst of store changes into one new Network.
const feedDebounce = 20 * time.Millisecond

// networkHub keeps the agents' Network in memory on every server (leader or not):
// it lists and then watches the stored Services, EndpointSlices and Nodes, and
// rebuilds the Network after each burst of changes. Streams share the encoded
// form; a new Network is published only when its content changed (node
// heartbeats change nothing an agent needs).
type networkHub struct {
	st     *store.Store
	domain string

	mu       sync.Mutex
	services map[string]*corev1.Service
	slices   map[string]*store.EndpointSlice
	nodes    map[string]netsvc.Node
	loaded   map[api.Kind]bool // the kinds listed so far
	dirty    chan struct{}

	parts   map[string]*servicePart // "<ns>/<name>" → encoded part
	curJSON []byte
	curRev  int64
	changed chan struct{} // closed and replaced when cur changes
	ready   chan struct{} // closed at the first Network
}

func newNetworkHub(st *store.Store, domain string) *networkHub {
	if domain == "" {
		domain = agentclient.DefaultClusterDomain
	}
	return &networkHub{st: st, domain: domain, services: map[string]*corev1.Service{},
		slices: map[string]*store.EndpointSlice{}, nodes: map[string]netsvc.Node{}, loaded: map[api.Kind]bool{}, parts: map[string]*servicePart{},
		dirty: make(chan struct{}, 1), changed: make(chan struct{}), ready: make(chan struct{})}
}

func (h *networkHub) markDirty() {
	select {
	case h.dirty <- struct{}{}:
	default:
	}
}

// run follows the store until ctx ends.
func (h *networkHub) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(3)
	go func() {
		defer wg.Done()
		followKind(ctx, h, h.st.Services(), func(o *corev1.Service) bool {
			k := o.Namespace + "/" + o.Name
			if o.DeletionTimestamp != nil {
				delete(h.services, k)
			} else {
				h.services[k] = o
			}
			return true
		}, func(o *corev1.Service) bool { delete(h.services, o.Namespace+"/"+o.Name); return true }, func() { clear(h.services) })
	}()
	go func() {
		defer wg.Done()
		followKind(ctx, h, h.st.EndpointSlices(), func(o *store.EndpointSlice) bool {
			h.slices[o.Namespace+"/"+o.Name] = o
			return true
		}, func(o *store.EndpointSlice) bool { delete(h.slices, o.Namespace+"/"+o.Name); return true }, func() { clear(h.slices) })
	}()
	go func() {
		defer wg.Done()
		followKind(ctx, h, h.st.Nodes(), func(o *corev1.Node) bool {
			n := nodeNetwork(o)
			if old, ok := h.nodes[o.Name]; ok && reflect.DeepEqual(old, n) {
				return false // a heartbeat
			}
			h.nodes[o.Name] = n
			return true
		}, func(o *corev1.Node) bool { delete(h.nodes, o.Name); return true }, func() { clear(h.nodes) })
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.dirty:
		}
		sleepCtx(ctx, feedDebounce)
		select {
		case <-h.dirty:
		default:
		}
		h.rebuild()
	}
}

// followKind lists a kind into the hub (reset, then put each object), then
// watches it from the list's revision; it starts over if the watch cannot be
// established.
func followKind[T any, PT interface {
	*T
	store.Object
}](ctx context.Context, h *networkHub, res *store.Resource[T, PT], put, del func(PT) bool, reset func()) {
	for ctx.Err() == nil {
		list, err := res.List(ctx, "", store.ListOptions{})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		ch, err := res.Watch(ctx, "", store.WatchOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		h.mu.Lock()
		reset()
		for _, o := range list.Items {
			put(o)
		}
		h.loaded[res.Kind()] = true
		h.mu.Unlock()
		h.markDirty()
		for ev := range ch {
			h.mu.Lock()
			var changed bool
			if ev.Type == store.Deleted {
				changed = del(ev.Object)
			} else {
				changed = put(ev.Object)
			}
			h.mu.Unlock()
			if changed {
				h.markDirty()
			}
		}
	}
}

// servicePart is one service's encoded part of the Network, valid while the
// Service and its EndpointSlice keep their resourceVersions.
type servicePart struct {
	svcRV, sliceRV string
	b              []byte // nil: the service is left out (no VIP)
}

// rebuild makes the Network from the hub's maps and publishes it if it differs.
// Only services whose Service or EndpointSlice changed are encoded again.
func (h *networkHub) rebuild() {
	h.mu.Lock()
	if len(h.loaded) < 3 {
		h.mu.Unlock()
		return // a partial view would make agents drop services
	}
	b, err := h.encode()
	h.mu.Unlock()
	if err != nil {
		return // plain data: cannot happen
	}
	f := fnv.New64a()
	_, _ = f.Write(b)
	rev := int64(f.Sum64() >> 1)
	if b, err = spliceRevision(b, rev); err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.curJSON != nil && h.curRev == rev {
		return
	}
	first := h.curJSON == nil
	h.curJSON, h.curRev = b, rev
	close(h.changed)
	h.changed = make(chan struct{})
	if first {
		close(h.ready)
	}
}

// encode assembles the Network with revision 0 from the cached service parts,
// refreshing the stale ones. h.mu must be held.
func (h *networkHub) encode() ([]byte, error) {
	keys := make([]netsvc.ServiceKey, 0, len(h.services))
	for _, s := range h.services {
		keys = append(keys, netsvc.ServiceKey{Namespace: s.Namespace, Name: s.Name})
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Namespace != keys[j].Namespace {
			return keys[i].Namespace < keys[j].Namespace
		}
		return keys[i].Name < keys[j].Name
	})
	parts := make([][]byte, 0, len(keys))
	live := make(map[string]bool, len(keys))
	for _, key := range keys {
		k := key.String()
		live[k] = true
		svc, sl := h.services[k], h.slices[k]
		sliceRV := ""
		if sl != nil {
			sliceRV = sl.ResourceVersion
		}
		p := h.parts[k]
		if p == nil || p.svcRV != svc.ResourceVersion || p.sliceRV != sliceRV || svc.ResourceVersion == "" {
			b, err := encodeServicePart(svc, sl)
			if err != nil {
				return nil, err
			}
			p = &servicePart{svcRV: svc.ResourceVersion, sliceRV: sliceRV, b: b}
			h.parts[k] = p
		}
		if p.b != nil {
			parts = append(parts, p.b)
		}
	}
	for k := range h.parts {
		if !live[k] {
			delete(h.parts, k)
		}
	}
	nodes := make([]netsvc.Node, 0, len(h.nodes))
	for _, nd := range h.nodes {
		nodes = append(nodes, nd)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	return agentclient.AssembleNetwork(0, parts, nodes, h.domain, nil)
}

// encodeServicePart is a stored Service and its EndpointSlice as agents get them;
// nil for a Service that is not headless and holds no VIP (its allocation failed):
// there is nothing to program for it.
func encodeServicePart(s *corev1.Service, sl *store.EndpointSlice) ([]byte, error) {
	svc, ok := serviceNetwork(s)
	if !ok {
		return nil, nil
	}
	var eps []netsvc.Endpoint
	if sl != nil {
		eps = make([]netsvc.Endpoint, 0, len(sl.Endpoints))
		for _, e := range sl.Endpoints {
			eps = append(eps, netsvc.Endpoint{IP: e.IP, Ports: e.Ports, Ready: e.Ready, Terminating: e.Terminating,
				Hostname: e.Hostname, PodName: e.PodName})
		}
	}
	return agentclient.EncodeNetworkService(svc, eps)
}

// spliceRevision replaces the revision 0 an encoding starts with by rev.
func spliceRevision(b []byte, rev int64) ([]byte, error) {
	const head = `{"revision":0,`
	if !bytes.HasPrefix(b, []byte(head)) {
		return nil, fmt.Errorf("network encoding does not start with %s", head)
	}
	out := make([]byte, 0, len(b)+20)
	out = append(out, `{"revision":`...)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, ',')
	return append(out, b[len(head):]...), nil
}

// current returns the encoded Network, its revision and a channel closed at the
// next change; ok is false before the first Network.
func (h *networkHub) current() (b []byte, rev int64, changed <-chan struct{}, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.curJSON == nil {
		return nil, 0, h.changed, false
	}
	return h.curJSON, h.curRev, h.changed, true
}

// serviceNetwork is what agents need of a stored Service.
func serviceNetwork(s *corev1.Service) (netsvc.Service, bool) {
	out := netsvc.Service{Namespace: s.Namespace, Name: s.Name, Headless: s.Spec.ClusterIP == corev1.ClusterIPNone,
		SessionAffinity: string(s.Spec.SessionAffinity)}
	if out.SessionAffinity == "" {
		out.SessionAffinity = netsvc.AffinityNone
	}
	if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
		out.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
	}
	if !out.Headless {
		for _, ip := range s.Spec.ClusterIPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				out.ClusterIPs = append(out.ClusterIPs, a.Unmap())
			}
		}
		if len(out.ClusterIPs) == 0 {
			return netsvc.Service{}, false
		}
	}
	for _, p := range s.Spec.Ports {
		out.Ports = append(out.Ports, netsvc.ServicePort{Name: p.Name, Protocol: string(p.Protocol), Port: p.Port,
			NodePort: p.NodePort, TargetPort: p.TargetPort})
	}
	return out, true
}

// nodeNetwork is what agents need of a node: its pod CIDRs and InternalIPs.
func nodeNetwork(n *corev1.Node) netsvc.Node {
	out := netsvc.Node{Name: n.Name}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			out.PodCIDRs = append(out.PodCIDRs, p.Masked())
		}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			out.Addrs = append(out.Addrs, ip.Unmap())
		}
	}
	return out
}

// authorizeNetwork lets every joined node, admin and read-only tokens read the
// network feed: agents need all services and all nodes' pod CIDRs and addresses
// (host-gw routes), which is why this is not the per-node rule of the node API.
func authorizeNetwork(id Identity) error {
	if id.Role == api.RoleNode {
		return nil
	}
	return Authorize(id, Request{Verb: VerbGet, Kind: store.KindService, Name: "network"})
}

// networkFeed serves GET /api/v1/network (one Network) and ?watch=true (a stream).
func (s *Server) networkFeed(w http.ResponseWriter, r *http.Request, id Identity) error {
	if err := authorizeNetwork(id); err != nil {
		return err
	}
	h := s.netHub
	if h == nil {
		return fmt.Errorf("network feed not running: %w", api.ErrUnavailable)
	}
	ctx := r.Context()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-h.ready:
	}
	if r.URL.Query().Get("watch") != "true" {
		b, _, _, _ := h.current()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(append(b[:len(b):len(b)], '\n'))
		return nil
	}
	s.metrics.watches.Inc()
	defer s.metrics.watches.Dec()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	keep := time.NewTicker(agentclient.NetworkKeepAlive)
	defer keep.Stop()
	var sent int64
	first := true
	for {
		b, rev, changed, _ := h.current()
		if first || rev != sent {
			if _, err := w.Write(append(b[:len(b):len(b)], '\n')); err != nil {
				return nil // the client went away
			}
			sent, first = rev, false
			keep.Reset(agentclient.NetworkKeepAlive)
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-keep.C:
			if _, err := w.Write([]byte("\n")); err != nil {
				return nil
			}
		}
	}
}

// registerServices mounts the network feed and the read-only service API:
//
//	GET /api/v1/network[?watch=true]                              agents' feed (every node)
//	GET /api/v1/services, /api/v1/namespaces/{ns}/services[/{name}]  (watch=true streams)
//	GET /api/v1/endpointslices, /api/v1/namespaces/{ns}/endpointslices[/{name}]
func (s *Server) registerServices(mux *http.ServeMux) {
	mux.Handle("GET "+agentclient.NetworkPath, s.route(VerbGet, "network", true, s.networkFeed))
	p := api.APIPrefix
	svc := &kindAPI[corev1.Service, *corev1.Service]{
		s: s, res: s.st.Services(), typeName: "Service",
		fields: func(o *corev1.Service) fields.Set {
			return fields.Set{"metadata.name": o.Name, "metadata.namespace": o.Namespace, "spec.type": string(o.Spec.Type)}
		},
		nodeOf:     func(*corev1.Service) string { return "" },
		copyStatus: func(dst, src *corev1.Service) { dst.Status = src.Status },
	}
	eps := &kindAPI[store.EndpointSlice, *store.EndpointSlice]{
		s: s, res: s.st.EndpointSlices(), typeName: "EndpointSlice",
		fields: func(o *store.EndpointSlice) fields.Set {
			return fields.Set{"metadata.name": o.Name, "metadata.namespace": o.Namespace}
		},
		nodeOf:     func(*store.EndpointSlice) string { return "" },
		copyStatus: func(dst, src *store.EndpointSlice) {},
	}
	for _, res := range []string{string(store.KindService), string(store.KindEndpointSlice)} {
		list, get := svc.list, svc.get
		if res == string(store.KindEndpointSlice) {
			list, get = eps.list, eps.get
		}
		mux.Handle("GET "+p+"/"+res, s.route(VerbList, res, false, list))
		mux.Handle("GET "+p+"/namespaces/{ns}/"+res, s.route(VerbList, res, false, list))
		mux.Handle("GET "+p+"/namespaces/{ns}/"+res+"/{name}", s.route(VerbGet, res, false, get))
	}
}
