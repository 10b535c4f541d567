package netsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"gantry.io/gantry/api"
)

// crossNode is three "nodes" (network namespaces) joined by a Linux bridge that
// lives in a fourth namespace; node i has 192.168.77.i/24 and fd77::i/64 on
// eth0, and a "pod" address on its loopback, 10.77.i.1 and fd77:i::1, from its
// pod CIDRs 10.77.i.0/24 and fd77:i::/64.
type crossNode struct {
	paths [4]string // index 1..3
	nodes []Node
}

func newCrossNode(t *testing.T) *crossNode {
	t.Helper()
	br, _ := newNetNS(t, "rbr")
	sh(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", br, "link", "set", "br0", "up")
	c := &crossNode{}
	for i := 1; i <= 3; i++ {
		name, path := newNetNS(t, fmt.Sprintf("rn%d", i))
		c.paths[i] = path
		// The veth is created in the node's namespace; deleting either
		// namespace removes both ends.
		port := fmt.Sprintf("n%d-%s", i, name[len(name)-4:])
		sh(t, "ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		sh(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		sh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("192.168.77.%d/24", i), "dev", "eth0")
		sh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("fd77::%d/64", i), "dev", "eth0", "nodad")
		sh(t, "ip", "-n", name, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("10.77.%d.1/32", i), "dev", "lo")
		sh(t, "ip", "-n", name, "addr", "add", fmt.Sprintf("fd77:%d::1/128", i), "dev", "lo", "nodad")
		c.nodes = append(c.nodes, Node{
			Name:     fmt.Sprintf("node-%d", i),
			PodCIDRs: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.77.%d.0/24", i)), netip.MustParsePrefix(fmt.Sprintf("fd77:%d::/64", i))},
			Addrs:    []netip.Addr{addr(fmt.Sprintf("192.168.77.%d", i)), addr(fmt.Sprintf("fd77::%d", i))},
		})
	}
	return c
}

// echoServer listens on addr inside the namespace at path and echoes one line
// per connection.
func echoServer(t *testing.T, path, address string) {
	t.Helper()
	var ln net.Listener
	if err := inNetNS(path, func() (err error) { ln, err = net.Listen("tcp", address); return err }); err != nil {
		t.Fatalf("listen %s: %v", address, err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

// podDial connects from source (a pod address of the node at path) to target and
// checks an echo round trip.
func podDial(path string, source, target netip.AddrPort) error {
	var conn net.Conn
	err := inNetNS(path, func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: source.Addr().AsSlice()}}
		conn, err = d.Dial("tcp", target.String())
		return err
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("ping\n")); err != nil {
		return err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != "ping\n" {
		return fmt.Errorf("echo returned %q", buf)
	}
	return nil
}

func routesOf(t *testing.T, path string) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", "-n", path[len("/run/netns/"):], fam, "route", "show", "proto", "0x67").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route: %v\n%s", err, out)
		}
		b.Write(out)
	}
	return b.String()
}

func newTestRoutes(t *testing.T, node, path string) *Routes {
	t.Helper()
	r, err := NewRoutes(WithNodeName(node), WithRoutesNetNS(path))
	if err != nil {
		t.Fatalf("NewRoutes: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestRoutesCrossNodeTraffic(t *testing.T) {
	c := newCrossNode(t)
	for _, a := range []string{"10.77.3.1:7000", "[fd77:3::1]:7000"} {
		echoServer(t, c.paths[3], a)
	}
	podA4, podC4 := netip.MustParseAddrPort("10.77.1.1:0"), netip.MustParseAddrPort("10.77.3.1:7000")
	podA6, podC6 := netip.MustParseAddrPort("[fd77:1::1]:0"), netip.MustParseAddrPort("[fd77:3::1]:7000")

	// Without routes, node A cannot reach node C's pods.
	if err := podDial(c.paths[1], podA4, podC4); err == nil {
		t.Fatal("pod A reached pod C before any route was programmed")
	}

	// A foreign route and a stale gantry route (a node that left while the
	// agent was away) on node A: the first Sync keeps the one, removes the other.
	name1 := c.paths[1][len("/run/netns/"):]
	sh(t, "ip", "-n", name1, "route", "add", "10.99.0.0/24", "via", "192.168.77.2", "proto", "static")
	sh(t, "ip", "-n", name1, "route", "add", "10.77.9.0/24", "via", "192.168.77.2", "proto", "0x67")

	routes := map[int]*Routes{}
	for i := 1; i <= 3; i++ {
		routes[i] = newTestRoutes(t, c.nodes[i-1].Name, c.paths[i])
		if err := routes[i].Sync(context.Background(), c.nodes); err != nil {
			t.Fatalf("node %d Sync: %v", i, err)
		}
	}
	if s := routes[1].Stats(); s != (RouteStats{Added: 4, Deleted: 1}) {
		t.Errorf("node 1 first Sync stats = %+v, want 4 added, 1 deleted", s)
	}
	got := routesOf(t, c.paths[1])
	for _, want := range []string{"10.77.2.0/24 via 192.168.77.2", "10.77.3.0/24 via 192.168.77.3", "fd77:2::/64 via fd77::2", "fd77:3::/64 via fd77::3"} {
		if !strings.Contains(got, want) {
			t.Errorf("node 1 lacks route %q; gantry routes:\n%s", want, got)
		}
	}
	if strings.Contains(got, "10.77.1.0") || strings.Contains(got, "10.77.9.0") {
		t.Errorf("node 1 has a route to its own or a departed node's pods:\n%s", got)
	}
	out, _ := exec.Command("ip", "-n", name1, "route", "show", "10.99.0.0/24").CombinedOutput()
	if !strings.Contains(string(out), "via 192.168.77.2") {
		t.Errorf("the foreign route 10.99.0.0/24 was touched: %q", out)
	}

	// A second Sync with the same nodes writes nothing.
	if err := routes[1].Sync(context.Background(), c.nodes); err != nil {
		t.Fatal(err)
	}
	if s := routes[1].Stats(); s != (RouteStats{}) {
		t.Errorf("unchanged Sync wrote routes: %+v", s)
	}

	// Pod A → pod C, over both families (C answers through its own route to A).
	if err := podDial(c.paths[1], podA4, podC4); err != nil {
		t.Errorf("pod A → pod C over IPv4: %v", err)
	}
	if err := podDial(c.paths[1], podA6, podC6); err != nil {
		t.Errorf("pod A → pod C over IPv6: %v", err)
	}

	// Node C leaves: node A's routes to it go, and the connection fails at once.
	if err := routes[1].Sync(context.Background(), c.nodes[:2]); err != nil {
		t.Fatal(err)
	}
	if s := routes[1].Stats(); s != (RouteStats{Deleted: 2}) {
		t.Errorf("Sync without node C: stats %+v, want 2 deleted", s)
	}
	if got := routesOf(t, c.paths[1]); strings.Contains(got, "10.77.3.0") || strings.Contains(got, "fd77:3::") {
		t.Errorf("routes to node C remain:\n%s", got)
	}
	err := podDial(c.paths[1], podA4, podC4)
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("pod A → pod C after node C left: %v, want ENETUNREACH", err)
	}

	// Remove deletes every gantry route and nothing else.
	if err := routes[1].Remove(); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, c.paths[1]); got != "" {
		t.Errorf("gantry routes after Remove:\n%s", got)
	}
	out, _ = exec.Command("ip", "-n", name1, "route", "show", "10.99.0.0/24").CombinedOutput()
	if !strings.Contains(string(out), "via 192.168.77.2") {
		t.Errorf("Remove touched the foreign route: %q", out)
	}
}

// TestRoutesConflictAndBadInput: a pod CIDR with another protocol's route is
// reported and left alone; a node without an address of the CIDR's family is
// skipped.
func TestRoutesConflictAndBadInput(t *testing.T) {
	c := newCrossNode(t)
	name1 := c.paths[1][len("/run/netns/"):]
	sh(t, "ip", "-n", name1, "route", "add", "10.77.2.0/24", "via", "192.168.77.3", "proto", "static")
	r := newTestRoutes(t, "node-1", c.paths[1])
	nodes := append([]Node(nil), c.nodes...)
	nodes[2].Addrs = nodes[2].Addrs[:1] // node 3 without an IPv6 address
	err := r.Sync(context.Background(), nodes)
	if !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), "10.77.2.0/24") {
		t.Errorf("Sync over a foreign route: %v, want ErrConflict naming 10.77.2.0/24", err)
	}
	if s := r.Stats(); s != (RouteStats{Added: 2, Skipped: 1}) {
		t.Errorf("stats %+v, want 2 added (fd77:2::/64, 10.77.3.0/24), 1 skipped", s)
	}
	out, _ := exec.Command("ip", "-n", name1, "route", "show", "10.77.2.0/24").CombinedOutput()
	if !strings.Contains(string(out), "via 192.168.77.3") || !strings.Contains(string(out), "static") {
		t.Errorf("the foreign route was overwritten: %q", out)
	}

	if _, err := NewRoutes(WithRoutesNetNS(c.paths[1])); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("NewRoutes without a node name: %v, want ErrInvalidArgument", err)
	}
	if _, err := NewRoutes(WithNodeName("x"), WithRouteProtocol(4)); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("NewRoutes with protocol 4: %v, want ErrInvalidArgument", err)
	}
	r.Close()
	if err := r.Sync(context.Background(), nodes); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("Sync after Close: %v, want ErrFailedPrecondition", err)
	}
}
