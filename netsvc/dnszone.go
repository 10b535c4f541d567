package netsvc

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// zone is an immutable snapshot of the cluster records, swapped whole by Update.
type zone struct {
	domain string // lower-case FQDN, "cluster.local."
	// names holds every owner name, including empty non-terminals such as
	// "default.svc.cluster.local.", so that absent types answer NODATA and absent
	// names NXDOMAIN.
	names map[string]*nameRecords
	ptr   map[string][]string // reverse name → target FQDNs
}

type nameRecords struct {
	a, aaaa []netip.Addr
	srv     []srvTarget
}

type srvTarget struct {
	target string
	port   uint16
}

func (z *zone) node(name string) *nameRecords {
	n := z.names[name]
	if n == nil {
		n = &nameRecords{}
		z.names[name] = n
	}
	return n
}

func (n *nameRecords) addIP(ip netip.Addr) {
	ip = ip.Unmap()
	if ip.Is4() {
		n.a = append(n.a, ip)
	} else {
		n.aaaa = append(n.aaaa, ip)
	}
}

// dashed is an IP written as a DNS label: 10-244-0-5, fd00--5.
func dashed(ip netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(ip.Unmap().String())
}

func buildZone(st State, domain string) *zone {
	z := &zone{domain: dns.Fqdn(strings.ToLower(domain)), names: map[string]*nameRecords{}, ptr: map[string][]string{}}
	z.node(z.domain)
	z.node("svc." + z.domain)
	addPTR := func(ip netip.Addr, target string) {
		rev, err := dns.ReverseAddr(ip.Unmap().String())
		if err != nil {
			return
		}
		for _, t := range z.ptr[rev] {
			if t == target {
				return
			}
		}
		z.ptr[rev] = append(z.ptr[rev], target)
	}
	for i := range st.Services {
		svc := &st.Services[i]
		ns, name := strings.ToLower(svc.Namespace), strings.ToLower(svc.Name)
		if ns == "" || name == "" {
			continue
		}
		nsName := ns + ".svc." + z.domain
		svcName := name + "." + nsName
		z.node(nsName)
		sn := z.node(svcName)
		var serving []Endpoint
		for _, ep := range st.Endpoints[svc.Key()] {
			if ep.Serving() && ep.IP.IsValid() {
				serving = append(serving, ep)
			}
		}
		// epName is the endpoint's own name under the service: its hostname, or
		// its IP in dashed form.
		epName := func(ep Endpoint) string {
			if ep.Hostname != "" {
				return strings.ToLower(ep.Hostname) + "." + svcName
			}
			return dashed(ep.IP) + "." + svcName
		}
		if svc.Headless {
			for _, ep := range serving {
				sn.addIP(ep.IP)
				own := epName(ep)
				z.node(own).addIP(ep.IP)
				addPTR(ep.IP, own)
			}
		} else {
			for _, ip := range svc.ClusterIPs {
				sn.addIP(ip)
				addPTR(ip, svcName)
			}
			for _, ep := range serving {
				addPTR(ep.IP, epName(ep))
			}
		}
		for _, sp := range svc.Ports {
			if sp.Name == "" || sp.Port <= 0 || sp.Port > 65535 {
				continue
			}
			srvName := fmt.Sprintf("_%s._%s.%s", strings.ToLower(sp.Name), sp.protocol(), svcName)
			srv := z.node(srvName)
			z.node(fmt.Sprintf("_%s.%s", sp.protocol(), svcName)) // empty non-terminal
			if !svc.Headless {
				srv.srv = append(srv.srv, srvTarget{svcName, uint16(sp.Port)})
				continue
			}
			for _, ep := range serving {
				if p, ok := ep.Ports[sp.Name]; ok && p > 0 && p <= 65535 {
					srv.srv = append(srv.srv, srvTarget{epName(ep), uint16(p)})
				}
			}
		}
	}
	for _, n := range z.names {
		sortAddrs(n.a)
		sortAddrs(n.aaaa)
		n.a, n.aaaa = compactAddrs(n.a), compactAddrs(n.aaaa)
		sort.Slice(n.srv, func(i, j int) bool {
			if n.srv[i].target != n.srv[j].target {
				return n.srv[i].target < n.srv[j].target
			}
			return n.srv[i].port < n.srv[j].port
		})
	}
	return z
}

func sortAddrs(a []netip.Addr) { sort.Slice(a, func(i, j int) bool { return a[i].Less(a[j]) }) }

func compactAddrs(a []netip.Addr) []netip.Addr {
	out := a[:0]
	for i, x := range a {
		if i == 0 || x != a[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// ResolvConf returns a pod's /etc/resolv.conf: the given nameservers, the
// Kubernetes search path "<ns>.svc.<domain> svc.<domain> <domain>" and
// "options ndots:5". An empty domain means cluster.local.
func ResolvConf(nameservers []string, namespace, domain string) string {
	if domain == "" {
		domain = DefaultClusterDomain
	}
	domain = strings.TrimSuffix(domain, ".")
	var b strings.Builder
	for _, ns := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	fmt.Fprintf(&b, "search %s.svc.%s svc.%s %s\n", namespace, domain, domain, domain)
	b.WriteString("options ndots:5\n")
	return b.String()
}
