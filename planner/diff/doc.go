// Package diff compares two desired states (two git revisions of a repository) and
// says what the change would do to a cluster: per object (kind, namespace, name)
// created, changed or deleted, a field-level diff of what changed, and for workloads
// the rollout it causes (pod-template hash, pods replaced, at what rate). It also
// turns a planner.Plan of the head revision into a placement report, and renders
// all of it as text, markdown (a pull-request comment) or JSON for `gantry plan`.
//
// The package is pure: no I/O, no clock, no randomness. It never renders a secret
// value: Secret data and stringData, and credentials inside SecretStores, appear as
// keys and a fingerprint (a truncated SHA-256) only. ExternalSecrets carry no
// values, only Vault paths, which are shown.
package diff
