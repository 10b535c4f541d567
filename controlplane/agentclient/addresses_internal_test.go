package agentclient

import (
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
)

// TestNodeAddressesBothFamilies: in a throwaway network namespace whose interface
// has an IPv4 and a global IPv6 address, a node advertised on the IPv4 one also
// registers the IPv6 one (after it), so other nodes can route its IPv6 pod CIDR;
// on loopback only (::1 is not global) it registers just the advertised address.
func TestNodeAddressesBothFamilies(t *testing.T) {
	testenv.Integration(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the test's netns: %v", err)
		}
		ns.Close()
	}()
	// A veth pair (the dummy module may be absent); only one end gets addresses.
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gaddr0"}, PeerName: "gaddr1"}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.77.0.5/24", "fd77::5/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = 0x02 // IFA_F_NODAD: no tentative phase
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatalf("add %s: %v", a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	got := nodeAddresses("10.77.0.5", "h1")
	want := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.77.0.5"}, {Type: corev1.NodeInternalIP, Address: "fd77::5"}, {Type: corev1.NodeHostName, Address: "h1"}}
	if len(got) != len(want) {
		t.Fatalf("nodeAddresses = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("nodeAddresses = %v, want %v", got, want)
		}
	}
	if got := otherFamilyAddr("fd77::5"); net.ParseIP(got).String() != "10.77.0.5" {
		t.Errorf("otherFamilyAddr(fd77::5) = %q, want 10.77.0.5", got)
	}
	if got := nodeAddresses("127.0.0.1", "h1"); len(got) != 2 {
		t.Errorf("loopback node: %v, want the advertised address and the hostname only", got)
	}
}
