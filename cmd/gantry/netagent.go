package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/sandbox"
	"gantry.io/gantry/netsvc"
)

// netAgentConfig is what a node's service networking needs.
type netAgentConfig struct {
	nodeName string
	// podCIDRs are this node's pod ranges (one per family); the first address of each
	// is the bridge gateway, where the node's DNS listens.
	podCIDRs []string
	// table is the nftables table (inet) of service VIPs. Default
	// netsvc.DefaultTableName.
	table string
	// upstreams are the resolvers other names are forwarded to; nil means the host's
	// /etc/resolv.conf.
	upstreams []string
	// dnsPort is the DNS port on the gateway addresses. Default 53 (pods' resolv.conf
	// cannot name another).
	dnsPort int
	// netns is the network namespace to program ("" the agent's own): the cross-node
	// test runs nodes in namespaces.
	netns  string
	logger *slog.Logger
}

// netAgent runs a node's share of service networking: service VIPs and NodePorts
// (netsvc.Proxy), cluster DNS on the bridge gateway addresses (netsvc.DNS), host-gw
// routes to the other nodes' pod CIDRs (netsvc.Routes) and the pods' resolv.conf.
// It applies every Network of the control plane's feed, newest first, retrying a
// failed one. Stopping it leaves the nftables rules and routes in place (traffic keeps
// flowing while the agent restarts); the next start reconciles them.
type netAgent struct {
	cfg      netAgentConfig
	gateways []netip.Addr
	proxy    *netsvc.Proxy
	routes   *netsvc.Routes

	mu      sync.Mutex
	dns     *netsvc.DNS
	domain  string
	latest  *netUpdate
	kick    chan struct{}
	first   chan struct{} // closed once a Network is applied (DNS domain known)
	applied bool          // first closed
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the apply loop.
	lastServices netsvc.State
	proxySynced  bool
	lastNodes    []netsvc.Node
	routesSynced bool
}

// netUpdate is what the agent applies of one Network of the control plane's feed
// (agentclient.Network).
type netUpdate struct {
	Revision      int64
	Services      netsvc.State
	Nodes         []netsvc.Node
	ClusterDomain string
}

// netAgentFirstNetworkWait bounds how long a pod's sandbox setup waits for the first
// Network (which carries the cluster domain) before writing its resolv.conf with the
// default domain.
const netAgentFirstNetworkWait = 10 * time.Second

// newNetAgent checks nftables and rtnetlink and prepares the DNS server; it changes
// nothing on the node. Returns an error wrapping api.ErrFailedPrecondition that says
// why when nftables is unusable (the agent then refuses to start), and
// api.ErrInvalidArgument for pod CIDRs that do not parse or are missing.
func newNetAgent(cfg netAgentConfig) (*netAgent, error) {
	if cfg.table == "" {
		cfg.table = netsvc.DefaultTableName
	}
	if cfg.dnsPort == 0 {
		cfg.dnsPort = 53
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	gws, err := gatewayAddrs(cfg.podCIDRs)
	if err != nil {
		return nil, err
	}
	n := &netAgent{cfg: cfg, gateways: gws, domain: netsvc.DefaultClusterDomain,
		kick: make(chan struct{}, 1), first: make(chan struct{})}
	popts := []netsvc.Option{netsvc.WithTableName(cfg.table)}
	ropts := []netsvc.RouteOption{netsvc.WithNodeName(cfg.nodeName)}
	if cfg.netns != "" {
		popts = append(popts, netsvc.WithNetNS(cfg.netns))
		ropts = append(ropts, netsvc.WithRoutesNetNS(cfg.netns))
	}
	if n.proxy, err = netsvc.NewProxy(popts...); err != nil {
		return nil, fmt.Errorf("service proxy: %w", err)
	}
	if n.routes, err = netsvc.NewRoutes(ropts...); err != nil {
		n.proxy.Detach()
		return nil, err
	}
	if n.dns, err = n.newDNS(n.domain); err != nil {
		n.proxy.Detach()
		n.routes.Close()
		return nil, err
	}
	return n, nil
}

// gatewayAddrs returns the first address of each pod CIDR, IPv4 first: the address
// the CNI bridge plugin (host-local IPAM without a gateway set) gives the bridge.
func gatewayAddrs(cidrs []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("pod CIDR %q: %v: %w", c, err, api.ErrInvalidArgument)
		}
		out = append(out, p.Masked().Addr().Next())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node has no pod CIDR: %w", api.ErrInvalidArgument)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Is4() && !out[j].Is4() })
	return out, nil
}

func (n *netAgent) newDNS(domain string) (*netsvc.DNS, error) {
	opts := []netsvc.DNSOption{netsvc.WithClusterDomain(domain), netsvc.WithFreeBind()}
	for _, g := range n.gateways {
		opts = append(opts, netsvc.WithListen(netip.AddrPortFrom(g, uint16(n.cfg.dnsPort)).String()))
	}
	if n.cfg.upstreams != nil {
		opts = append(opts, netsvc.WithUpstreams(n.cfg.upstreams...))
	}
	d, err := netsvc.NewDNS(opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster DNS: %w", err)
	}
	return d, nil
}

// startDNS starts d, in the agent's network namespace when it has one.
func (n *netAgent) startDNS(ctx context.Context, d *netsvc.DNS) error {
	start := func() error { return d.Start(ctx) }
	var err error
	if n.cfg.netns != "" {
		err = runInNetNS(n.cfg.netns, start)
	} else {
		err = start()
	}
	if err != nil {
		return fmt.Errorf("cluster DNS on %v port %d: %w", n.gateways, n.cfg.dnsPort, err)
	}
	return nil
}

// Start makes bridged pod traffic pass through nftables (br_netfilter), starts the
// DNS server and the loop that applies Networks. It returns the DNS bind error (port
// 53 on a gateway address taken by another server) — the agent then refuses to
// start. Until the first Network arrives the rules and routes a previous agent left
// stay as they are.
func (n *netAgent) Start(ctx context.Context) error {
	n.bridgeNetfilter()
	if err := n.startDNS(ctx, n.dns); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel, n.done = cancel, make(chan struct{})
	go n.loop(lctx)
	return nil
}

// bridgeNetfilter turns on br_netfilter's hooks for IPv4 and IPv6: a pod reaching a
// service whose endpoint is a pod on the same bridge gets the answer straight over
// the bridge, and only conntrack on the bridge path undoes the DNAT. Without it such
// connections fail (those to other nodes' endpoints work); the agent says so and goes
// on.
func (n *netAgent) bridgeNetfilter() {
	const dir = "/proc/sys/net/bridge/"
	if _, err := os.Stat(dir + "bridge-nf-call-iptables"); err != nil {
		_ = exec.Command("modprobe", "br_netfilter").Run()
	}
	write := func() error {
		var errs []error
		for _, f := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
			if err := os.WriteFile(dir+f, []byte("1"), 0o644); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var err error
	if n.cfg.netns != "" {
		err = runInNetNS(n.cfg.netns, write)
	} else {
		err = write()
	}
	if err != nil {
		n.cfg.logger.Warn("br_netfilter unavailable: pods cannot reach services whose endpoints run on the same node", "err", err)
	}
}

// Apply hands the agent a new Network (the WatchNetwork callback). It returns at
// once; the loop applies the newest Network it was given.
func (n *netAgent) Apply(nw netUpdate) {
	n.mu.Lock()
	n.latest = &nw
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// loop applies Networks until ctx ends; a failed apply is retried with back-off
// (1 s doubling to 30 s) unless a newer Network arrives first.
func (n *netAgent) loop(ctx context.Context) {
	defer close(n.done)
	var pending *netUpdate
	fails := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-retry:
		}
		retry = nil
		n.mu.Lock()
		if n.latest != nil {
			pending, n.latest = n.latest, nil
		}
		n.mu.Unlock()
		if pending == nil {
			continue
		}
		if err := n.apply(ctx, *pending); err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			d := time.Second << min(fails-1, 5)
			if d > 30*time.Second {
				d = 30 * time.Second
			}
			n.cfg.logger.Error("service networking: applying the network failed; retrying", "revision", pending.Revision, "in", d, "err", err)
			retry = time.After(d)
			continue
		}
		fails, pending = 0, nil
	}
}

// apply programs one Network: DNS records (restarting the server when the cluster
// domain changed), the proxy rules (a full Sync first and after a failure, then only
// the services that changed) and the routes when the node list changed.
func (n *netAgent) apply(ctx context.Context, nw netUpdate) error {
	var errs []error
	domain := nw.ClusterDomain
	if domain == "" {
		domain = netsvc.DefaultClusterDomain
	}
	n.mu.Lock()
	d, cur := n.dns, n.domain
	n.mu.Unlock()
	if domain != cur {
		nd, err := n.newDNS(domain)
		if err == nil {
			_ = d.Close()
			if err = n.startDNS(ctx, nd); err != nil {
				// Serve the old domain rather than nothing.
				nd, domain = d, cur
				if rerr := n.startDNS(ctx, d); rerr != nil {
					err = errors.Join(err, rerr)
				}
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster domain %q: %w", domain, err))
		} else {
			n.cfg.logger.Info("cluster DNS domain", "domain", domain)
		}
		n.mu.Lock()
		n.dns, n.domain, d = nd, domain, nd
		n.mu.Unlock()
	}
	d.Update(nw.Services)

	if !n.proxySynced {
		if err := n.proxy.Sync(ctx, nw.Services); err != nil {
			errs = append(errs, fmt.Errorf("service rules: %w", err))
		} else {
			n.proxySynced = true
		}
	} else if changed := changedServices(n.lastServices, nw.Services); len(changed) > 0 {
		if err := n.proxy.SyncChanged(ctx, nw.Services, changed...); err != nil {
			n.proxySynced = false
			errs = append(errs, fmt.Errorf("service rules: %w", err))
		}
	}
	if n.proxySynced {
		n.lastServices = nw.Services
	}

	nodes, err := n.remoteNodes(nw.Nodes)
	if err != nil {
		errs = append(errs, err)
	} else if !n.routesSynced || !reflect.DeepEqual(n.lastNodes, nodes) {
		err := n.routes.Sync(ctx, nodes)
		switch {
		case err == nil:
			n.routesSynced, n.lastNodes = true, nodes
		case errors.Is(err, api.ErrConflict):
			// An operator's route for a pod CIDR: reported, never overwritten; retrying
			// would not change that.
			n.cfg.logger.Warn("pod routes", "err", err)
			n.routesSynced, n.lastNodes = true, nodes
		default:
			n.routesSynced = false
			errs = append(errs, fmt.Errorf("pod routes: %w", err))
		}
	}

	n.mu.Lock()
	if !n.applied {
		n.applied = true
		close(n.first)
	}
	n.mu.Unlock()
	return errors.Join(errs...)
}

// remoteNodes returns nodes without the other nodes whose address is one of this
// network namespace's own: agents sharing one machine (tests, demos) reach each
// other's pods through their bridges directly, and a route via a local address would
// shadow the other bridge's own route.
func (n *netAgent) remoteNodes(nodes []netsvc.Node) ([]netsvc.Node, error) {
	var addrs []net.Addr
	list := func() (err error) { addrs, err = net.InterfaceAddrs(); return err }
	var err error
	if n.cfg.netns != "" {
		err = runInNetNS(n.cfg.netns, list)
	} else {
		err = list()
	}
	if err != nil {
		return nil, fmt.Errorf("pod routes: local addresses: %w", err)
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr().Unmap()] = true
		}
	}
	out := make([]netsvc.Node, 0, len(nodes))
next:
	for _, nd := range nodes {
		if nd.Name != n.cfg.nodeName {
			for _, a := range nd.Addrs {
				if local[a.Unmap()] {
					continue next
				}
			}
		}
		out = append(out, nd)
	}
	return out, nil
}

// changedServices lists the services whose Service or endpoints differ between two
// States, including those only in one of them, sorted.
func changedServices(old, cur netsvc.State) []netsvc.ServiceKey {
	oldSvc := make(map[netsvc.ServiceKey]*netsvc.Service, len(old.Services))
	for i := range old.Services {
		oldSvc[old.Services[i].Key()] = &old.Services[i]
	}
	var out []netsvc.ServiceKey
	seen := make(map[netsvc.ServiceKey]bool, len(cur.Services))
	for i := range cur.Services {
		s := &cur.Services[i]
		k := s.Key()
		seen[k] = true
		o, ok := oldSvc[k]
		if !ok || !reflect.DeepEqual(o, s) || !sameEndpoints(old.Endpoints[k], cur.Endpoints[k]) {
			out = append(out, k)
		}
	}
	for k := range oldSvc {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func sameEndpoints(a, b []netsvc.Endpoint) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// nameservers returns the pods' DNS server addresses, IPv4 first.
func (n *netAgent) nameservers() []string {
	out := make([]string, 0, len(n.gateways))
	for _, g := range n.gateways {
		out = append(out, g.String())
	}
	return out
}

// ResolvConf is the sandbox's resolv.conf hook (sandbox.WithResolvConfFunc): the
// node's DNS addresses, the search path of the pod's namespace under the cluster
// domain and ndots:5. Before the first Network has been applied it waits for it (at
// most netAgentFirstNetworkWait), so the search path names the server's domain.
func (n *netAgent) ResolvConf(p sandbox.PodRef) (string, bool) {
	select {
	case <-n.first:
	case <-time.After(netAgentFirstNetworkWait):
	}
	n.mu.Lock()
	domain := n.domain
	n.mu.Unlock()
	return netsvc.ResolvConf(n.nameservers(), p.Namespace, domain), true
}

// Close stops applying Networks and the DNS server, and leaves the nftables table and
// the routes in place for the next agent (which reconciles them at its first Network).
// Safe after a failed Start and twice.
func (n *netAgent) Close() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
	n.mu.Lock()
	d := n.dns
	n.mu.Unlock()
	if d != nil {
		_ = d.Close()
	}
	n.proxy.Detach()
	n.routes.Close()
}

// describe is a one-line summary for the agent's start message.
func (n *netAgent) describe() string {
	return fmt.Sprintf("services on nftables table inet %s, DNS on %v port %s", n.cfg.table, n.gateways, strconv.Itoa(n.cfg.dnsPort))
}

// runInNetNS runs fn on an OS thread switched into the network namespace at path;
// sockets fn opens stay in that namespace. The thread is retired if it cannot switch
// back.
func runInNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			errc <- fmt.Errorf("network namespace %s: %w", path, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace %s: %w", path, err))
			return // the thread stays locked and exits with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netFlags are the service networking flags of `gantry up` and `gantry agent --server`.
type netFlags struct {
	serviceTable string
	dnsUpstreams []string
}

func (f *netFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.serviceTable, "service-table", netsvc.DefaultTableName, "nftables table (inet) of service VIPs and NodePorts on this node")
	fl.StringSliceVar(&f.dnsUpstreams, "dns-upstream", nil, "resolver (IP[:port]) the node's DNS forwards non-cluster names to, tried in order (default: the nameservers of /etc/resolv.conf)")
}
