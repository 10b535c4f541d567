// Package sandbox owns a pod's network sandbox on one node: a network namespace per pod,
// pinned under the agent's data dir (lo brought up by this package) and wired by a CNI
// plugin chain (bridge with host-local IPAM in dual stack, portmap for hostPorts), plus
// the per-pod /etc/hostname, /etc/hosts and /etc/resolv.conf files that the executor
// bind-mounts into every container of the pod, and the node-wide masquerade of the pod
// CIDRs: one nftables table of its own (inet gantry-nat), never netsvc's table.
//
// Setup builds a sandbox in one call; Begin builds the netns and files at once and runs
// the CNI ADD in the background (Pending.Wait), so that the executor can create the pod's
// first container meanwhile and start it once the network is there.
//
// What Setup returned is persisted as JSON in the data dir, so a restarted agent finds its
// sandboxes again with List and Get. Teardown leaves nothing behind: no netns, veth, IP
// lease, portmap rule or file.
//
// The package never talks to containerd and never decides which pods should exist; the
// executor core calls it. The netns is created with unshare(2) and a bind mount, the
// masquerade table through netlink (google/nftables); the CNI plugins (run by libcni)
// touch links and portmap's iptables rules. It shells out only to clean up after
// failures: iptables-save/-restore for stale plugin rules of a dead netns, and
// nsenter + ip to delete a pod interface when CNI DEL cannot run on a failed Setup.
package sandbox
