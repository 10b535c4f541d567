package sandbox

import (
	"errors"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// prepareBridge creates the node's pod bridge, when it does not exist yet, with IPv6
// duplicate address detection off, before the bridge plugin first runs. The plugin then
// finds the bridge and adds its gateway addresses to it; without DAD they are usable at
// once, where a bridge the plugin creates itself keeps its IPv6 gateway address
// tentative for about a second — the first pod of every node waited for that. DAD is
// pointless on a bridge whose only peers are the node's own pods, whose addresses
// host-local IPAM hands out without overlap.
//
// It is best effort: on any failure the bridge plugin creates the bridge as before and
// Setup waits for the address to settle (waitIPv6Settled), so the outcome is the same,
// only slower.
func prepareBridge(name string) {
	if name == "" || strings.ContainsAny(name, "/.") || len(name) >= unix.IFNAMSIZ {
		return
	}
	if _, err := netlink.LinkByName(name); err == nil {
		return
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
		return
	}
	// The per-interface sysctl exists once the link does; failing to write it only
	// means the slower path.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/accept_dad", []byte("0"), 0o644)
	_ = netlink.LinkSetUp(br)
}
