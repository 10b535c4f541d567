// Package controlplane is gantry's server: the HTTP API and its authentication, the
// reconcile loop (leader only), node lifecycle, leader election and the agent protocol.
// It may import every package except executor.
package controlplane
