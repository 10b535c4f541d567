// Package ipalloc allocates Service ClusterIPs from one IPv4 and one IPv6 service
// CIDR and NodePorts from a port range, in the control plane.
//
// It is pure and deterministic: no I/O, no clock, no randomness. The allocations
// go in and out as plain data (State) that the control plane stores with the rest
// of the cluster state, so they stay stable across restarts. A free address or
// port is found by hashing the service's name to a starting point and probing
// upward, so the same service on an empty allocator always gets the same VIP.
package ipalloc
