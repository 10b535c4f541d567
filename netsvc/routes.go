package netsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
)

// DefaultRouteProtocol is the routing protocol number (rtm_protocol) that marks
// the routes a Routes owns: `ip route` shows them as `proto 0x67`. Routes with any
// other protocol are never touched.
const DefaultRouteProtocol = 0x67

// Node is what pod routing needs of a cluster node: its name, the pod CIDRs it
// was given (at most one per family) and its addresses on the node network (at
// most one per family).
type Node struct {
	Name     string
	PodCIDRs []netip.Prefix
	Addrs    []netip.Addr
}

// Routes programs host-gw pod routing in one network namespace: for every other
// node, a route `podCIDR via nodeAddr` per IP family, in the main table, marked
// with its routing protocol number. Safe for concurrent use; Syncs are
// serialized.
type Routes struct {
	node  string
	netns string
	proto netlink.RouteProtocol

	mu     sync.Mutex
	ns     netns.NsHandle
	handle *netlink.Handle
	stats  RouteStats
}

// RouteOption configures a Routes.
type RouteOption func(*Routes)

// WithNodeName names this node: its own entry in Sync's list gets no route.
// Required.
func WithNodeName(name string) RouteOption { return func(r *Routes) { r.node = name } }

// WithRoutesNetNS programs the network namespace at path (e.g. /run/netns/x)
// instead of the caller's. Default: the caller's namespace.
func WithRoutesNetNS(path string) RouteOption { return func(r *Routes) { r.netns = path } }

// WithRouteProtocol sets the routing protocol number that marks gantry's routes.
// Default DefaultRouteProtocol (0x67). Values 0–4 belong to the kernel and are
// refused.
func WithRouteProtocol(p uint8) RouteOption {
	return func(r *Routes) { r.proto = netlink.RouteProtocol(p) }
}

// RouteStats describes the last Sync, for tests and metrics.
type RouteStats struct {
	// Added, Changed and Deleted count the routes the Sync wrote.
	Added, Changed, Deleted int
	// Skipped counts pod CIDRs that got no route: no node address of their family,
	// or a CIDR already claimed by another node (the first by name wins).
	Skipped int
}

// NewRoutes opens the target namespace's rtnetlink. It changes nothing; the first
// Sync reconciles (adds what is missing, removes gantry routes of nodes that are
// gone). Returns api.ErrInvalidArgument without a node name or with a reserved
// protocol number, api.ErrFailedPrecondition when rtnetlink is unusable.
func NewRoutes(opts ...RouteOption) (*Routes, error) {
	r := &Routes{proto: DefaultRouteProtocol, ns: netns.None()}
	for _, o := range opts {
		o(r)
	}
	if r.node == "" {
		return nil, fmt.Errorf("pod routes: no node name (WithNodeName): %w", api.ErrInvalidArgument)
	}
	if r.proto <= unix.RTPROT_STATIC {
		return nil, fmt.Errorf("pod routes: protocol %d is reserved for the kernel and static routes: %w", r.proto, api.ErrInvalidArgument)
	}
	var err error
	if r.netns != "" {
		if r.ns, err = netns.GetFromPath(r.netns); err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", r.netns, err)
		}
		r.handle, err = netlink.NewHandleAt(r.ns, unix.NETLINK_ROUTE)
	} else {
		r.handle, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("pod routes: rtnetlink: %v: %w", err, api.ErrFailedPrecondition)
	}
	return r, nil
}

// Close releases the namespace handle and leaves the routes in place, so pod
// traffic keeps flowing while the agent restarts; the next Routes' first Sync
// reconciles them. Use Remove first when the node leaves gantry for good. Safe to
// call twice.
func (r *Routes) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handle != nil {
		r.handle.Close()
		r.handle = nil
	}
	if r.ns.IsOpen() {
		_ = r.ns.Close()
		r.ns = netns.None()
	}
}

// Stats returns the statistics of the last Sync.
func (r *Routes) Stats() RouteStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

type podRoute struct {
	dst  netip.Prefix
	gw   netip.Addr
	node string
}

// desired computes the routes for nodes: every node but this one, its CIDRs in
// name order; a CIDR claimed twice goes to the first node by name.
func (r *Routes) desired(nodes []Node) (map[netip.Prefix]podRoute, int) {
	sorted := append([]Node(nil), nodes...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	want := map[netip.Prefix]podRoute{}
	skipped := 0
	for _, n := range sorted {
		if n.Name == r.node {
			continue
		}
		for _, cidr := range n.PodCIDRs {
			if !cidr.IsValid() {
				skipped++
				continue
			}
			cidr = cidr.Masked()
			var gw netip.Addr
			for _, a := range n.Addrs {
				if a = a.Unmap(); a.IsValid() && a.Is4() == cidr.Addr().Is4() {
					gw = a
					break
				}
			}
			if _, taken := want[cidr]; taken || !gw.IsValid() {
				skipped++
				continue
			}
			want[cidr] = podRoute{dst: cidr, gw: gw, node: n.Name}
		}
	}
	return want, skipped
}

// Sync makes gantry's routes match nodes: a route `podCIDR via addr` for each
// pod CIDR of every other node (the node address of the same family), and no
// gantry route for anything else. Routes of other protocols are left alone; a
// pod CIDR that already has a route of another protocol is not overwritten and
// reported with api.ErrConflict. Every route is tried; the errors are joined.
// Returns api.ErrFailedPrecondition after Close.
func (r *Routes) Sync(ctx context.Context, nodes []Node) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handle == nil {
		return fmt.Errorf("pod routes are closed: %w", api.ErrFailedPrecondition)
	}
	want, skipped := r.desired(nodes)
	have, err := r.list()
	if err != nil {
		return err
	}
	st := RouteStats{Skipped: skipped}
	var errs []error
	for _, dst := range sortedPrefixes(want) {
		w := want[dst]
		h, ok := have[dst]
		if ok && h.Gw.Equal(net.IP(w.gw.AsSlice())) {
			continue
		}
		rt := r.route(w)
		if ok {
			if err := r.handle.RouteReplace(rt); err != nil {
				errs = append(errs, fmt.Errorf("replace route %s via %s (node %s): %w", w.dst, w.gw, w.node, err))
				continue
			}
			st.Changed++
			continue
		}
		if err := r.handle.RouteAdd(rt); err != nil {
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("a route of another protocol exists for it: %w", api.ErrConflict)
			}
			errs = append(errs, fmt.Errorf("add route %s via %s (node %s): %w", w.dst, w.gw, w.node, err))
			continue
		}
		st.Added++
	}
	for _, dst := range sortedPrefixes(have) {
		if _, ok := want[dst]; ok {
			continue
		}
		h := have[dst]
		if err := r.handle.RouteDel(&h); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", dst, err))
			continue
		}
		st.Deleted++
	}
	r.stats = st
	return errors.Join(errs...)
}

// Remove deletes every gantry route (of this protocol) in the namespace: the node
// stops routing to other nodes' pods. Returns api.ErrFailedPrecondition after
// Close.
func (r *Routes) Remove() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handle == nil {
		return fmt.Errorf("pod routes are closed: %w", api.ErrFailedPrecondition)
	}
	have, err := r.list()
	if err != nil {
		return err
	}
	var errs []error
	for _, dst := range sortedPrefixes(have) {
		h := have[dst]
		if err := r.handle.RouteDel(&h); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Routes) route(w podRoute) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: net.IP(w.dst.Addr().AsSlice()), Mask: net.CIDRMask(w.dst.Bits(), w.dst.Addr().BitLen())},
		Gw:       net.IP(w.gw.AsSlice()),
		Protocol: r.proto,
		Table:    unix.RT_TABLE_MAIN,
	}
}

// list returns gantry's routes in the main table, by destination.
func (r *Routes) list() (map[netip.Prefix]netlink.Route, error) {
	filter := &netlink.Route{Protocol: r.proto, Table: unix.RT_TABLE_MAIN}
	routes, err := r.handle.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of protocol %d: %w", r.proto, err)
	}
	out := map[netip.Prefix]netlink.Route{}
	for _, rt := range routes {
		if rt.Dst == nil {
			continue // a default route is never gantry's
		}
		a, ok := netip.AddrFromSlice(rt.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := rt.Dst.Mask.Size()
		out[netip.PrefixFrom(a.Unmap(), bits)] = rt
	}
	return out, nil
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}
