// Package backoff decides restarts: given a terminated container, its pod's
// restartPolicy and its back-off history, restart now, wait until a time, or do not
// restart; and the same doubling back-off for failed image pulls. It also names the
// container state reasons the executor reports (Completed, Error, OOMKilled,
// CrashLoopBackOff, …).
//
// The package is pure: no clock, no I/O, no goroutines. The caller passes "now" and
// keeps the small per-container state (a step count) between calls.
package backoff
