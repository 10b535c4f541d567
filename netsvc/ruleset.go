package netsvc

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Names of the fixed objects of the gantry table.
const (
	mapServiceIPs4 = "service-ips"
	mapServiceIPs6 = "service-ips6"
	mapNodePorts4  = "service-nodeports"
	mapNodePorts6  = "service-nodeports6"
	chainServices  = "services"
	chainNodePorts = "nodeports"
	setHairpin4    = "hairpin"
	setHairpin6    = "hairpin6"

	// masqMark is the packet mark bit set on connections that must be
	// masqueraded (hairpin and NodePort traffic).
	masqMark = 0x4000
)

// ruleset is the whole desired content of the table, computed purely from a State.
// Both Render and the netlink programming read it, so the text and the kernel's
// rules cannot drift apart.
type ruleset struct {
	chains map[string]*chainSpec
	maps   map[string]*mapSpec
	sets   map[string]*affinitySet
	// hairpin holds every endpoint address: the elements "a . a" of the hairpin
	// sets, which postrouting masquerades (a pod reaching itself through a VIP).
	hairpin map[netip.Addr]bool
}

type hookSpec struct {
	hook     string // prerouting, output, postrouting
	priority int32
}

type chainSpec struct {
	name  string
	base  *hookSpec
	rules []rule
	fp    string // cached fingerprint
}

// fingerprint identifies the chain's content: a chain is rewritten when it changes.
func (c *chainSpec) fingerprint() string {
	if c.fp == "" {
		c.fp = c.computeFingerprint()
	}
	return c.fp
}

func (c *chainSpec) computeFingerprint() string {
	var b strings.Builder
	if c.base != nil {
		fmt.Fprintf(&b, "%s/%d|", c.base.hook, c.base.priority)
	}
	for _, r := range c.rules {
		b.WriteString(r.text())
		b.WriteByte('\n')
	}
	return b.String()
}

type mapSpec struct {
	name     string
	v6       bool // key starts with an IPv6 address (service-ips6)
	nodePort bool // key is proto . port
	elems    map[string]mapElem
}

type mapElem struct {
	addr  netip.Addr // invalid for nodeport maps
	proto string
	port  uint16
	chain string // goto target
}

func (e mapElem) keyText() string {
	if e.addr.IsValid() {
		return fmt.Sprintf("%s . %s . %d", e.addr, e.proto, e.port)
	}
	return fmt.Sprintf("%s . %d", e.proto, e.port)
}

type affinitySet struct {
	name string
	v6   bool
}

// buildRuleset computes the table for st. Services without VIPs (headless) get no
// rules; endpoints that are not serving, or lack the port, are left out.
func buildRuleset(st State) *ruleset { return mergeParts(buildParts(st, nil)) }

func emptyRuleset() *ruleset {
	return &ruleset{
		chains: map[string]*chainSpec{},
		maps: map[string]*mapSpec{
			mapServiceIPs4: {name: mapServiceIPs4, elems: map[string]mapElem{}},
			mapServiceIPs6: {name: mapServiceIPs6, v6: true, elems: map[string]mapElem{}},
			mapNodePorts4:  {name: mapNodePorts4, nodePort: true, elems: map[string]mapElem{}},
			mapNodePorts6:  {name: mapNodePorts6, v6: true, nodePort: true, elems: map[string]mapElem{}},
		},
		sets:    map[string]*affinitySet{},
		hairpin: map[netip.Addr]bool{},
	}
}

// servicePart is what one service contributes to the rule set, remembered with a
// hash of its inputs so that an unchanged service is not rebuilt on the next Sync,
// and the diff skips it by pointer.
type servicePart struct {
	hash uint64
	rs   *ruleset
	// claims are the part's map keys (VIP:port, NodePort), computed once.
	claims []claimKey
}

// claimKey is one map element key of one map: what two services may not share.
type claimKey struct {
	nodePort, v6 bool // which of the four maps
	addr         netip.Addr
	proto        string
	port         uint16
}

func newServicePart(h uint64, svc *Service, eps []Endpoint) *servicePart {
	part := &servicePart{hash: h, rs: emptyRuleset()}
	part.rs.addService(svc, eps)
	for _, m := range part.rs.maps {
		for _, e := range m.elems {
			part.claims = append(part.claims, claimKey{m.nodePort, m.v6, e.addr, e.proto, e.port})
		}
	}
	return part
}

// buildParts builds each service's part, reusing the part in prev when the
// service's inputs did not change. A service whose VIP:port or NodePort is already
// claimed by an earlier service of st (or that repeats an earlier service's key)
// is left out: the first in State order wins.
func buildParts(st State, prev map[ServiceKey]*servicePart) map[ServiceKey]*servicePart {
	parts := make(map[ServiceKey]*servicePart, len(st.Services))
	claimed := make(map[claimKey]bool, len(st.Services))
	for i := range st.Services {
		svc := &st.Services[i]
		key := svc.Key()
		if parts[key] != nil {
			continue
		}
		eps := st.Endpoints[key]
		h := hashService(svc, eps)
		part := prev[key]
		if part == nil || part.hash != h {
			part = newServicePart(h, svc, eps)
		}
		clash := false
		for _, c := range part.claims {
			clash = clash || claimed[c]
		}
		if clash {
			continue
		}
		for _, c := range part.claims {
			claimed[c] = true
		}
		parts[key] = part
	}
	return parts
}

// mergeParts returns the whole table: the fixed chains and every part.
func mergeParts(parts map[ServiceKey]*servicePart) *ruleset {
	rs := emptyRuleset()
	rs.addFixed()
	for _, p := range parts {
		rs.merge(p.rs)
	}
	return rs
}

func (rs *ruleset) merge(o *ruleset) {
	for n, c := range o.chains {
		rs.chains[n] = c
	}
	for n, m := range o.maps {
		for k, e := range m.elems {
			rs.maps[n].elems[k] = e
		}
	}
	for n, s := range o.sets {
		rs.sets[n] = s
	}
	for a := range o.hairpin {
		rs.hairpin[a] = true
	}
}

// hashSeed keys hashService: hashes are only compared within one process.
var hashSeed = maphash.MakeSeed()

// hashService hashes everything of a service and its endpoints that the rules
// depend on.
func hashService(svc *Service, eps []Endpoint) uint64 {
	var h maphash.Hash
	h.SetSeed(hashSeed)
	var buf [8]byte
	str := func(s string) {
		binary.LittleEndian.PutUint32(buf[:4], uint32(len(s)))
		h.Write(buf[:4])
		h.WriteString(s)
	}
	num := func(v int64) {
		binary.LittleEndian.PutUint64(buf[:], uint64(v))
		h.Write(buf[:])
	}
	addr := func(a netip.Addr) {
		b := a.As16()
		h.WriteByte(byte(a.BitLen()))
		h.Write(b[:])
	}
	flag := func(b bool) {
		if b {
			num(1)
		} else {
			num(0)
		}
	}
	str(svc.Namespace)
	str(svc.Name)
	flag(svc.Headless)
	str(svc.SessionAffinity)
	num(int64(svc.AffinityTimeout))
	num(int64(len(svc.ClusterIPs)))
	for _, ip := range svc.ClusterIPs {
		addr(ip)
	}
	num(int64(len(svc.Ports)))
	for _, p := range svc.Ports {
		str(p.Name)
		str(p.Protocol)
		num(int64(p.Port))
		num(int64(p.NodePort))
	}
	num(int64(len(eps)))
	for _, ep := range eps {
		addr(ep.IP)
		flag(ep.Ready)
		flag(ep.Terminating)
		num(int64(len(ep.Ports)))
		if len(ep.Ports) == 1 {
			for n, v := range ep.Ports {
				str(n)
				num(int64(v))
			}
			continue
		}
		names := make([]string, 0, len(ep.Ports))
		for n := range ep.Ports {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			str(n)
			num(int64(ep.Ports[n]))
		}
	}
	return h.Sum64()
}

// addFixed adds the base chains and the dispatch chains.
func (rs *ruleset) addFixed() {
	rs.add(&chainSpec{name: "prerouting", base: &hookSpec{"prerouting", -100}, rules: []rule{{jumpTo(chainServices)}}})
	rs.add(&chainSpec{name: "output", base: &hookSpec{"output", -100}, rules: []rule{{jumpTo(chainServices)}}})
	rs.add(&chainSpec{name: "postrouting", base: &hookSpec{"postrouting", 100}, rules: []rule{
		{markIsSet{masqMark}, masquerade{}},
		{nfproto{v6: false}, hairpinLookup{v6: false, set: setHairpin4}, masquerade{}},
		{nfproto{v6: true}, hairpinLookup{v6: true, set: setHairpin6}, masquerade{}},
	}})
	rs.add(&chainSpec{name: chainServices, rules: []rule{
		{nfproto{v6: false}, serviceVmap{v6: false, set: mapServiceIPs4}},
		{nfproto{v6: true}, serviceVmap{v6: true, set: mapServiceIPs6}},
		{fibLocal{}, jumpTo(chainNodePorts)},
	}})
	rs.add(&chainSpec{name: chainNodePorts, rules: []rule{
		{nfproto{v6: false}, nodePortVmap{set: mapNodePorts4}},
		{nfproto{v6: true}, nodePortVmap{set: mapNodePorts6}},
	}})
}

// addService adds the chains, sets and map elements of one service.
func (rs *ruleset) addService(svc *Service, eps []Endpoint) {
	if svc.Headless || len(svc.ClusterIPs) == 0 {
		return
	}
	{
		for _, sp := range svc.Ports {
			if sp.Port <= 0 || sp.Port > 65535 {
				continue // invalid input never reaches the kernel
			}
			for _, v6 := range []bool{false, true} {
				var vips []netip.Addr
				for _, ip := range svc.ClusterIPs {
					if ip.Unmap().Is6() == v6 {
						vips = append(vips, ip.Unmap())
					}
				}
				if len(vips) == 0 {
					continue
				}
				svcChain := rs.addServicePort(svc, &sp, v6, eps)
				m4, m6 := rs.maps[mapServiceIPs4], rs.maps[mapServiceIPs6]
				for _, vip := range vips {
					e := mapElem{addr: vip, proto: sp.protocol(), port: uint16(sp.Port), chain: svcChain}
					if v6 {
						m6.elems[e.keyText()] = e
					} else {
						m4.elems[e.keyText()] = e
					}
				}
				if sp.NodePort > 0 && sp.NodePort <= 65535 {
					ext := "ext/" + strings.TrimPrefix(svcChain, "svc/")
					rs.add(&chainSpec{name: ext, rules: []rule{{setMark{masqMark}}, {gotoChain(svcChain)}}})
					e := mapElem{proto: sp.protocol(), port: uint16(sp.NodePort), chain: ext}
					name := mapNodePorts4
					if v6 {
						name = mapNodePorts6
					}
					rs.maps[name].elems[e.keyText()] = e
				}
			}
		}
	}
}

func (rs *ruleset) add(c *chainSpec) { rs.chains[c.name] = c }

// addServicePort adds the service chain of one port and family, and its endpoint
// chains, and returns the service chain's name.
func (rs *ruleset) addServicePort(svc *Service, sp *ServicePort, v6 bool, eps []Endpoint) string {
	fam := "v4"
	if v6 {
		fam = "v6"
	}
	id := fmt.Sprintf("%s/%s/%s/%d", svc.Namespace, svc.Name, sp.protocol(), sp.Port)
	svcChain := "svc/" + id + "/" + fam
	affinity := svc.SessionAffinity == AffinityClientIP
	timeout := svc.AffinityTimeout
	if timeout <= 0 {
		timeout = DefaultAffinityTimeout
	}

	type target struct {
		ip   netip.Addr
		port uint16
	}
	seen := map[target]bool{}
	var targets []target
	for _, ep := range eps {
		ip := ep.IP.Unmap()
		if !ep.Serving() || !ip.IsValid() || ip.Is6() != v6 {
			continue
		}
		p, ok := ep.Ports[sp.Name]
		if !ok || p <= 0 || p > 65535 {
			continue
		}
		t := target{ip, uint16(p)}
		if !seen[t] {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	sort.Slice(targets, func(i, j int) bool {
		if c := targets[i].ip.Compare(targets[j].ip); c != 0 {
			return c < 0
		}
		return targets[i].port < targets[j].port
	})

	sc := &chainSpec{name: svcChain}
	if len(targets) == 0 {
		// Refuse at once rather than let the SYN vanish: TCP gets a reset, the
		// rest an ICMP port unreachable.
		sc.rules = []rule{{l4proto{"tcp"}, rejectTCP{}}, {rejectICMP{}}}
		rs.add(sc)
		return svcChain
	}
	for _, t := range targets {
		rs.hairpin[t.ip] = true
	}
	if !affinity {
		// The DNAT sits in the service chain itself: one chain per service port
		// and family, N rules. Uniform random choice without a map: rule i takes
		// the connection with probability 1/(N-i), so each of the N endpoints
		// gets 1/N. A verdict or data map per service (numgen … map) would make
		// the kernel create and look up one set per service, which is quadratic
		// in a large batch.
		for i, t := range targets {
			if rest := len(targets) - i; rest > 1 {
				sc.rules = append(sc.rules, rule{numgenIsZero{uint32(rest)}, dnatTo{t.ip, t.port}})
			} else {
				sc.rules = append(sc.rules, rule{dnatTo{t.ip, t.port}})
			}
		}
		rs.add(sc)
		return svcChain
	}
	// ClientIP affinity needs a place per endpoint to remember the client: an
	// endpoint chain that refreshes the client's entry in its set, then DNATs.
	var epChains []string
	for _, t := range targets {
		epChain := "ep/" + id + "/" + netip.AddrPortFrom(t.ip, t.port).String()
		epChains = append(epChains, epChain)
		set := "aff/" + strings.TrimPrefix(epChain, "ep/")
		rs.sets[set] = &affinitySet{name: set, v6: v6}
		sc.rules = append(sc.rules, rule{saddrInSet{set: set, v6: v6}, gotoChain(epChain)})
		rs.add(&chainSpec{name: epChain, rules: []rule{
			{updateSaddr{set: set, v6: v6, timeout: timeout}},
			{dnatTo{t.ip, t.port}},
		}})
	}
	for i, ep := range epChains {
		if rest := len(epChains) - i; rest > 1 {
			sc.rules = append(sc.rules, rule{numgenIsZero{uint32(rest)}, gotoChain(ep)})
		} else {
			sc.rules = append(sc.rules, rule{gotoChain(ep)})
		}
	}
	rs.add(sc)
	return svcChain
}

// Render returns the rule set Sync programs for st, as nft-like text: sets and maps
// first, then chains, each sorted by name. It is deterministic, so it serves as the
// golden form of the rule set and as a readable dump for operators.
func Render(st State) string { return renderRuleset(buildRuleset(st), "gantry") }

func renderRuleset(rs *ruleset, table string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", table)
	for _, name := range sortedKeys(rs.maps) {
		m := rs.maps[name]
		keyType := "ipv4_addr . inet_proto . inet_service"
		switch {
		case m.nodePort:
			keyType = "inet_proto . inet_service"
		case m.v6:
			keyType = "ipv6_addr . inet_proto . inet_service"
		}
		fmt.Fprintf(&b, "\tmap %s {\n\t\ttype %s : verdict\n", name, keyType)
		if len(m.elems) > 0 {
			b.WriteString("\t\telements = {\n")
			for _, k := range sortedKeys(m.elems) {
				fmt.Fprintf(&b, "\t\t\t%s : goto %s,\n", k, quote(m.elems[k].chain))
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n\n")
	}
	for _, name := range sortedKeys(rs.sets) {
		s := rs.sets[name]
		typ := "ipv4_addr"
		if s.v6 {
			typ = "ipv6_addr"
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n\t\tflags dynamic,timeout\n\t}\n\n", quote(name), typ)
	}
	for _, v6 := range []bool{false, true} {
		name, typ := setHairpin4, "ipv4_addr . ipv4_addr"
		if v6 {
			name, typ = setHairpin6, "ipv6_addr . ipv6_addr"
		}
		fmt.Fprintf(&b, "\tset %s {\n\t\ttype %s\n", name, typ)
		if ips := rs.hairpinAddrs(v6); len(ips) > 0 {
			b.WriteString("\t\telements = {\n")
			for _, ip := range ips {
				fmt.Fprintf(&b, "\t\t\t%s . %s,\n", ip, ip)
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n\n")
	}
	names := sortedKeys(rs.chains)
	for i, name := range names {
		c := rs.chains[name]
		fmt.Fprintf(&b, "\tchain %s {\n", quote(name))
		if c.base != nil {
			fmt.Fprintf(&b, "\t\ttype nat hook %s priority %d; policy accept;\n", c.base.hook, c.base.priority)
		}
		for _, r := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.text())
		}
		b.WriteString("\t}\n")
		if i < len(names)-1 {
			b.WriteByte('\n')
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// hairpinAddrs returns the endpoint addresses of one family, sorted.
func (rs *ruleset) hairpinAddrs(v6 bool) []netip.Addr {
	var out []netip.Addr
	for a := range rs.hairpin {
		if a.Is6() == v6 {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

func quote(name string) string {
	if strings.ContainsAny(name, "/:.[]") {
		return `"` + name + `"`
	}
	return name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// durationText renders a timeout as nft does (3h, 10m, 90s).
func durationText(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}
