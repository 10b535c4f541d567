package ipalloc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
)

func mustNew(t *testing.T, cfg Config, prev State) *Allocator {
	t.Helper()
	a, err := New(cfg, prev)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestFamiliesAndPolicies(t *testing.T) {
	dual := Config{}
	v4only := Config{DisableIPv6: true}
	v6only := Config{DisableIPv4: true}
	for _, tc := range []struct {
		name     string
		cfg      Config
		req      Request
		families []string
		err      error
	}{
		{"default single stack is IPv4", dual, Request{}, []string{IPv4}, nil},
		{"single stack IPv6 asked", dual, Request{IPFamilies: []string{IPv6}}, []string{IPv6}, nil},
		{"prefer dual on dual", dual, Request{IPFamilyPolicy: PreferDualStack}, []string{IPv4, IPv6}, nil},
		{"prefer dual, IPv6 primary", dual, Request{IPFamilyPolicy: PreferDualStack, IPFamilies: []string{IPv6}}, []string{IPv6, IPv4}, nil},
		{"prefer dual on v4-only degrades", v4only, Request{IPFamilyPolicy: PreferDualStack}, []string{IPv4}, nil},
		{"require dual on dual", dual, Request{IPFamilyPolicy: RequireDualStack}, []string{IPv4, IPv6}, nil},
		{"require dual on v4-only", v4only, Request{IPFamilyPolicy: RequireDualStack}, nil, api.ErrInvalidArgument},
		{"single stack IPv6 on v4-only", v4only, Request{IPFamilies: []string{IPv6}}, nil, api.ErrInvalidArgument},
		{"v6-only cluster default", v6only, Request{}, []string{IPv6}, nil},
		{"single stack with two families", dual, Request{IPFamilies: []string{IPv4, IPv6}}, nil, api.ErrInvalidArgument},
		{"families from clusterIPs", dual, Request{IPFamilyPolicy: PreferDualStack, ClusterIPs: []netip.Addr{ip("fd00:10:96::55")}}, []string{IPv6, IPv4}, nil},
		{"clusterIPs contradict families", dual, Request{IPFamilies: []string{IPv4}, ClusterIPs: []netip.Addr{ip("fd00:10:96::55")}}, nil, api.ErrInvalidArgument},
		{"bad policy", dual, Request{IPFamilyPolicy: "Both"}, nil, api.ErrInvalidArgument},
		{"headless keeps families", dual, Request{Headless: true, IPFamilyPolicy: RequireDualStack}, []string{IPv4, IPv6}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mustNew(t, tc.cfg, State{})
			tc.req.Namespace, tc.req.Name = "default", "web"
			res, err := a.Allocate(tc.req)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				if len(a.State().Services) != 0 {
					t.Errorf("a failed Allocate recorded %v", a.State())
				}
				return
			}
			if diff := cmp.Diff(tc.families, res.IPFamilies); diff != "" {
				t.Errorf("families (-want +got):\n%s", diff)
			}
			if tc.req.Headless {
				if len(res.ClusterIPs) != 0 {
					t.Errorf("headless service got VIPs %v", res.ClusterIPs)
				}
				return
			}
			if len(res.ClusterIPs) != len(tc.families) {
				t.Fatalf("got %v for families %v", res.ClusterIPs, tc.families)
			}
			for i, f := range tc.families {
				if familyOf(res.ClusterIPs[i]) != f || !a.prefix(f).Contains(res.ClusterIPs[i]) {
					t.Errorf("VIP %s is not in the %s CIDR %s", res.ClusterIPs[i], f, a.prefix(f))
				}
			}
		})
	}
}

func TestDeterministicAndStableAcrossRestarts(t *testing.T) {
	req := Request{Namespace: "shop", Name: "cart", IPFamilyPolicy: PreferDualStack, Ports: []PortRequest{{Port: 80}, {Protocol: "UDP", Port: 53}}}
	a1, a2 := mustNew(t, Config{}, State{}), mustNew(t, Config{}, State{})
	r1, err := a1.Allocate(req)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := a2.Allocate(req)
	if diff := cmp.Diff(r1, r2, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("two fresh allocators disagree (-a1 +a2):\n%s", diff)
	}
	// Fill some more, then restart from the stored (JSON) state.
	for i := 0; i < 50; i++ {
		if _, err := a1.Allocate(Request{Namespace: "ns", Name: fmt.Sprint("svc", i), Ports: []PortRequest{{Port: 80}}}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(a1.State())
	if err != nil {
		t.Fatal(err)
	}
	var stored State
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	a3 := mustNew(t, Config{}, stored)
	again, err := a3.Allocate(req)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(r1.ClusterIPs, again.ClusterIPs, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })) || !cmp.Equal(r1.NodePorts, again.NodePorts) {
		t.Errorf("after restart %v %v, before %v %v", again.ClusterIPs, again.NodePorts, r1.ClusterIPs, r1.NodePorts)
	}
	// No two services share a VIP or NodePort.
	seenIP, seenPort := map[netip.Addr]string{}, map[string]string{}
	for key, al := range a3.State().Services {
		for _, v := range al.ClusterIPs {
			if other, ok := seenIP[v]; ok {
				t.Errorf("VIP %s held by %s and %s", v, other, key)
			}
			seenIP[v] = key
		}
		for pk, np := range al.NodePorts {
			nk := nodePortKey(pk, np)
			if other, ok := seenPort[nk]; ok {
				t.Errorf("NodePort %s held by %s and %s", nk, other, key)
			}
			seenPort[nk] = key
		}
	}
}

func TestRequestedAndReserved(t *testing.T) {
	a := mustNew(t, Config{}, State{})
	res, err := a.Allocate(Request{Namespace: "default", Name: "dns", ClusterIPs: []netip.Addr{ip("10.96.0.10")}, Ports: []PortRequest{{Port: 53, NodePort: 30053}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.ClusterIPs[0] != ip("10.96.0.10") || res.NodePorts["TCP/53"] != 30053 {
		t.Errorf("requested VIP/NodePort not honoured: %v %v", res.ClusterIPs, res.NodePorts)
	}
	for _, tc := range []struct {
		name string
		req  Request
		err  error
	}{
		{"VIP taken", Request{ClusterIPs: []netip.Addr{ip("10.96.0.10")}}, api.ErrConflict},
		{"NodePort taken", Request{Ports: []PortRequest{{Port: 80, NodePort: 30053}}}, api.ErrConflict},
		{"network address", Request{ClusterIPs: []netip.Addr{ip("10.96.0.0")}}, api.ErrInvalidArgument},
		{"broadcast address", Request{ClusterIPs: []netip.Addr{ip("10.96.255.255")}}, api.ErrInvalidArgument},
		{"outside the CIDR", Request{ClusterIPs: []netip.Addr{ip("192.168.1.1")}}, api.ErrInvalidArgument},
		{"NodePort outside the range", Request{Ports: []PortRequest{{Port: 80, NodePort: 8080}}}, api.ErrInvalidArgument},
	} {
		tc.req.Namespace, tc.req.Name = "default", "other"
		if _, err := a.Allocate(tc.req); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	// Same NodePort number on the other protocol is free.
	if _, err := a.Allocate(Request{Namespace: "default", Name: "udp", Ports: []PortRequest{{Protocol: "UDP", Port: 53, NodePort: 30053}}}); err != nil {
		t.Errorf("UDP/30053 while TCP/30053 is held: %v", err)
	}
	// Release frees them.
	a.Release("default", "dns")
	if _, err := a.Allocate(Request{Namespace: "default", Name: "other", ClusterIPs: []netip.Addr{ip("10.96.0.10")}, Ports: []PortRequest{{Port: 80, NodePort: 30053}}}); err != nil {
		t.Errorf("after Release: %v", err)
	}
}

func TestUpdatesKeepAndChange(t *testing.T) {
	a := mustNew(t, Config{}, State{})
	req := Request{Namespace: "default", Name: "web", Ports: []PortRequest{{Port: 80}}}
	first, _ := a.Allocate(req)
	// Going dual-stack keeps the IPv4 VIP and adds an IPv6 one.
	req.IPFamilyPolicy = PreferDualStack
	dual, err := a.Allocate(req)
	if err != nil {
		t.Fatal(err)
	}
	if dual.ClusterIPs[0] != first.ClusterIPs[0] || len(dual.ClusterIPs) != 2 || dual.NodePorts["TCP/80"] != first.NodePorts["TCP/80"] {
		t.Errorf("dual-stack update: %v %v, was %v %v", dual.ClusterIPs, dual.NodePorts, first.ClusterIPs, first.NodePorts)
	}
	// Back to single stack frees the IPv6 VIP for others.
	req.IPFamilyPolicy = SingleStack
	if _, err := a.Allocate(req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(Request{Namespace: "x", Name: "y", ClusterIPs: []netip.Addr{dual.ClusterIPs[1]}}); err != nil {
		t.Errorf("freed IPv6 VIP not reusable: %v", err)
	}
	// Dropping the NodePort port frees it.
	req.Ports = nil
	if _, err := a.Allocate(req); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Allocate(Request{Namespace: "x", Name: "z", Ports: []PortRequest{{Port: 1, NodePort: first.NodePorts["TCP/80"]}}}); err != nil {
		t.Errorf("freed NodePort not reusable: %v", err)
	}
}

func TestExhaustion(t *testing.T) {
	a := mustNew(t, Config{ServiceCIDRv4: netip.MustParsePrefix("10.0.0.0/29"), DisableIPv6: true, NodePortMin: 30000, NodePortMax: 30002}, State{})
	for i := 0; i < 6; i++ { // 8 addresses minus network and broadcast
		if _, err := a.Allocate(Request{Namespace: "n", Name: fmt.Sprint(i)}); err != nil {
			t.Fatalf("service %d: %v", i, err)
		}
	}
	if _, err := a.Allocate(Request{Namespace: "n", Name: "full"}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("7th VIP in a /29: %v, want ErrUnavailable", err)
	}
	if _, err := a.Allocate(Request{Namespace: "n", Name: "0", Ports: []PortRequest{{Port: 1}, {Port: 2}, {Port: 3}, {Port: 4}}}); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("4 NodePorts in a range of 3: %v, want ErrUnavailable", err)
	}
	if got := a.State().Services["n/0"].NodePorts; len(got) != 0 {
		t.Errorf("failed Allocate left NodePorts %v", got)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		prev State
		err  error
	}{
		"v6 prefix as v4":     {Config{ServiceCIDRv4: netip.MustParsePrefix("fd00::/112")}, State{}, api.ErrInvalidArgument},
		"tiny prefix":         {Config{ServiceCIDRv4: netip.MustParsePrefix("10.0.0.0/31")}, State{}, api.ErrInvalidArgument},
		"no family":           {Config{DisableIPv4: true, DisableIPv6: true}, State{}, api.ErrInvalidArgument},
		"bad port range":      {Config{NodePortMin: 40000, NodePortMax: 30000}, State{}, api.ErrInvalidArgument},
		"duplicated VIP":      {Config{}, State{Services: map[string]Allocation{"a/a": {ClusterIPs: []netip.Addr{ip("10.96.0.5")}}, "b/b": {ClusterIPs: []netip.Addr{ip("10.96.0.5")}}}}, api.ErrConflict},
		"duplicated NodePort": {Config{}, State{Services: map[string]Allocation{"a/a": {NodePorts: map[string]int32{"TCP/80": 30001}}, "b/b": {NodePorts: map[string]int32{"TCP/81": 30001}}}}, api.ErrConflict},
	} {
		if _, err := New(tc.cfg, tc.prev); !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.err)
		}
	}
}
