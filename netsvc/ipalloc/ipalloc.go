package ipalloc

import (
	"fmt"
	"hash/fnv"
	"math/big"
	"net/netip"
	"sort"
	"strings"

	"gantry.io/gantry/api"
)

// Defaults of Config.
var (
	DefaultServiceCIDRv4 = netip.MustParsePrefix("10.96.0.0/16")
	DefaultServiceCIDRv6 = netip.MustParsePrefix("fd00:10:96::/112")
)

// Default NodePort range (Kubernetes').
const (
	DefaultNodePortMin = 30000
	DefaultNodePortMax = 32767
)

// IP families and policies, spelled as in Kubernetes' Service spec.
const (
	IPv4 = "IPv4"
	IPv6 = "IPv6"

	SingleStack      = "SingleStack"
	PreferDualStack  = "PreferDualStack"
	RequireDualStack = "RequireDualStack"
)

// Config is the allocator's ranges. A zero prefix disables that family; zero
// values take the defaults through WithDefaults.
type Config struct {
	ServiceCIDRv4, ServiceCIDRv6 netip.Prefix
	// DisableIPv4 / DisableIPv6 turn a family off (a single-stack cluster).
	DisableIPv4, DisableIPv6 bool
	NodePortMin, NodePortMax int32
}

// WithDefaults fills the unset fields with the defaults.
func (c Config) WithDefaults() Config {
	if !c.ServiceCIDRv4.IsValid() && !c.DisableIPv4 {
		c.ServiceCIDRv4 = DefaultServiceCIDRv4
	}
	if !c.ServiceCIDRv6.IsValid() && !c.DisableIPv6 {
		c.ServiceCIDRv6 = DefaultServiceCIDRv6
	}
	if c.NodePortMin == 0 && c.NodePortMax == 0 {
		c.NodePortMin, c.NodePortMax = DefaultNodePortMin, DefaultNodePortMax
	}
	return c
}

// State is every allocation, keyed by "namespace/name": what the control plane
// stores and hands back to New after a restart.
type State struct {
	Services map[string]Allocation `json:"services,omitempty"`
}

// Allocation is one service's VIPs (primary family first) and NodePorts, keyed by
// "<PROTOCOL>/<port>" of the service port ("TCP/80").
type Allocation struct {
	ClusterIPs []netip.Addr     `json:"clusterIPs,omitempty"`
	NodePorts  map[string]int32 `json:"nodePorts,omitempty"`
}

// Request is what a Service asks for.
type Request struct {
	Namespace, Name string
	// Headless (clusterIP: None) allocates no VIP.
	Headless bool
	// ClusterIPs are spec.clusterIPs (or spec.clusterIP): specific VIPs wanted.
	ClusterIPs []netip.Addr
	// IPFamilies is spec.ipFamilies (IPv4, IPv6), primary first; may be empty.
	IPFamilies []string
	// IPFamilyPolicy is spec.ipFamilyPolicy; "" means SingleStack.
	IPFamilyPolicy string
	// Ports needing a NodePort (type NodePort or LoadBalancer); others need none.
	Ports []PortRequest
}

// PortRequest asks for one NodePort.
type PortRequest struct {
	// Protocol is TCP (also ""), UDP or SCTP; Port the service port.
	Protocol string
	Port     int32
	// NodePort is a specific port wanted; 0 means any free one.
	NodePort int32
}

// Key returns "<PROTOCOL>/<port>".
func (p PortRequest) Key() string {
	proto := strings.ToUpper(p.Protocol)
	if proto == "" {
		proto = "TCP"
	}
	return fmt.Sprintf("%s/%d", proto, p.Port)
}

// Result is the outcome of Allocate.
type Result struct {
	ClusterIPs []netip.Addr
	// IPFamilies are the families the service got, primary first (also for a
	// headless service).
	IPFamilies []string
	NodePorts  map[string]int32
}

// Allocator hands out VIPs and NodePorts. Not safe for concurrent use: the control
// plane's reconcile loop owns it.
type Allocator struct {
	cfg   Config
	state map[string]Allocation
	ips   map[netip.Addr]string // VIP → owner key
	ports map[string]string     // "TCP/30080" → owner key
}

// New returns an allocator over cfg (defaults applied) holding the allocations of
// prev. Returns api.ErrInvalidArgument for a bad range and api.ErrConflict when
// prev gives one VIP or NodePort to two services.
func New(cfg Config, prev State) (*Allocator, error) {
	cfg = cfg.WithDefaults()
	for _, p := range []struct {
		pfx  netip.Prefix
		is6  bool
		name string
	}{{cfg.ServiceCIDRv4, false, "IPv4"}, {cfg.ServiceCIDRv6, true, "IPv6"}} {
		if !p.pfx.IsValid() {
			continue
		}
		if p.pfx.Addr().Is6() != p.is6 || p.pfx.Addr().Is4In6() {
			return nil, fmt.Errorf("%s service CIDR %s is of the other family: %w", p.name, p.pfx, api.ErrInvalidArgument)
		}
		if p.pfx.Addr().BitLen()-p.pfx.Bits() < 2 {
			return nil, fmt.Errorf("%s service CIDR %s is too small (at least 4 addresses): %w", p.name, p.pfx, api.ErrInvalidArgument)
		}
	}
	if !cfg.ServiceCIDRv4.IsValid() && !cfg.ServiceCIDRv6.IsValid() {
		return nil, fmt.Errorf("no service CIDR: both families disabled: %w", api.ErrInvalidArgument)
	}
	if cfg.NodePortMin < 1 || cfg.NodePortMax > 65535 || cfg.NodePortMin > cfg.NodePortMax {
		return nil, fmt.Errorf("NodePort range %d-%d is not within 1-65535: %w", cfg.NodePortMin, cfg.NodePortMax, api.ErrInvalidArgument)
	}
	a := &Allocator{cfg: cfg, state: map[string]Allocation{}, ips: map[netip.Addr]string{}, ports: map[string]string{}}
	for _, key := range sortedKeys(prev.Services) {
		al := prev.Services[key]
		for _, ip := range al.ClusterIPs {
			if owner, ok := a.ips[ip]; ok {
				return nil, fmt.Errorf("stored allocations give VIP %s to both %s and %s: %w", ip, owner, key, api.ErrConflict)
			}
			a.ips[ip] = key
		}
		for pk, np := range al.NodePorts {
			nk := nodePortKey(pk, np)
			if owner, ok := a.ports[nk]; ok {
				return nil, fmt.Errorf("stored allocations give NodePort %s to both %s and %s: %w", nk, owner, key, api.ErrConflict)
			}
			a.ports[nk] = key
		}
		a.state[key] = clone(al)
	}
	return a, nil
}

// State returns a copy of every allocation, to store.
func (a *Allocator) State() State {
	out := State{Services: map[string]Allocation{}}
	for k, v := range a.state {
		out.Services[k] = clone(v)
	}
	return out
}

// Release frees the VIPs and NodePorts of a deleted service. Unknown services are
// ignored.
func (a *Allocator) Release(namespace, name string) {
	key := namespace + "/" + name
	a.releaseIPs(key, nil)
	a.releasePorts(key, nil)
	delete(a.state, key)
}

// Allocate gives the service its VIPs and NodePorts, keeping what it already holds
// unless the request asks for something else, and records the result. It changes
// nothing on error. Errors: api.ErrInvalidArgument for a request that cannot be met
// (a VIP outside the service CIDRs or reserved, a family the cluster lacks under
// RequireDualStack or SingleStack, SingleStack with two families, a NodePort outside
// the range); api.ErrConflict for a VIP or NodePort another service holds;
// api.ErrUnavailable when a range is exhausted.
func (a *Allocator) Allocate(req Request) (Result, error) {
	key := req.Namespace + "/" + req.Name
	if req.Namespace == "" || req.Name == "" {
		return Result{}, fmt.Errorf("service needs a namespace and a name: %w", api.ErrInvalidArgument)
	}
	families, err := a.families(req)
	if err != nil {
		return Result{}, fmt.Errorf("service %s: %w", key, err)
	}
	old := a.state[key]
	var ips []netip.Addr
	if !req.Headless {
		ips, err = a.pickIPs(key, req, families, old.ClusterIPs)
		if err != nil {
			return Result{}, fmt.Errorf("service %s: %w", key, err)
		}
	}
	ports, err := a.pickPorts(key, req.Ports, old.NodePorts)
	if err != nil {
		return Result{}, fmt.Errorf("service %s: %w", key, err)
	}
	// Commit: release what is no longer held, take the new.
	a.releaseIPs(key, ips)
	a.releasePorts(key, ports)
	for _, ip := range ips {
		a.ips[ip] = key
	}
	for pk, np := range ports {
		a.ports[nodePortKey(pk, np)] = key
	}
	al := Allocation{ClusterIPs: ips, NodePorts: ports}
	a.state[key] = clone(al)
	return Result{ClusterIPs: append([]netip.Addr(nil), ips...), IPFamilies: families, NodePorts: clone(al).NodePorts}, nil
}

// families resolves the service's IP families, primary first.
func (a *Allocator) families(req Request) ([]string, error) {
	have := map[string]bool{IPv4: a.cfg.ServiceCIDRv4.IsValid(), IPv6: a.cfg.ServiceCIDRv6.IsValid()}
	clusterOrder := []string{IPv4, IPv6}
	if !have[IPv4] {
		clusterOrder = []string{IPv6}
	} else if !have[IPv6] {
		clusterOrder = []string{IPv4}
	}
	policy := req.IPFamilyPolicy
	if policy == "" {
		policy = SingleStack
	}
	if policy != SingleStack && policy != PreferDualStack && policy != RequireDualStack {
		return nil, fmt.Errorf("ipFamilyPolicy %q is not SingleStack, PreferDualStack or RequireDualStack: %w", policy, api.ErrInvalidArgument)
	}
	asked := append([]string(nil), req.IPFamilies...)
	var fromIPs []string
	for _, ip := range req.ClusterIPs {
		fromIPs = append(fromIPs, familyOf(ip))
	}
	if len(asked) == 0 {
		asked = fromIPs
	} else if len(fromIPs) > 0 {
		for i, f := range fromIPs {
			if i >= len(asked) || asked[i] != f {
				return nil, fmt.Errorf("clusterIPs %v do not match ipFamilies %v: %w", req.ClusterIPs, req.IPFamilies, api.ErrInvalidArgument)
			}
		}
	}
	for i, f := range asked {
		if f != IPv4 && f != IPv6 {
			return nil, fmt.Errorf("ipFamilies[%d] %q is not IPv4 or IPv6: %w", i, f, api.ErrInvalidArgument)
		}
		if i > 0 && f == asked[0] {
			return nil, fmt.Errorf("ipFamilies %v repeats a family: %w", asked, api.ErrInvalidArgument)
		}
	}
	if len(asked) > 2 {
		return nil, fmt.Errorf("ipFamilies %v has more than two entries: %w", asked, api.ErrInvalidArgument)
	}
	if policy == SingleStack && len(asked) > 1 {
		return nil, fmt.Errorf("ipFamilyPolicy SingleStack with two families %v: %w", asked, api.ErrInvalidArgument)
	}
	var out []string
	switch {
	case len(asked) == 0:
		out = clusterOrder
		if policy == SingleStack {
			out = clusterOrder[:1]
		}
	case policy == SingleStack:
		out = asked
	default:
		out = asked
		if len(out) == 1 {
			other := IPv6
			if out[0] == IPv6 {
				other = IPv4
			}
			out = append(out, other)
		}
	}
	// Drop (PreferDualStack) or refuse families the cluster does not have.
	var kept []string
	for i, f := range out {
		if have[f] {
			kept = append(kept, f)
			continue
		}
		if policy == PreferDualStack && i > 0 && i >= len(req.IPFamilies) && i >= len(req.ClusterIPs) {
			continue // the second family was only preferred
		}
		return nil, fmt.Errorf("IP family %s is not enabled in this cluster (%s): %w", f, policy, api.ErrInvalidArgument)
	}
	if policy == RequireDualStack && len(kept) < 2 {
		return nil, fmt.Errorf("ipFamilyPolicy RequireDualStack on a single-stack cluster: %w", api.ErrInvalidArgument)
	}
	return kept, nil
}

func familyOf(ip netip.Addr) string {
	if ip.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

func (a *Allocator) prefix(family string) netip.Prefix {
	if family == IPv4 {
		return a.cfg.ServiceCIDRv4
	}
	return a.cfg.ServiceCIDRv6
}

// pickIPs chooses one VIP per family: the requested one, else the one already
// held, else a free one.
func (a *Allocator) pickIPs(key string, req Request, families []string, held []netip.Addr) ([]netip.Addr, error) {
	var out []netip.Addr
	taken := map[netip.Addr]bool{}
	for i, fam := range families {
		pfx := a.prefix(fam)
		var ip netip.Addr
		switch {
		case i < len(req.ClusterIPs):
			ip = req.ClusterIPs[i].Unmap()
			if !pfx.Contains(ip) {
				return nil, fmt.Errorf("clusterIP %s is outside the %s service CIDR %s: %w", ip, fam, pfx, api.ErrInvalidArgument)
			}
			if reserved(pfx, ip) {
				return nil, fmt.Errorf("clusterIP %s is reserved (the first address of %s, or the last of an IPv4 CIDR): %w", ip, pfx, api.ErrInvalidArgument)
			}
			if owner, ok := a.ips[ip]; ok && owner != key {
				return nil, fmt.Errorf("clusterIP %s is already allocated to %s: %w", ip, owner, api.ErrConflict)
			}
		default:
			for _, h := range held {
				if pfx.Contains(h) && familyOf(h) == fam {
					ip = h
				}
			}
			if !ip.IsValid() {
				var err error
				if ip, err = a.freeIP(key, pfx); err != nil {
					return nil, err
				}
			}
		}
		if taken[ip] {
			return nil, fmt.Errorf("clusterIP %s requested twice: %w", ip, api.ErrInvalidArgument)
		}
		taken[ip] = true
		out = append(out, ip)
	}
	return out, nil
}

// reserved: the prefix's first address, and the broadcast address of an IPv4 one.
func reserved(pfx netip.Prefix, ip netip.Addr) bool {
	if ip == pfx.Masked().Addr() {
		return true
	}
	return ip.Is4() && ip == lastAddr(pfx)
}

func lastAddr(pfx netip.Prefix) netip.Addr {
	b := pfx.Masked().Addr().AsSlice()
	host := len(b)*8 - pfx.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	ip, _ := netip.AddrFromSlice(b)
	return ip
}

// freeIP probes from a hash of the service's key through the prefix (skipping the
// reserved addresses) for an address nobody holds.
func (a *Allocator) freeIP(key string, pfx netip.Prefix) (netip.Addr, error) {
	host := pfx.Addr().BitLen() - pfx.Bits()
	size := new(big.Int).Lsh(big.NewInt(1), uint(host))
	// Probe at most 2^20 addresses: more than any cluster holds VIPs, so a miss
	// means exhaustion in practice, and it bounds the work on a huge IPv6 range.
	limit := int64(1 << 20)
	if size.IsInt64() && size.Int64() < limit {
		limit = size.Int64()
	}
	used := 0
	for ip, owner := range a.ips {
		if owner != key && pfx.Contains(ip) {
			used++
		}
	}
	if int64(used) >= limit-2 {
		return netip.Addr{}, fmt.Errorf("service CIDR %s is exhausted (%d VIPs allocated): %w", pfx, used, api.ErrUnavailable)
	}
	base := new(big.Int).SetBytes(pfx.Masked().Addr().AsSlice())
	start := hash64(key) % uint64(limit)
	for i := int64(0); i < limit; i++ {
		off := (start + uint64(i)) % uint64(limit)
		ipInt := new(big.Int).Add(base, new(big.Int).SetUint64(off))
		ip := addrFromInt(ipInt, pfx.Addr().Is4())
		if reserved(pfx, ip) {
			continue
		}
		if owner, ok := a.ips[ip]; !ok || owner == key {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("service CIDR %s is exhausted: %w", pfx, api.ErrUnavailable)
}

func addrFromInt(n *big.Int, v4 bool) netip.Addr {
	size := 16
	if v4 {
		size = 4
	}
	b := n.FillBytes(make([]byte, size))
	ip, _ := netip.AddrFromSlice(b)
	return ip
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// pickPorts chooses a NodePort per requested port: the requested one, else the one
// already held, else a free one.
func (a *Allocator) pickPorts(key string, reqs []PortRequest, held map[string]int32) (map[string]int32, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	out := map[string]int32{}
	taken := map[string]bool{}
	for _, pr := range reqs {
		pk := pr.Key()
		if _, dup := out[pk]; dup {
			return nil, fmt.Errorf("port %s listed twice: %w", pk, api.ErrInvalidArgument)
		}
		proto := strings.SplitN(pk, "/", 2)[0]
		free := func(np int32) bool {
			nk := nodePortKey(pk, np)
			owner, ok := a.ports[nk]
			return (!ok || owner == key) && !taken[nk]
		}
		var np int32
		switch {
		case pr.NodePort != 0:
			np = pr.NodePort
			if np < a.cfg.NodePortMin || np > a.cfg.NodePortMax {
				return nil, fmt.Errorf("nodePort %d of port %s is outside the range %d-%d: %w", np, pk, a.cfg.NodePortMin, a.cfg.NodePortMax, api.ErrInvalidArgument)
			}
			if !free(np) {
				return nil, fmt.Errorf("nodePort %s/%d is already allocated to %s: %w", proto, np, a.ports[nodePortKey(pk, np)], api.ErrConflict)
			}
		case held[pk] != 0 && held[pk] >= a.cfg.NodePortMin && held[pk] <= a.cfg.NodePortMax:
			np = held[pk]
		default:
			n := int64(a.cfg.NodePortMax-a.cfg.NodePortMin) + 1
			start := int64(hash64(key+"/"+pk) % uint64(n))
			for i := int64(0); i < n; i++ {
				cand := a.cfg.NodePortMin + int32((start+i)%n)
				if free(cand) {
					np = cand
					break
				}
			}
			if np == 0 {
				return nil, fmt.Errorf("NodePort range %d-%d is exhausted for %s: %w", a.cfg.NodePortMin, a.cfg.NodePortMax, proto, api.ErrUnavailable)
			}
		}
		out[pk] = np
		taken[nodePortKey(pk, np)] = true
	}
	return out, nil
}

// nodePortKey is "<PROTOCOL>/<nodePort>": NodePorts are unique per protocol.
func nodePortKey(portKey string, nodePort int32) string {
	return fmt.Sprintf("%s/%d", strings.SplitN(portKey, "/", 2)[0], nodePort)
}

func (a *Allocator) releaseIPs(key string, keep []netip.Addr) {
	for _, ip := range a.state[key].ClusterIPs {
		kept := false
		for _, k := range keep {
			kept = kept || k == ip
		}
		if !kept && a.ips[ip] == key {
			delete(a.ips, ip)
		}
	}
}

func (a *Allocator) releasePorts(key string, keep map[string]int32) {
	for pk, np := range a.state[key].NodePorts {
		if keep[pk] == np {
			continue
		}
		if nk := nodePortKey(pk, np); a.ports[nk] == key {
			kept := false
			for kpk, knp := range keep {
				kept = kept || nodePortKey(kpk, knp) == nk
			}
			if !kept {
				delete(a.ports, nk)
			}
		}
	}
}

func clone(al Allocation) Allocation {
	out := Allocation{ClusterIPs: append([]netip.Addr(nil), al.ClusterIPs...)}
	if al.NodePorts != nil {
		out.NodePorts = map[string]int32{}
		for k, v := range al.NodePorts {
			out.NodePorts[k] = v
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
