// Package netsvc gives pods service discovery on each node: ClusterIP and NodePort
// virtual IPs programmed in nftables over ready endpoints (Proxy), a DNS server for
// <svc>.<ns>.svc.<domain> (DNS), host-gw routes to the other nodes' pod CIDRs
// (Routes), and the helpers that feed them (Endpoints, ResolvConf). Its subpackage
// ipalloc allocates the VIPs and NodePorts in the control plane.
//
// netsvc owns the "gantry" nftables table (inet family) of the network namespace it
// is given and nothing else: it never touches other tables, never shells out to the
// nft or ip commands, never touches a route whose protocol is not gantry's (0x67), and never talks to a resolver other than the upstreams it is
// configured with. Its input is plain data (State) so that the source of endpoints
// (the control plane's API) and the agent wiring stay outside the package.
//
// See README.md for the rule set's layout and the decisions taken.
package netsvc
