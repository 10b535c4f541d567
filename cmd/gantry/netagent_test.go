package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor/sandbox"
	"gantry.io/gantry/netsvc"
)

func TestGatewayAddrs(t *testing.T) {
	got, err := gatewayAddrs([]string{"fd00:10:244:3::/64", "10.244.3.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("10.244.3.1"), netip.MustParseAddr("fd00:10:244:3::1")}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range [][]string{nil, {"10.244.3.0"}} {
		if _, err := gatewayAddrs(bad); err == nil {
			t.Errorf("gatewayAddrs(%q) accepted", bad)
		}
	}
}

func TestChangedServices(t *testing.T) {
	svc := func(name, vip string) netsvc.Service {
		return netsvc.Service{Namespace: "default", Name: name, ClusterIPs: []netip.Addr{netip.MustParseAddr(vip)},
			Ports: []netsvc.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}
	}
	ep := func(ip string, ready bool) netsvc.Endpoint {
		return netsvc.Endpoint{IP: netip.MustParseAddr(ip), Ports: map[string]int32{"http": 8080}, Ready: ready}
	}
	key := func(n string) netsvc.ServiceKey { return netsvc.ServiceKey{Namespace: "default", Name: n} }
	old := netsvc.State{
		Services: []netsvc.Service{svc("a", "10.96.0.1"), svc("b", "10.96.0.2"), svc("c", "10.96.0.3"), svc("gone", "10.96.0.4")},
		Endpoints: map[netsvc.ServiceKey][]netsvc.Endpoint{
			key("a"): {ep("10.244.0.2", true)},
			key("b"): {ep("10.244.0.3", true)},
		},
	}
	cur := netsvc.State{
		Services: []netsvc.Service{svc("new", "10.96.0.5"), svc("c", "10.96.0.9"), svc("b", "10.96.0.2"), svc("a", "10.96.0.1")},
		Endpoints: map[netsvc.ServiceKey][]netsvc.Endpoint{
			key("a"): {ep("10.244.0.2", false)}, // readiness changed
			key("b"): {ep("10.244.0.3", true)},  // unchanged
			key("c"): {},                        // empty list equals none
		},
	}
	want := []netsvc.ServiceKey{key("a"), key("c"), key("gone"), key("new")}
	if diff := cmp.Diff(want, changedServices(old, cur)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := changedServices(cur, cur); len(got) != 0 {
		t.Errorf("same state: %v changed", got)
	}
}

// naNetNS creates a throwaway network namespace with loopback up, deleted (with its
// nftables tables, routes and links) when the test ends.
func naNetNS(t *testing.T, tag string) (name, path string) {
	t.Helper()
	name = fmt.Sprintf("gtest-na-%s-%d", tag, os.Getpid())
	_ = exec.Command("ip", "netns", "del", name).Run()
	naSh(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	naSh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

func naSh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// naServe answers "hostname=<name> version=v1" on address inside the namespace.
func naServe(t *testing.T, path, address, name string) {
	t.Helper()
	var ln net.Listener
	if err := runInNetNS(path, func() (err error) { ln, err = net.Listen("tcp", address); return err }); err != nil {
		t.Fatalf("listen %s: %v", address, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hostname=%s version=v1\n", name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// naGet sends one HTTP/1.0 GET to address from inside the namespace at path and
// returns the hostname= of the answer.
func naGet(path, address string) (string, error) {
	var c net.Conn
	if err := runInNetNS(path, func() (err error) {
		c, err = net.DialTimeout("tcp", address, 3*time.Second)
		return err
	}); err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, after, ok := strings.Cut(string(b), "hostname=")
	if !ok {
		return "", fmt.Errorf("answer %q", b)
	}
	return strings.Fields(after)[0], nil
}

// naQuery asks server (inside the namespace) for name/qtype and returns the
// addresses of the answer.
func naQuery(path, server, name string, qtype uint16) ([]string, error) {
	var out []string
	err := runInNetNS(path, func() error {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, server)
		if err != nil {
			return err
		}
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *dns.A:
				out = append(out, v.A.String())
			case *dns.AAAA:
				out = append(out, v.AAAA.String())
			}
		}
		return nil
	})
	return out, err
}

func naWait(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// naPod creates a "pod": a namespace with eth0 on the node's bridge (a veth, as the
// CNI bridge plugin makes), its addresses and default routes via the bridge's first
// addresses.
func naPod(t *testing.T, node, bridge, tag, cidr4, cidr6 string) (name, path string) {
	t.Helper()
	name, path = naNetNS(t, tag)
	host := "v" + tag
	naSh(t, "ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", name)
	naSh(t, "ip", "-n", node, "link", "set", host, "master", bridge, "up")
	naSh(t, "ip", "-n", name, "addr", "add", cidr4, "dev", "eth0")
	naSh(t, "ip", "-n", name, "addr", "add", cidr6, "dev", "eth0", "nodad")
	naSh(t, "ip", "-n", name, "link", "set", "eth0", "up")
	gw4, _ := gatewayAddrs([]string{netip.MustParsePrefix(cidr4).Masked().String()})
	gw6, _ := gatewayAddrs([]string{netip.MustParsePrefix(cidr6).Masked().String()})
	naSh(t, "ip", "-n", name, "route", "add", "default", "via", gw4[0].String())
	naSh(t, "ip", "-n", name, "-6", "route", "add", "default", "via", gw6[0].String())
	return name, path
}

func naService(name string, vips []string, eps ...string) (netsvc.Service, []netsvc.Endpoint) {
	s := netsvc.Service{Namespace: "default", Name: name, Ports: []netsvc.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}
	for _, v := range vips {
		s.ClusterIPs = append(s.ClusterIPs, netip.MustParseAddr(v))
	}
	var out []netsvc.Endpoint
	for _, e := range eps {
		out = append(out, netsvc.Endpoint{IP: netip.MustParseAddr(e), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "pod-" + e})
	}
	return s, out
}

func naState(svcs ...any) netsvc.State {
	st := netsvc.State{Endpoints: map[netsvc.ServiceKey][]netsvc.Endpoint{}}
	for i := 0; i < len(svcs); i += 2 {
		s := svcs[i].(netsvc.Service)
		st.Services = append(st.Services, s)
		if eps := svcs[i+1].([]netsvc.Endpoint); len(eps) > 0 {
			st.Endpoints[s.Key()] = eps
		}
	}
	return st
}

func naNode(name string, cidrs []string, addrs ...string) netsvc.Node {
	n := netsvc.Node{Name: name}
	for _, c := range cidrs {
		n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(c))
	}
	for _, a := range addrs {
		n.Addrs = append(n.Addrs, netip.MustParseAddr(a))
	}
	return n
}

// TestNetAgentInNetNS runs the agent's service networking in a throwaway network
// namespace standing for a node: DNS binds the gateway addresses before the bridge
// has them and answers once it does; VIPs reach their endpoint over IPv4 and IPv6; a
// service without endpoints refuses at once; routes to another node's pod CIDRs;
// pods' resolv.conf; an endpoint change and a cluster domain change; stopping the
// agent leaves rules and routes, and the next agent reconciles them.
func TestNetAgentInNetNS(t *testing.T) {
	testenv.Integration(t, "ip", "nft")
	name, path := naNetNS(t, "one")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := netAgentConfig{nodeName: "node-a", podCIDRs: []string{"10.98.0.0/24", "fd98::/64"}, table: "gantry-natest",
		upstreams: []string{}, netns: path, logger: logger}
	na, err := newNetAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := na.Start(context.Background()); err != nil {
		na.Close()
		t.Fatal(err)
	}
	defer func() { na.Close() }()
	// What the CNI bridge plugin does at the first pod, after the agent started.
	naSh(t, "ip", "-n", name, "link", "add", "gbr0", "type", "bridge")
	naSh(t, "ip", "-n", name, "addr", "add", "10.98.0.1/24", "dev", "gbr0")
	naSh(t, "ip", "-n", name, "addr", "add", "fd98::1/64", "dev", "gbr0", "nodad")
	naSh(t, "ip", "-n", name, "link", "set", "gbr0", "up")
	naSh(t, "ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	naSh(t, "ip", "-n", name, "link", "set", "eth0p", "up")
	naSh(t, "ip", "-n", name, "addr", "add", "192.168.98.1/24", "dev", "eth0")
	naSh(t, "ip", "-n", name, "addr", "add", "fd98:ffff::1/64", "dev", "eth0", "nodad")
	naSh(t, "ip", "-n", name, "link", "set", "eth0", "up")
	// A node has a default route; locally sent traffic to a VIP needs one to be routed.
	naSh(t, "ip", "-n", name, "route", "add", "default", "via", "192.168.98.254")
	naSh(t, "ip", "-n", name, "-6", "route", "add", "default", "via", "fd98:ffff::fe")
	_, podPath := naPod(t, name, "gbr0", "pa", "10.98.0.2/24", "fd98::2/64")
	naServe(t, podPath, "10.98.0.2:8080", "ep4")
	naServe(t, podPath, "[fd98::2]:8080", "ep6")

	web, webEps := naService("web", []string{"10.96.5.5", "fd00:10:96::5"}, "10.98.0.2", "fd98::2")
	empty, _ := naService("empty", []string{"10.96.5.6"})
	nodes := []netsvc.Node{
		naNode("node-a", []string{"10.98.0.0/24", "fd98::/64"}, "192.168.98.1", "fd98:ffff::1"),
		naNode("node-b", []string{"10.98.1.0/24", "fd98:1::/64"}, "192.168.98.2", "fd98:ffff::2"),
		// Another agent on the same machine: its bridge is local, no route.
		naNode("node-c", []string{"10.98.2.0/24"}, "10.98.0.1"),
	}
	na.Apply(netUpdate{Revision: 1, Services: naState(web, webEps, empty, []netsvc.Endpoint(nil)), Nodes: nodes, ClusterDomain: "cluster.local"})

	naWait(t, "DNS answers on both gateway addresses", func() error {
		a, err := naQuery(path, "10.98.0.1:53", "web.default.svc.cluster.local.", dns.TypeA)
		if err != nil || !cmp.Equal(a, []string{"10.96.5.5"}) {
			return fmt.Errorf("A: %v %v", a, err)
		}
		aaaa, err := naQuery(path, "[fd98::1]:53", "web.default.svc.cluster.local.", dns.TypeAAAA)
		if err != nil || !cmp.Equal(aaaa, []string{"fd00:10:96::5"}) {
			return fmt.Errorf("AAAA: %v %v", aaaa, err)
		}
		return nil
	})
	for vip, want := range map[string]string{"10.96.5.5:80": "ep4", "[fd00:10:96::5]:80": "ep6"} {
		naWait(t, "GET "+vip, func() error {
			if got, err := naGet(path, vip); err != nil || got != want {
				return fmt.Errorf("%q %v, want %s", got, err, want)
			}
			return nil
		})
	}
	if _, err := naGet(path, "10.96.5.6:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("service without endpoints: %v, want ECONNREFUSED", err)
	}
	if out := naSh(t, "ip", "-n", name, "route", "show", "proto", "0x67"); !strings.Contains(out, "10.98.1.0/24 via 192.168.98.2") {
		t.Errorf("IPv4 route to node-b missing:\n%s", out)
	} else if strings.Contains(out, "10.98.2.0") {
		t.Errorf("route to node-c, whose address is local:\n%s", out)
	}
	if out := naSh(t, "ip", "-n", name, "-6", "route", "show", "proto", "0x67"); !strings.Contains(out, "fd98:1::/64 via fd98:ffff::2") {
		t.Errorf("IPv6 route to node-b missing:\n%s", out)
	}
	rc, ok := na.ResolvConf(sandbox.PodRef{Namespace: "shop"})
	if want := "nameserver 10.98.0.1\nnameserver fd98::1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"; !ok || rc != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", rc, want)
	}

	// Endpoints gone (an incremental Sync), and a new cluster domain.
	na.Apply(netUpdate{Revision: 2, Services: naState(web, []netsvc.Endpoint(nil), empty, []netsvc.Endpoint(nil)), Nodes: nodes, ClusterDomain: "corp.example"})
	naWait(t, "web refuses once its endpoints are gone; DNS under the new domain", func() error {
		if _, err := naGet(path, "10.96.5.5:80"); !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("GET web: %v", err)
		}
		a, err := naQuery(path, "10.98.0.1:53", "web.default.svc.corp.example.", dns.TypeA)
		if err != nil || !cmp.Equal(a, []string{"10.96.5.5"}) {
			return fmt.Errorf("A: %v %v", a, err)
		}
		return nil
	})
	if rc, _ := na.ResolvConf(sandbox.PodRef{Namespace: "shop"}); !strings.Contains(rc, "search shop.svc.corp.example svc.corp.example corp.example\n") {
		t.Errorf("resolv.conf after the domain change:\n%s", rc)
	}
	if st := na.proxy.Stats(); st.Full {
		t.Errorf("endpoint change replaced the whole table: %+v", st)
	}

	// The agent stops: rules and routes stay.
	na.Close()
	if out := naSh(t, "ip", "netns", "exec", name, "nft", "list", "table", "inet", "gantry-natest"); !strings.Contains(out, "svc/default/web") {
		t.Errorf("rules gone after the agent stopped:\n%s", out)
	}
	if out := naSh(t, "ip", "-n", name, "route", "show", "proto", "0x67"); !strings.Contains(out, "10.98.1.0/24") {
		t.Errorf("routes gone after the agent stopped:\n%s", out)
	}
	// The next agent reconciles at its first Network: web and node-b are gone.
	if na, err = newNetAgent(cfg); err != nil {
		t.Fatal(err)
	}
	if err := na.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	na.Apply(netUpdate{Revision: 3, Services: naState(empty, []netsvc.Endpoint(nil)), Nodes: nodes[:1]})
	naWait(t, "reconciled after restart", func() error {
		out := naSh(t, "ip", "netns", "exec", name, "nft", "list", "table", "inet", "gantry-natest")
		if strings.Contains(out, "svc/default/web") || !strings.Contains(out, "svc/default/empty") {
			return fmt.Errorf("table:\n%s", out)
		}
		if out := naSh(t, "ip", "-n", name, "route", "show", "proto", "0x67"); out != "" {
			return fmt.Errorf("routes left:\n%s", out)
		}
		a, err := naQuery(path, "10.98.0.1:53", "empty.default.svc.cluster.local.", dns.TypeA)
		if err != nil || !cmp.Equal(a, []string{"10.96.5.6"}) {
			return fmt.Errorf("A: %v %v", a, err)
		}
		return nil
	})
}

// TestNetAgentCrossNode: three nodes as network namespaces on one bridge, each with
// its pod bridge and pods (namespaces on veths, as the CNI bridge plugin makes them)
// and the agent's service networking (Proxy, DNS, Routes) fed the same Network. From
// a pod on node 1: pod-to-pod to node 3 and pod-to-VIP to endpoints on nodes 2 and 3,
// over IPv4 and IPv6; a VIP whose endpoint is a pod on node 1's own bridge
// (br_netfilter); DNS through node 1's gateway; once node 3 leaves, its pods are
// unreachable and the VIP serves only node 2's pod.
func TestNetAgentCrossNode(t *testing.T) {
	testenv.Integration(t, "ip", "nft", "sysctl")
	br, _ := naNetNS(t, "xbr")
	naSh(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	naSh(t, "ip", "-n", br, "link", "set", "br0", "up")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	var (
		nodes  []netsvc.Node
		agents []*netAgent
		pods   = map[string]string{} // pod name → netns path
	)
	for i := 1; i <= 3; i++ {
		name, path := naNetNS(t, fmt.Sprintf("xn%d", i))
		port := fmt.Sprintf("xn%d-%d", i, os.Getpid()%100000)
		naSh(t, "ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		naSh(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		naSh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("192.168.79.%d/24", i), "dev", "eth0")
		naSh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("fd79::%d/64", i), "dev", "eth0", "nodad")
		naSh(t, "ip", "-n", name, "link", "set", "eth0", "up")
		naSh(t, "ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
		naSh(t, "ip", "-n", name, "link", "add", "gbr0", "type", "bridge")
		naSh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("10.79.%d.1/24", i), "dev", "gbr0")
		naSh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("fd79:%d::1/64", i), "dev", "gbr0", "nodad")
		naSh(t, "ip", "-n", name, "link", "set", "gbr0", "up")
		cidrs := []string{fmt.Sprintf("10.79.%d.0/24", i), fmt.Sprintf("fd79:%d::/64", i)}
		nodes = append(nodes, naNode(fmt.Sprintf("node-%d", i), cidrs, fmt.Sprintf("192.168.79.%d", i), fmt.Sprintf("fd79::%d", i)))
		pod := fmt.Sprintf("pod-%d", i)
		_, pods[pod] = naPod(t, name, "gbr0", fmt.Sprintf("xp%d", i), fmt.Sprintf("10.79.%d.2/24", i), fmt.Sprintf("fd79:%d::2/64", i))
		naServe(t, pods[pod], fmt.Sprintf("10.79.%d.2:8080", i), pod)
		naServe(t, pods[pod], fmt.Sprintf("[fd79:%d::2]:8080", i), pod)
		if i == 1 {
			_, pods["pod-1b"] = naPod(t, name, "gbr0", "xp1b", "10.79.1.3/24", "fd79:1::3/64")
			naServe(t, pods["pod-1b"], "10.79.1.3:8080", "pod-1b")
			naServe(t, pods["pod-1b"], "[fd79:1::3]:8080", "pod-1b")
		}
		na, err := newNetAgent(netAgentConfig{nodeName: nodes[i-1].Name, podCIDRs: cidrs, table: "gantry-xn", upstreams: []string{}, netns: path, logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		if err := na.Start(context.Background()); err != nil {
			na.Close()
			t.Fatal(err)
		}
		t.Cleanup(na.Close)
		agents = append(agents, na)
	}
	web, webEps := naService("web", []string{"10.96.7.7", "fd00:10:96::77"}, "10.79.2.2", "fd79:2::2", "10.79.3.2", "fd79:3::2")
	local, localEps := naService("local", []string{"10.96.7.8", "fd00:10:96::78"}, "10.79.1.3", "fd79:1::3")
	apply := func(rev int64, st netsvc.State, nodes []netsvc.Node) {
		for _, na := range agents {
			na.Apply(netUpdate{Revision: rev, Services: st, Nodes: nodes, ClusterDomain: "cluster.local"})
		}
	}
	apply(1, naState(web, webEps, local, localEps), nodes)
	from := pods["pod-1"]

	for _, target := range []string{"10.79.3.2:8080", "[fd79:3::2]:8080"} {
		naWait(t, "pod-to-pod to node 3 at "+target, func() error {
			if got, err := naGet(from, target); err != nil || got != "pod-3" {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		})
	}
	for _, vip := range []string{"10.96.7.7:80", "[fd00:10:96::77]:80"} {
		seen := map[string]int{}
		naWait(t, "pod-to-VIP "+vip+" reaches the pods on nodes 2 and 3", func() error {
			got, err := naGet(from, vip)
			if err != nil {
				return err
			}
			seen[got]++
			if seen["pod-2"] == 0 || seen["pod-3"] == 0 {
				return fmt.Errorf("answers so far %v", seen)
			}
			return nil
		})
		if len(seen) != 2 {
			t.Errorf("VIP %s answered from %v, want pod-2 and pod-3 only", vip, seen)
		}
	}
	for _, vip := range []string{"10.96.7.8:80", "[fd00:10:96::78]:80"} {
		naWait(t, "pod-to-VIP "+vip+" on the same bridge", func() error {
			if got, err := naGet(from, vip); err != nil || got != "pod-1b" {
				return fmt.Errorf("%q %v", got, err)
			}
			return nil
		})
	}
	naWait(t, "DNS through node 1's gateway", func() error {
		a, err := naQuery(from, "10.79.1.1:53", "web.default.svc.cluster.local.", dns.TypeA)
		if err != nil || !cmp.Equal(a, []string{"10.96.7.7"}) {
			return fmt.Errorf("A %v %v", a, err)
		}
		aaaa, err := naQuery(from, "[fd79:1::1]:53", "local.default.svc.cluster.local.", dns.TypeAAAA)
		if err != nil || !cmp.Equal(aaaa, []string{"fd00:10:96::78"}) {
			return fmt.Errorf("AAAA %v %v", aaaa, err)
		}
		return nil
	})

	// Node 3 leaves: its pod is gone from the service and unreachable.
	_, webEps2 := naService("web", nil, "10.79.2.2", "fd79:2::2")
	apply(2, naState(web, webEps2, local, localEps), nodes[:2])
	naWait(t, "node 3's pods unreachable after it left", func() error {
		if _, err := naGet(from, "10.79.3.2:8080"); err == nil {
			return errors.New("still reachable")
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		if got, err := naGet(from, "10.96.7.7:80"); err != nil || got != "pod-2" {
			t.Fatalf("VIP after node 3 left: %q %v, want pod-2", got, err)
		}
	}
}
