// Package planner decides: given desired state, observed pods, nodes and each app's
// remembered state, Compute returns a Plan of placements, stops, preemptions,
// adoptions and app state changes, each with a reason, plus every app's status.
//
// It owns Deployment revisions (pod-template hashes), the placement pipeline
// (filter → score → select over a seeded node shuffle), priority and preemption,
// RollingUpdate and Recreate rollouts, automatic rollback, replacement of pods on
// lost nodes, prune and adoption. README.md draws the pipeline and lists the
// decisions where gantry differs from Kubernetes.
//
// It is pure. It must never do I/O, read the clock, or use global randomness; time and
// seeds arrive in its Input. It must never import executor, containerd, go-git, vault
// or etcd packages (a test enforces this).
package planner
