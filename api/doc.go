// Package api holds the cluster types shared by gantry's packages (nodes, pods and
// events are the Kubernetes core/v1 types; gantry's own types live here), the label and
// annotation keys gantry reserves, and the small set of error classes every layer wraps.
package api
