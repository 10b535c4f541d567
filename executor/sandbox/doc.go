// Package sandbox owns a pod's network sandbox on one node: a network namespace per pod,
// pinned under the agent's data dir and wired by a CNI plugin chain (loopback, bridge with
// host-local IPAM in dual stack, portmap for hostPorts), plus the per-pod /etc/hostname,
// /etc/hosts and /etc/resolv.conf files that the executor bind-mounts into every container
// of the pod.
//
// What Setup returned is persisted as JSON in the data dir, so a restarted agent finds its
// sandboxes again with List and Get. Teardown leaves nothing behind: no netns, veth, IP
// lease, portmap rule or file.
//
// The package never talks to containerd and never decides which pods should exist; the
// executor core calls it. It shells out to nothing: the netns is created with unshare(2)
// and a bind mount, and only the CNI plugins (run by libcni) touch links and iptables.
package sandbox
