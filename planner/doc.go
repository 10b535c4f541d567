// Package planner decides: given desired state, observed state and nodes, Compute
// returns a Plan of placements, stops, rollout steps and job runs, each with a reason.
//
// It is pure. It must never do I/O, read the clock, or use global randomness; time and
// seeds arrive in its Input. It must never import executor, containerd, go-git, vault
// or etcd packages (a test enforces this).
package planner
