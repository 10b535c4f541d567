package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/sandbox"
)

// The "outside" host of the masquerade test: a network namespace the test creates,
// linked to the host by a veth pair, with documentation addresses (RFC 5737, RFC 3849)
// that exist only between the host and that namespace.
const (
	outsideNS     = "gtest-sbx-out"
	outsideHostIf = "gtsbxo-h"
	outsideNSIf   = "gtsbxo-o"
	outsideHost4  = "198.51.100.1"
	outsideAddr4  = "198.51.100.2"
	outsideHost6  = "2001:db8:51::1"
	outsideAddr6  = "2001:db8:51::2"
)

// outsideHost creates the outside namespace with an HTTP server on [::]:testPort that
// answers with the client's address as it sees it, and a route back to the pod subnets
// (so that un-masqueraded traffic would be answered too, and the test can tell the two
// apart). It returns the namespace's path; everything is removed at the end of the test.
func outsideHost(t *testing.T) string {
	t.Helper()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", outsideNS).Run()
	_ = exec.Command("ip", "link", "del", outsideHostIf).Run()
	run("netns", "add", outsideNS)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", outsideHostIf).Run()
		if out, err := exec.Command("ip", "netns", "del", outsideNS).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip netns del %s: %v: %s", outsideNS, err, out)
		}
	})
	run("link", "add", outsideHostIf, "type", "veth", "peer", "name", outsideNSIf, "netns", outsideNS)
	run("addr", "add", outsideHost4+"/24", "dev", outsideHostIf)
	run("-6", "addr", "add", outsideHost6+"/64", "dev", outsideHostIf, "nodad")
	run("link", "set", outsideHostIf, "up")
	run("-n", outsideNS, "link", "set", "lo", "up")
	run("-n", outsideNS, "addr", "add", outsideAddr4+"/24", "dev", outsideNSIf)
	run("-n", outsideNS, "-6", "addr", "add", outsideAddr6+"/64", "dev", outsideNSIf, "nodad")
	run("-n", outsideNS, "link", "set", outsideNSIf, "up")
	run("-n", outsideNS, "route", "add", testSubnet4, "via", outsideHost4)
	run("-n", outsideNS, "-6", "route", "add", testSubnet6, "via", outsideHost6)

	path := "/run/netns/" + outsideNS
	var l net.Listener
	if err := inNetNS(path, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", testPort))
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", outsideNS, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, net.ParseIP(host).String())
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path
}

// seenFrom GETs the echo server at ip from the pod and returns the source address the
// server saw.
func seenFrom(t *testing.T, sb *sandbox.Sandbox, ip string) string {
	t.Helper()
	got, err := httpGet(sb.NetNSPath, hostPortURL(net.ParseIP(ip), testPort))
	if err != nil {
		t.Fatalf("GET %s from pod %s: %v", ip, sb.UID, err)
	}
	return got
}

func TestNodeMasquerade(t *testing.T) {
	e := newEnv(t)
	outsideHost(t)
	a := e.setup("pod-m1", "m1")
	b := e.setup("pod-m2", "m2")

	// Leaving the pod subnet: the source is the node's address on the way out.
	if got := seenFrom(t, a, outsideAddr4); got != outsideHost4 {
		t.Errorf("outside host saw IPv4 source %s, want the node's %s (masqueraded)", got, outsideHost4)
	}
	if got := seenFrom(t, a, outsideAddr6); got != outsideHost6 {
		t.Errorf("outside host saw IPv6 source %s, want the node's %s (masqueraded)", got, outsideHost6)
	}
	// Pod to pod: never masqueraded.
	serveRemoteAddr(t, b)
	if got := seenFrom(t, a, b.IPv4.String()); got != a.IPv4.String() {
		t.Errorf("pod b saw IPv4 source %s, want pod a's %s", got, a.IPv4)
	}
	if got := seenFrom(t, a, b.IPv6.String()); got != a.IPv6.String() {
		t.Errorf("pod b saw IPv6 source %s, want pod a's %s", got, a.IPv6)
	}
	// The bridge plugin added no per-pod masquerade rules: the node-wide rule did it.
	if rules := natRulesFor(t, a.UID); rules != "" {
		t.Errorf("per-pod iptables rules with the node-wide masquerade:\n%s", rules)
	}
	if !hasTable(t, testNATTbl) {
		t.Fatalf("no nftables table inet %s after Setup", testNATTbl)
	}

	// Without the rule the outside host sees the pod's own address (it has a route back).
	if err := e.m.RemoveMasquerade(); err != nil {
		t.Fatalf("RemoveMasquerade: %v", err)
	}
	if hasTable(t, testNATTbl) {
		t.Fatalf("table inet %s still there after RemoveMasquerade", testNATTbl)
	}
	if err := e.m.RemoveMasquerade(); err != nil {
		t.Errorf("second RemoveMasquerade: %v, want nil", err)
	}
	// New connections only: conntrack keeps the NAT of existing flows.
	if got := seenFrom(t, a, outsideAddr4); got != a.IPv4.String() {
		t.Errorf("without the rule the outside host saw %s, want the pod's %s", got, a.IPv4)
	}

	// Destinations listed as non-masquerade keep the pod's address.
	keep := sandbox.New(append(append([]sandbox.Option(nil), e.opts...),
		sandbox.WithNonMasqueradeCIDRs("198.51.100.0/24", "2001:db8:51::/64"))...)
	if err := keep.EnsureMasquerade(); err != nil {
		t.Fatalf("EnsureMasquerade: %v", err)
	}
	if got := seenFrom(t, a, outsideAddr4); got != a.IPv4.String() {
		t.Errorf("non-masquerade CIDR: outside host saw %s, want the pod's %s", got, a.IPv4)
	}
	if got := seenFrom(t, a, outsideAddr6); got != a.IPv6.String() {
		t.Errorf("non-masquerade CIDR: outside host saw %s, want the pod's %s", got, a.IPv6)
	}
	// EnsureMasquerade replaces the table: the default Manager's rule masquerades again.
	if err := e.m.EnsureMasquerade(); err != nil {
		t.Fatalf("EnsureMasquerade: %v", err)
	}
	if got := seenFrom(t, a, outsideAddr4); got != outsideHost4 {
		t.Errorf("after EnsureMasquerade the outside host saw %s, want %s", got, outsideHost4)
	}

	bad := sandbox.New(sandbox.WithDataDir(t.TempDir()), sandbox.WithMasqueradeTable(testNATTbl),
		sandbox.WithNonMasqueradeCIDRs("not-a-cidr"))
	if err := bad.EnsureMasquerade(); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("EnsureMasquerade with a bad CIDR: %v, want ErrInvalidArgument", err)
	}
	if _, err := bad.Setup(context.Background(), sandbox.PodRef{UID: "pod-bad", Name: "bad"}, nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("Setup with a bad non-masquerade CIDR: %v, want ErrInvalidArgument", err)
	}
}

// serveRemoteAddr serves the caller's address inside the sandbox on [::]:testPort.
func serveRemoteAddr(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	var l net.Listener
	if err := inNetNS(sb.NetNSPath, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", testPort))
		return err
	}); err != nil {
		t.Fatalf("listening in %s: %v", sb.UID, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, net.ParseIP(host).String())
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func hasTable(t *testing.T, name string) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}
