package netsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/api"
)

func newTestProxy(t *testing.T, nsPath string) *Proxy {
	t.Helper()
	p, err := NewProxy(WithNetNS(nsPath))
	if err != nil {
		t.Fatalf("NewProxy: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// kernelView reads the table back through netlink: chain name → rule count, and
// each map's elements as "key bytes → goto chain".
type kernelView struct {
	chains map[string]int
	elems  map[string]map[string]string
	handle map[string][]uint64 // rule handles per chain
}

func readTable(t *testing.T, nsPath, table string) (*kernelView, bool) {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &nftables.Conn{NetNS: int(f.Fd())}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	found := false
	for _, tb := range tables {
		found = found || tb.Name == table
	}
	if !found {
		return nil, false
	}
	tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: table}
	v := &kernelView{chains: map[string]int{}, elems: map[string]map[string]string{}, handle: map[string][]uint64{}}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list chains: %v", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != table {
			continue
		}
		rules, err := c.GetRules(tb, ch)
		if err != nil {
			t.Fatalf("rules of %s: %v", ch.Name, err)
		}
		v.chains[ch.Name] = len(rules)
		for _, r := range rules {
			v.handle[ch.Name] = append(v.handle[ch.Name], r.Handle)
		}
	}
	sets, err := c.GetSets(tb)
	if err != nil {
		t.Fatalf("sets: %v", err)
	}
	for _, s := range sets {
		if s.Anonymous || !s.IsMap && s.Name != setHairpin4 && s.Name != setHairpin6 {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			t.Fatalf("elements of %s: %v", s.Name, err)
		}
		m := map[string]string{}
		for _, e := range els {
			if s.IsMap {
				m[fmt.Sprintf("%x", e.Key)] = verdictChain(t, e)
			} else {
				m[fmt.Sprintf("%x", e.Key)] = ""
			}
		}
		v.elems[s.Name] = m
	}
	return v, true
}

// verdictChain decodes a vmap element's goto target: the library leaves the
// nested NFTA_VERDICT_* attributes in Val.
func verdictChain(t *testing.T, e nftables.SetElement) string {
	if e.VerdictData != nil {
		return e.VerdictData.Chain
	}
	ad, err := netlink.NewAttributeDecoder(e.Val)
	if err != nil {
		t.Fatalf("element data: %v", err)
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_VERDICT_CHAIN {
			return ad.String()
		}
	}
	return ""
}

// modelView is what readTable must find for st.
func modelView(st State) *kernelView {
	rs := buildRuleset(st)
	v := &kernelView{chains: map[string]int{}, elems: map[string]map[string]string{}}
	for name, c := range rs.chains {
		v.chains[name] = len(c.rules)
	}
	for name, m := range rs.maps {
		els := map[string]string{}
		for _, e := range mapElements(m, sortedKeys(m.elems)) {
			els[fmt.Sprintf("%x", e.Key)] = e.VerdictData.Chain
		}
		v.elems[name] = els
	}
	for _, v6 := range []bool{false, true} {
		els := map[string]string{}
		for _, e := range hairpinElements(rs.hairpinAddrs(v6)) {
			els[fmt.Sprintf("%x", e.Key)] = ""
		}
		v.elems[nftHairpinSet(nil, v6).Name] = els
	}
	return v
}

func TestSyncReadBack(t *testing.T) {
	_, ns := newNetNS(t, "rb")
	p := newTestProxy(t, ns)
	st := sampleState()
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if !p.Stats().Full {
		t.Errorf("first Sync was not a full replace: %+v", p.Stats())
	}
	got, ok := readTable(t, ns, DefaultTableName)
	if !ok {
		t.Fatal("table gantry not found after Sync")
	}
	want := modelView(st)
	if diff := cmp.Diff(want.chains, got.chains); diff != "" {
		t.Errorf("chains and rule counts (-model +kernel):\n%s", diff)
	}
	if diff := cmp.Diff(want.elems, got.elems); diff != "" {
		t.Errorf("map elements (-model +kernel):\n%s", diff)
	}
	if len(got.elems[mapServiceIPs4]) != 5 || len(got.elems[mapServiceIPs6]) != 1 {
		t.Errorf("service-ips has %d elements, service-ips6 %d; want 5 and 1", len(got.elems[mapServiceIPs4]), len(got.elems[mapServiceIPs6]))
	}

	// A second Sync of the same state sends nothing.
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("second Sync: %v", err)
	}
	if s := p.Stats(); s.Full || s.Messages != 0 {
		t.Errorf("unchanged Sync sent %d messages (full=%v), want 0", s.Messages, s.Full)
	}
}

func TestSyncIncremental(t *testing.T) {
	_, ns := newNetNS(t, "inc")
	p := newTestProxy(t, ns)
	st := sampleState()
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	before, _ := readTable(t, ns, DefaultTableName)

	// web-b (10.244.0.6) goes unready, a new endpoint .7 becomes ready, and the
	// empty service gets its first endpoint.
	next := sampleState()
	web := next.Endpoints[ServiceKey{"default", "web"}]
	web[2].Ready = false
	web[4].Ready = true
	next.Endpoints[ServiceKey{"default", "empty"}] = []Endpoint{{IP: addr("10.244.0.30"), Ports: map[string]int32{"": 80}, Ready: true}}
	if err := p.Sync(context.Background(), next); err != nil {
		t.Fatalf("incremental Sync: %v", err)
	}
	s := p.Stats()
	// changed: svc web v4, svc empty (the DNATs live in the service chains);
	// hairpin elements: .6 goes, .7 and .30 come.
	want := SyncStats{Messages: s.Messages, ChainsChanged: 2, ElementsChanged: 3}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	after, _ := readTable(t, ns, DefaultTableName)
	if diff := cmp.Diff(modelView(next).chains, after.chains); diff != "" {
		t.Errorf("chains after update (-model +kernel):\n%s", diff)
	}
	if diff := cmp.Diff(modelView(next).elems, after.elems); diff != "" {
		t.Errorf("elements after update (-model +kernel):\n%s", diff)
	}
	// Untouched chains keep their rules (same handles): they were not rewritten.
	for _, name := range []string{"svc/default/web/tcp/80/v6", "ep/default/sticky/tcp/8080/10.244.0.9:8080", "svc/default/sticky/tcp/8080/v4", "services", "postrouting"} {
		if !cmp.Equal(before.handle[name], after.handle[name]) {
			t.Errorf("chain %s was rewritten: handles %v → %v", name, before.handle[name], after.handle[name])
		}
	}
	if cmp.Equal(before.handle["svc/default/web/tcp/80/v4"], after.handle["svc/default/web/tcp/80/v4"]) {
		t.Errorf("changed chain svc/default/web/tcp/80/v4 kept its old rules")
	}

	// Removing every service deletes their chains, sets and elements.
	if err := p.Sync(context.Background(), State{}); err != nil {
		t.Fatalf("Sync to empty: %v", err)
	}
	empty, _ := readTable(t, ns, DefaultTableName)
	if diff := cmp.Diff(modelView(State{}).chains, empty.chains); diff != "" {
		t.Errorf("chains after removing all services (-model +kernel):\n%s", diff)
	}
	if diff := cmp.Diff(modelView(State{}).elems, empty.elems); diff != "" {
		t.Errorf("elements after removing all services (-model +kernel):\n%s", diff)
	}
}

func TestCloseRemovesTableDetachKeepsIt(t *testing.T) {
	_, ns := newNetNS(t, "cl")
	p, err := NewProxy(WithNetNS(ns), WithTableName("gantry-test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(context.Background(), sampleState()); err != nil {
		t.Fatal(err)
	}
	p.Detach()
	if _, ok := readTable(t, ns, "gantry-test"); !ok {
		t.Fatal("Detach removed the table; rules must stay while the agent is away")
	}
	// A restarted agent replaces the table, dropping what it no longer wants.
	p2 := newTestProxy(t, ns)
	p2.table = "gantry-test"
	st := State{Services: sampleState().Services[:1], Endpoints: sampleState().Endpoints}
	if err := p2.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	got, _ := readTable(t, ns, "gantry-test")
	if _, stale := got.chains["svc/default/empty/tcp/80/v4"]; stale {
		t.Error("stale chain of a removed service survived the restart reconcile")
	}
	if diff := cmp.Diff(modelView(st).chains, got.chains); diff != "" {
		t.Errorf("chains after reconcile (-model +kernel):\n%s", diff)
	}
	if err := p2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := readTable(t, ns, "gantry-test"); ok {
		t.Error("table still present after Close")
	}
	if err := p2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := p2.Sync(context.Background(), st); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("Sync after Close = %v, want ErrFailedPrecondition", err)
	}
}

func TestNewProxyBadNetNS(t *testing.T) {
	if _, err := NewProxy(WithNetNS("/nonexistent/netns")); err == nil || !strings.Contains(err.Error(), "/nonexistent/netns") {
		t.Fatalf("NewProxy on a missing namespace = %v, want an error naming it", err)
	}
}

// TestVIPTraffic sends real TCP connections through the rules: a client namespace
// joined by a veth pair to a backend namespace running an HTTP server.
func TestVIPTraffic(t *testing.T) {
	client, clientNS := newNetNS(t, "c")
	backend, backendNS := newNetNS(t, "b")
	veth := fmt.Sprintf("gtnsv%d", nsSeq.Add(1))
	sh(t, "ip", "link", "add", veth, "netns", client, "type", "veth", "peer", "name", "eth0", "netns", backend)
	sh(t, "ip", "-n", client, "addr", "add", "10.250.0.1/24", "dev", veth)
	sh(t, "ip", "-n", client, "addr", "add", "fd00:250::1/64", "dev", veth, "nodad")
	sh(t, "ip", "-n", backend, "addr", "add", "10.250.0.2/24", "dev", "eth0")
	sh(t, "ip", "-n", backend, "addr", "add", "fd00:250::2/64", "dev", "eth0", "nodad")
	sh(t, "ip", "-n", backend, "addr", "add", "10.250.0.3/24", "dev", "eth0")
	sh(t, "ip", "-n", client, "link", "set", veth, "up")
	sh(t, "ip", "-n", backend, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", client, "route", "add", "default", "via", "10.250.0.2")
	sh(t, "ip", "-n", client, "-6", "route", "add", "default", "via", "fd00:250::2")

	var ln net.Listener
	if err := inNetNS(backendNS, func() (err error) { ln, err = net.Listen("tcp", "[::]:8080"); return err }); err != nil {
		t.Fatalf("backend listen: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "backend %s saw %s", local, r.RemoteAddr)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	st := State{
		Services: []Service{
			{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{addr("10.96.0.10"), addr("fd00:10:96::a")},
				Ports: []ServicePort{{Name: "http", Port: 80, NodePort: 30080, TargetPort: intstr.FromString("http")}}},
			{Namespace: "default", Name: "empty", ClusterIPs: []netip.Addr{addr("10.96.0.11"), addr("fd00:10:96::b")},
				Ports: []ServicePort{{Port: 80}}},
			{Namespace: "default", Name: "two", ClusterIPs: []netip.Addr{addr("10.96.0.12")}, Ports: []ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
			{Namespace: "default", Name: "sticky", ClusterIPs: []netip.Addr{addr("10.96.0.13")}, SessionAffinity: AffinityClientIP,
				Ports: []ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		},
		Endpoints: map[ServiceKey][]Endpoint{
			{"default", "web"}: {
				{IP: addr("10.250.0.2"), Ports: map[string]int32{"http": 8080}, Ready: true},
				{IP: addr("fd00:250::2"), Ports: map[string]int32{"http": 8080}, Ready: true},
			},
			{"default", "two"}: {
				{IP: addr("10.250.0.2"), Ports: map[string]int32{"": 8080}, Ready: true},
				{IP: addr("10.250.0.3"), Ports: map[string]int32{"": 8080}, Ready: true},
			},
			{"default", "sticky"}: {
				{IP: addr("10.250.0.2"), Ports: map[string]int32{"": 8080}, Ready: true},
				{IP: addr("10.250.0.3"), Ports: map[string]int32{"": 8080}, Ready: true},
			},
		},
	}
	p := newTestProxy(t, clientNS)
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("Sync: %v", err)
	}

	get := func(target string) (string, error) {
		var body string
		err := inNetNS(clientNS, func() error {
			conn, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
			b, err := io.ReadAll(conn)
			body = string(b)
			return err
		})
		return body, err
	}
	for _, tc := range []struct{ target, wantFrom string }{
		{"10.96.0.10:80", "10.250.0.1:"},
		{"[fd00:10:96::a]:80", "[fd00:250::1]:"},
		{"10.250.0.1:30080", "saw 10.250.0.1:"}, // NodePort on the node's own address
	} {
		body, err := get(tc.target)
		if err != nil {
			t.Errorf("connect %s: %v", tc.target, err)
			continue
		}
		if !strings.Contains(body, "backend ") || !strings.Contains(body, tc.wantFrom) {
			t.Errorf("through %s got %q, want the backend's answer seeing %s", tc.target, body, tc.wantFrom)
		}
	}
	for _, target := range []string{"10.96.0.11:80", "[fd00:10:96::b]:80"} {
		_, err := get(target)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect to %s (no endpoints) = %v, want ECONNREFUSED", target, err)
		}
	}

	// Random balancing reaches both endpoints; ClientIP affinity pins the client
	// to one. 40 connections all on one backend by chance: probability 2^-39.
	for _, tc := range []struct {
		vip  string
		want int
	}{{"10.96.0.12:80", 2}, {"10.96.0.13:80", 1}} {
		seen := map[string]int{}
		for i := 0; i < 40; i++ {
			body, err := get(tc.vip)
			if err != nil {
				t.Fatalf("connect %s: %v", tc.vip, err)
			}
			for _, b := range []string{"10.250.0.2:8080", "10.250.0.3:8080"} {
				if strings.Contains(body, "backend "+b) {
					seen[b]++
				}
			}
		}
		if len(seen) != tc.want {
			t.Errorf("40 connections to %s reached backends %v, want %d distinct", tc.vip, seen, tc.want)
		}
	}

	// The endpoint goes away: the VIP now refuses at once.
	st.Endpoints = nil
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if _, err := get("10.96.0.10:80"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connect after the endpoint left = %v, want ECONNREFUSED", err)
	}
}

// TestSyncKernelErrorThenRecovers: a batch the kernel refuses (the table was
// deleted behind the proxy's back, so flushing a chain fails) is reported with
// the failing message and its errno, and the next Sync replaces the table.
func TestSyncKernelErrorThenRecovers(t *testing.T) {
	name, ns := newNetNS(t, "kerr")
	p := newTestProxy(t, ns)
	if err := p.Sync(context.Background(), sampleState()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	sh(t, "ip", "netns", "exec", name, "nft", "delete", "table", "inet", DefaultTableName)
	next := sampleState()
	next.Endpoints[ServiceKey{"default", "web"}][2].Ready = false
	err := p.Sync(context.Background(), next)
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "message") {
		t.Fatalf("Sync into a deleted table: %v, want ENOENT naming the message", err)
	}
	if _, ok := readTable(t, ns, DefaultTableName); ok {
		t.Errorf("the refused batch left a table behind (not atomic)")
	}
	if err := p.Sync(context.Background(), next); err != nil {
		t.Fatalf("Sync after the failure: %v", err)
	}
	if !p.Stats().Full {
		t.Errorf("Sync after a failure was not a full replace: %+v", p.Stats())
	}
	got, _ := readTable(t, ns, DefaultTableName)
	if diff := cmp.Diff(modelView(next).chains, got.chains); diff != "" {
		t.Errorf("chains after recovery (-model +kernel):\n%s", diff)
	}
}

// TestHairpinTraffic: a pod reaching itself through its service's VIP gets an
// answer (its source is masqueraded to the node, otherwise the pod would drop
// its own address arriving from outside), while another client keeps its source.
func TestHairpinTraffic(t *testing.T) {
	node, nodeNS := newNetNS(t, "hn")
	pod, podNS := newNetNS(t, "hp")
	veth := fmt.Sprintf("gtnsv%d", nsSeq.Add(1))
	sh(t, "ip", "link", "add", veth, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod)
	sh(t, "ip", "-n", node, "addr", "add", "10.251.0.1/24", "dev", veth)
	sh(t, "ip", "-n", pod, "addr", "add", "10.251.0.2/24", "dev", "eth0")
	sh(t, "ip", "-n", node, "link", "set", veth, "up")
	sh(t, "ip", "-n", pod, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", pod, "route", "add", "default", "via", "10.251.0.1")
	sh(t, "ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

	var ln net.Listener
	if err := inNetNS(podNS, func() (err error) { ln, err = net.Listen("tcp", "0.0.0.0:8080"); return err }); err != nil {
		t.Fatalf("pod listen: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "saw %s", r.RemoteAddr)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	st := State{
		Services: []Service{{Namespace: "default", Name: "self", ClusterIPs: []netip.Addr{addr("10.96.0.20")},
			Ports: []ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}}},
		Endpoints: map[ServiceKey][]Endpoint{{"default", "self"}: {{IP: addr("10.251.0.2"), Ports: map[string]int32{"": 8080}, Ready: true}}},
	}
	p := newTestProxy(t, nodeNS)
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	get := func(ns string) (string, error) {
		var body string
		err := inNetNS(ns, func() error {
			conn, err := net.DialTimeout("tcp", "10.96.0.20:80", 5*time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
			b, err := io.ReadAll(conn)
			body = string(b)
			return err
		})
		return body, err
	}
	body, err := get(podNS)
	if err != nil || !strings.Contains(body, "saw 10.251.0.1:") {
		t.Errorf("pod → its own VIP: %q, %v; want an answer seeing the node's address 10.251.0.1", body, err)
	}

	// The hairpin element follows the endpoint.
	st.Endpoints = nil
	if err := p.Sync(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	v, _ := readTable(t, nodeNS, DefaultTableName)
	if n := len(v.elems[setHairpin4]); n != 0 {
		t.Errorf("hairpin set has %d elements after the endpoint left, want 0", n)
	}
}

// TestSyncChanged: the fast path programs the same table as Sync, touching only
// the listed service; a listed service that is new falls back to a full diff.
func TestSyncChanged(t *testing.T) {
	_, ns := newNetNS(t, "chg")
	p := newTestProxy(t, ns)
	if err := p.SyncChanged(context.Background(), sampleState()); err != nil {
		t.Fatalf("first SyncChanged: %v", err)
	}
	if !p.Stats().Full {
		t.Errorf("first SyncChanged was not a full replace: %+v", p.Stats())
	}
	before, _ := readTable(t, ns, DefaultTableName)

	next := sampleState()
	web := ServiceKey{"default", "web"}
	next.Endpoints[web][2].Ready = false // 10.244.0.6 leaves web (v4)
	if err := p.SyncChanged(context.Background(), next, web); err != nil {
		t.Fatalf("SyncChanged: %v", err)
	}
	if s := p.Stats(); s.Full || s.ChainsChanged != 1 || s.ElementsChanged != 1 {
		t.Errorf("stats %+v, want 1 chain changed and 1 hairpin element", s)
	}
	after, _ := readTable(t, ns, DefaultTableName)
	if diff := cmp.Diff(modelView(next).chains, after.chains); diff != "" {
		t.Errorf("chains (-model +kernel):\n%s", diff)
	}
	if diff := cmp.Diff(modelView(next).elems, after.elems); diff != "" {
		t.Errorf("elements (-model +kernel):\n%s", diff)
	}
	if !cmp.Equal(before.handle["svc/default/web/tcp/80/v6"], after.handle["svc/default/web/tcp/80/v6"]) {
		t.Errorf("the unchanged v6 chain of web was rewritten")
	}

	// A new service listed as changed: falls back to the full diff.
	next.Services = append(next.Services, Service{Namespace: "default", Name: "new", ClusterIPs: []netip.Addr{addr("10.96.0.99")}, Ports: []ServicePort{{Port: 1}}})
	if err := p.SyncChanged(context.Background(), next, ServiceKey{"default", "new"}); err != nil {
		t.Fatalf("SyncChanged with a new service: %v", err)
	}
	got, _ := readTable(t, ns, DefaultTableName)
	if diff := cmp.Diff(modelView(next).chains, got.chains); diff != "" {
		t.Errorf("chains after adding a service (-model +kernel):\n%s", diff)
	}
	if err := p.SyncChanged(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Messages != 0 {
		t.Errorf("SyncChanged with nothing listed sent %d messages", s.Messages)
	}
}
