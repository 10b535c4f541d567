// Package manifest turns a tree of Kubernetes-style YAML files into typed objects
// (k8s.io/api types plus gantry's External Secrets shapes), validates them as the
// Kubernetes API server would for the fields gantry supports, applies Kubernetes
// defaults, and reports every problem with file:line:column.
//
// It owns the supported-field table that docs/COMPATIBILITY.md is generated from.
// It never does I/O beyond reading the files it is asked to load.
package manifest
