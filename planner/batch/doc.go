// Package batch holds the pure decisions of Jobs and CronJobs (batch/v1): when a
// CronJob's next run is due and which Job it creates, which finished runs to prune,
// and, for one Job run, which pods to create or stop and what its status becomes.
//
// It owns the Kubernetes semantics of batch/v1 as far as they are decisions:
// schedules (robfig/cron five-field specs and descriptors, spec.timeZone, CRON_TZ=),
// missed start times and startingDeadlineSeconds, concurrencyPolicy, suspend,
// history limits, completions, parallelism, completionMode Indexed, backoffLimit
// with its 10 s … 6 min back-off, activeDeadlineSeconds, ttlSecondsAfterFinished, and
// the GitOps rule that a changed Job spec is a new run (RunName, SpecHash).
//
// It must never do I/O, read the clock or use global randomness: time and seeds
// are arguments, and equal arguments give equal results, so every decision can be
// replayed in a test. The one exception is time zone data: a zone is loaded once
// (host zoneinfo, else the embedded time/tzdata) and cached for the process. It never imports a client of containerd, etcd, git or Vault
// (the planner's import rules apply). The caller (package planner, then the control
// plane) stores the results with compare-and-swap; see README.md for the contract.
package batch
