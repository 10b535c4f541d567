package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/netsvc"
	"gantry.io/gantry/netsvc/ipalloc"
	"gantry.io/gantry/store"
)

// Defaults of the services controller.
const (
	// DefaultServiceResync is how often the services controller recomputes
	// everything even when nothing seems to have changed.
	DefaultServiceResync = 30 * time.Second
	// servicesDebounce gathers a burst of pod changes into one round.
	servicesDebounce = 50 * time.Millisecond
	// desiredPoll is how often the controller looks for a new applied revision
	// (a pointer comparison).
	desiredPoll = 250 * time.Millisecond
)

// serviceOpts configure the services controller and the network feed.
type serviceOpts struct {
	alloc  ipalloc.Config
	domain string
	source func() *manifest.Desired
	resync time.Duration
}

// WithServiceNetwork sets the service CIDRs and the NodePort range VIPs and
// NodePorts are allocated from. Default ipalloc's: 10.96.0.0/16,
// fd00:10:96::/112 and 30000-32767.
func WithServiceNetwork(c ipalloc.Config) Option { return func(o *serverOpts) { o.svc.alloc = c } }

// WithClusterDomain sets the DNS domain agents serve service names under.
// Default "cluster.local".
func WithClusterDomain(d string) Option { return func(o *serverOpts) { o.svc.domain = d } }

// WithServiceSource sets where the Services come from: the desired state of the
// applied git revision, nil while none is loaded (then stored Services are kept
// as they are). Default: the reconciler's Desired (WithReconciler); without
// either, no Services are managed and only their endpoints are kept up to date.
func WithServiceSource(src func() *manifest.Desired) Option {
	return func(o *serverOpts) { o.svc.source = src }
}

// WithServiceResync sets the services controller's periodic resync. Default 30s.
func WithServiceResync(d time.Duration) Option { return func(o *serverOpts) { o.svc.resync = d } }

// servicesController allocates VIPs and NodePorts for the Services of the applied
// revision, stores them, and publishes each Service's endpoints. It runs on the
// elected leader only (etcd election "leader/services") and is level-triggered:
// each round recomputes from the desired state and the store.
type servicesController struct {
	st     *store.Store
	o      serviceOpts
	logger *slog.Logger
	now    func() time.Time
	kick   chan struct{}

	applied *manifest.Desired // the desired state of the last successful services phase
	full    time.Time         // when that phase last ran
}

// startServices starts the network hub (every server) and the services
// controller (leader only) until ctx ends.
func (s *Server) startServices(ctx context.Context) {
	o := s.opts.svc
	if o.source == nil && s.opts.reconciler != nil {
		o.source = s.opts.reconciler.Desired
	}
	if o.resync <= 0 {
		o.resync = DefaultServiceResync
	}
	s.netHub = newNetworkHub(s.st, o.domain)
	c := &servicesController{st: s.st, o: o, logger: s.opts.logger, now: s.opts.now, kick: make(chan struct{}, 1)}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.netHub.run(ctx) }()
	go func() { defer s.wg.Done(); c.run(ctx, s.url) }()
}

func (c *servicesController) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run campaigns for leadership and leads while elected.
func (c *servicesController) run(ctx context.Context, url string) {
	host, _ := os.Hostname()
	whileLeader(ctx, c.st.Client(), "services", host+" "+url, func(ctx context.Context) {
		c.logger.Info("leading the services controller")
		c.applied = nil // a new leader recomputes everything
		c.lead(ctx)
	})
}

func (c *servicesController) lead(ctx context.Context) {
	watching := make(chan struct{})
	defer func() { <-watching }()
	go func() {
		defer close(watching)
		for ctx.Err() == nil {
			ch, err := c.st.Pods().Watch(ctx, "", store.WatchOptions{})
			if err != nil {
				sleepCtx(ctx, time.Second)
				continue
			}
			for range ch {
				c.Kick()
			}
		}
	}()
	poll := time.NewTicker(desiredPoll)
	defer poll.Stop()
	c.Kick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			sleepCtx(ctx, servicesDebounce)
			select {
			case <-c.kick:
			default:
			}
		case <-poll.C:
			if c.o.source == nil || c.o.source() == c.applied {
				if c.now().Sub(c.full) < c.o.resync {
					continue
				}
				c.applied = nil // resync: the services phase runs again
			}
		}
		var err error
		for range maxConflicts {
			if err = c.round(ctx); !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrAlreadyExists) {
				break
			}
		}
		if err != nil && ctx.Err() == nil {
			c.logger.Warn("services controller", "err", err)
			c.applied = nil
			sleepCtx(ctx, time.Second)
			c.Kick()
		}
	}
}

// round runs the services phase when the desired state changed (or at resync),
// then the endpoints phase.
func (c *servicesController) round(ctx context.Context) error {
	stored, err := c.st.Services().List(ctx, "", store.ListOptions{})
	if err != nil {
		return err
	}
	services := map[string]*corev1.Service{}
	for _, s := range stored.Items {
		services[s.Namespace+"/"+s.Name] = s
	}
	var desired *manifest.Desired
	if c.o.source != nil {
		desired = c.o.source()
	}
	if desired != nil && desired != c.applied {
		if services, err = c.syncServices(ctx, desired, services); err != nil {
			return err
		}
		c.applied, c.full = desired, c.now()
	} else if desired == nil && c.now().Sub(c.full) >= c.o.resync {
		c.full = c.now()
	}
	return c.publishEndpoints(ctx, services)
}

// syncServices allocates for every desired Service, releases what left git,
// saves the allocations (compare-and-swap) and writes the stored Services that
// changed. It returns the stored Services as they are now.
func (c *servicesController) syncServices(ctx context.Context, desired *manifest.Desired, stored map[string]*corev1.Service) (map[string]*corev1.Service, error) {
	prev, rev, err := c.st.ServiceAllocations(ctx)
	if err != nil {
		return nil, err
	}
	alloc, err := ipalloc.New(c.o.alloc, prev)
	if err != nil {
		return nil, fmt.Errorf("service allocations: %w", err)
	}
	want := map[string]*corev1.Service{}
	for _, svc := range desired.Services {
		ns := nsOr(svc.Namespace)
		key := ns + "/" + svc.Name
		req, err := allocationRequest(svc)
		var res ipalloc.Result
		if err == nil {
			res, err = alloc.Allocate(req)
		}
		cond := metav1.Condition{Type: store.ServiceConditionAllocated, Status: metav1.ConditionTrue, Reason: "Allocated",
			Message: "VIPs and NodePorts allocated"}
		if err != nil {
			// Allocate changed nothing: the service keeps what it held.
			old := alloc.State().Services[key]
			res = ipalloc.Result{ClusterIPs: old.ClusterIPs, NodePorts: old.NodePorts, IPFamilies: familiesOf(old.ClusterIPs)}
			cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reasonFor(err), err.Error()
			c.logger.Warn("service allocation", "service", key, "err", err)
		}
		want[key] = storedService(svc, ns, res, cond, stored[key], c.now())
	}
	for key := range prev.Services {
		if _, ok := want[key]; !ok {
			ns, name := splitKey(key)
			alloc.Release(ns, name)
		}
	}
	if next := alloc.State(); !sameJSON(next, prev) {
		if _, err := c.st.SaveServiceAllocations(ctx, next, rev); err != nil {
			return nil, err
		}
	}
	out := map[string]*corev1.Service{}
	for key, w := range want {
		cur := stored[key]
		switch {
		case cur == nil:
			created, err := c.st.Services().Create(ctx, w)
			if err != nil {
				return nil, fmt.Errorf("store service %s: %w", key, err)
			}
			out[key] = created
		case sameService(cur, w):
			out[key] = cur
		default:
			w.UID, w.CreationTimestamp, w.ResourceVersion = cur.UID, cur.CreationTimestamp, cur.ResourceVersion
			updated, err := c.st.Services().Update(ctx, w)
			if err != nil {
				return nil, fmt.Errorf("store service %s: %w", key, err)
			}
			out[key] = updated
		}
	}
	for key, cur := range stored {
		if _, ok := want[key]; ok {
			continue
		}
		if _, err := c.st.Services().Delete(ctx, cur.Namespace, cur.Name, cur.ResourceVersion); err != nil && !errors.Is(err, api.ErrNotFound) {
			return nil, fmt.Errorf("delete service %s: %w", key, err)
		}
		c.logger.Info("service removed", "service", key)
	}
	return out, nil
}

// allocationRequest is what a Service asks of the allocator.
func allocationRequest(svc *corev1.Service) (ipalloc.Request, error) {
	req := ipalloc.Request{Namespace: nsOr(svc.Namespace), Name: svc.Name, Headless: svc.Spec.ClusterIP == corev1.ClusterIPNone}
	for _, f := range svc.Spec.IPFamilies {
		req.IPFamilies = append(req.IPFamilies, string(f))
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		req.IPFamilyPolicy = string(*p)
	}
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	if !req.Headless {
		for _, s := range ips {
			if s == "" {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return req, fmt.Errorf("service %s: clusterIP %q is not an IP address: %w", req.Name, s, api.ErrInvalidArgument)
			}
			req.ClusterIPs = append(req.ClusterIPs, a.Unmap())
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, p := range svc.Spec.Ports {
			req.Ports = append(req.Ports, ipalloc.PortRequest{Protocol: string(p.Protocol), Port: p.Port, NodePort: p.NodePort})
		}
	}
	return req, nil
}

// storedService is the Service as stored: git's object with the allocation
// filled in and the Allocated condition (its transition time kept while the
// status stays).
func storedService(svc *corev1.Service, ns string, res ipalloc.Result, cond metav1.Condition, cur *corev1.Service, now time.Time) *corev1.Service {
	out := svc.DeepCopy()
	out.Namespace = ns
	out.ResourceVersion, out.UID, out.CreationTimestamp = "", "", metav1.Time{}
	if out.Spec.ClusterIP == corev1.ClusterIPNone {
		out.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
	} else {
		out.Spec.ClusterIP, out.Spec.ClusterIPs = "", nil
		for _, ip := range res.ClusterIPs {
			out.Spec.ClusterIPs = append(out.Spec.ClusterIPs, ip.String())
		}
		if len(out.Spec.ClusterIPs) > 0 {
			out.Spec.ClusterIP = out.Spec.ClusterIPs[0]
		}
	}
	out.Spec.IPFamilies = nil
	for _, f := range res.IPFamilies {
		out.Spec.IPFamilies = append(out.Spec.IPFamilies, corev1.IPFamily(f))
	}
	if out.Spec.IPFamilyPolicy == nil {
		p := corev1.IPFamilyPolicySingleStack
		out.Spec.IPFamilyPolicy = &p
	}
	for i := range out.Spec.Ports {
		p := &out.Spec.Ports[i]
		p.NodePort = res.NodePorts[ipalloc.PortRequest{Protocol: string(p.Protocol), Port: p.Port}.Key()]
	}
	cond.LastTransitionTime = metav1.NewTime(now.UTC().Truncate(time.Second))
	if cur != nil {
		for _, old := range cur.Status.Conditions {
			if old.Type == cond.Type && old.Status == cond.Status {
				cond.LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	out.Status = corev1.ServiceStatus{Conditions: []metav1.Condition{cond}}
	return out
}

func sameService(a, b *corev1.Service) bool {
	return equality.Semantic.DeepEqual(a.Labels, b.Labels) && equality.Semantic.DeepEqual(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.Spec, b.Spec) && sameJSON(a.Status, b.Status)
}

func familiesOf(ips []netip.Addr) []string {
	var out []string
	for _, ip := range ips {
		if ip.Is4() {
			out = append(out, ipalloc.IPv4)
		} else {
			out = append(out, ipalloc.IPv6)
		}
	}
	return out
}

// reasonFor names an allocation error's class for the Allocated condition.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, api.ErrConflict):
		return "Conflict"
	case errors.Is(err, api.ErrUnavailable):
		return "RangeExhausted"
	case errors.Is(err, api.ErrInvalidArgument):
		return "Invalid"
	}
	return "Failed"
}

func splitKey(key string) (string, string) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return "", key
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// publishEndpoints writes each stored Service's EndpointSlice when it changed and
// deletes the slices of Services that are gone.
func (c *servicesController) publishEndpoints(ctx context.Context, services map[string]*corev1.Service) error {
	pods, err := c.st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		return err
	}
	slices, err := c.st.EndpointSlices().List(ctx, "", store.ListOptions{})
	if err != nil {
		return err
	}
	idx := candidatePods(pods.Items)
	have := map[string]*store.EndpointSlice{}
	for _, sl := range slices.Items {
		have[sl.Namespace+"/"+sl.Name] = sl
	}
	for key, svc := range services {
		eps := endpointsFor(svc, idx.forService(svc))
		cur := have[key]
		if cur != nil && sameJSON(cur.Endpoints, eps) {
			continue
		}
		sl := &store.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name,
			Labels: map[string]string{api.LabelServiceName: svc.Name}}, Endpoints: eps}
		if cur == nil {
			_, err = c.st.EndpointSlices().Create(ctx, sl)
		} else {
			sl.UID, sl.CreationTimestamp, sl.ResourceVersion = cur.UID, cur.CreationTimestamp, cur.ResourceVersion
			_, err = c.st.EndpointSlices().Update(ctx, sl)
		}
		if err != nil {
			return fmt.Errorf("publish endpoints of %s: %w", key, err)
		}
	}
	for key, sl := range have {
		if _, ok := services[key]; ok {
			continue
		}
		if _, err := c.st.EndpointSlices().Delete(ctx, sl.Namespace, sl.Name, sl.ResourceVersion); err != nil && !errors.Is(err, api.ErrNotFound) {
			return fmt.Errorf("delete endpoints of %s: %w", key, err)
		}
	}
	return nil
}

// candidate is a pod that may back a service: the original and a copy that
// netsvc.Endpoints accepts whatever its readiness (Ready, not terminating).
type candidate struct {
	orig, forced *corev1.Pod
}

// podIndex holds the pods that have not finished, by namespace and label, so a
// service's candidates are found without scanning every pod of its namespace.
type podIndex map[string][]candidate // "<ns>\x00<key>=<value>" → pods

// candidatePods indexes the pods that have not finished.
func candidatePods(pods []*corev1.Pod) podIndex {
	out := podIndex{}
	readyTrue := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		cp := *p
		cp.DeletionTimestamp = nil
		cp.Status.Conditions = readyTrue
		c := candidate{orig: p, forced: &cp}
		for k, v := range p.Labels {
			key := p.Namespace + "\x00" + k + "=" + v
			out[key] = append(out[key], c)
		}
	}
	return out
}

// forService returns the pods carrying the rarest of the service's selector
// labels (a superset of the matches; netsvc.Endpoints checks the whole selector).
func (x podIndex) forService(svc *corev1.Service) []candidate {
	var best []candidate
	first := true
	for k, v := range svc.Spec.Selector {
		c := x[svc.Namespace+"\x00"+k+"="+v]
		if first || len(c) < len(best) {
			best, first = c, false
		}
	}
	return best
}

// endpointsFor selects the endpoints of svc among the pods of its namespace
// (netsvc.Endpoints' rules: selector, IPs, targetPort resolution), ready or not:
// Ready is the pod's Ready condition, false while its node is lost (NodeLost);
// Terminating is a set deletionTimestamp.
func endpointsFor(svc *corev1.Service, pods []candidate) []store.Endpoint {
	if len(svc.Spec.Selector) == 0 || len(pods) == 0 {
		return []store.Endpoint{}
	}
	forced := make([]*corev1.Pod, len(pods))
	byName := make(map[string]*corev1.Pod, len(pods))
	for i, c := range pods {
		forced[i] = c.forced
		byName[c.orig.Name] = c.orig
	}
	out := []store.Endpoint{}
	for _, e := range netsvc.Endpoints(svc, forced) {
		p := byName[e.PodName]
		ready := false
		if c := podCondition(p, corev1.PodReady); c != nil && c.Status == corev1.ConditionTrue {
			ready = true
		}
		if c := podCondition(p, api.PodConditionNodeLost); c != nil && c.Status == corev1.ConditionTrue {
			ready = false
		}
		ports := e.Ports
		if len(ports) == 0 {
			ports = nil
		}
		out = append(out, store.Endpoint{IP: e.IP, Ports: ports, Ready: ready, Terminating: p.DeletionTimestamp != nil,
			Hostname: e.Hostname, PodName: e.PodName, NodeName: p.Spec.NodeName})
	}
	return out
}
