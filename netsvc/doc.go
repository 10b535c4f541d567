// Package netsvc gives pods service discovery on each node: ClusterIP and NodePort
// virtual IPs programmed in nftables over ready endpoints, a DNS server for
// <svc>.<ns>.svc.cluster.local, and routes to other nodes' pod CIDRs.
package netsvc
