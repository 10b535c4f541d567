// Package planner decides: given desired state, observed pods and Job runs, nodes
// and each app's remembered state, Compute returns a Plan of placements, stops,
// preemptions, adoptions, Job runs to create or delete and app state changes, each with a reason, plus every app's status.
//
// It owns Deployment revisions (pod-template hashes), the placement pipeline
// (filter → score → select over a seeded node shuffle), priority and preemption,
// RollingUpdate and Recreate rollouts, automatic rollback, replacement of pods on
// lost nodes, prune and adoption, and the wiring of Jobs and CronJobs (runs to
// create and delete, their pods placed like any other, their status, Plan.Wake);
// the batch/v1 decisions themselves are package planner/batch's. README.md draws the pipeline and lists the
// decisions where gantry differs from Kubernetes.
//
// It is pure. It must never do I/O, read the clock, or use global randomness; time and
// seeds arrive in its Input. It must never import executor, containerd, go-git, vault
// or etcd packages (a test enforces this).
package planner
