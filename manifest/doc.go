// Package manifest turns a tree of Kubernetes-style YAML files into typed objects
// (k8s.io/api types plus gantry's External Secrets shapes), validates them as the
// Kubernetes API server would for the fields gantry supports, applies Kubernetes
// defaults, and reports every problem with file:line:column.
//
// Entry points: Load (a directory or a file) and LoadFiles (an in-memory tree, as the
// git sync fetches it). Both return the Desired state of the objects without errors and
// every Diagnostic of the tree; a tree whose Diagnostics.HasErrors must not be applied.
// docs/MANIFESTS.md records the decisions (which files, defaults, references, store
// credentials).
//
// It owns the supported-field table (SupportTable, PodSpecFields) that drives the
// "not supported by gantry" check and docs/COMPATIBILITY.md. It never does I/O beyond
// reading the files it is asked to load, and never logs or echoes Secret values.
package manifest
