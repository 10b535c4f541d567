// Package metrics samples per-container CPU usage and memory working set from
// containerd's task metrics (cgroups v1 and v2), keeps the last two samples per
// container to compute CPU cores in use, and exposes them to the autoscaler (Reader)
// and to Prometheus (Collector).
//
// It owns decoding and arithmetic only: which containers exist and how to fetch a
// task's metrics is the executor core's, behind Source. It never talks to containerd
// itself and never writes cgroup files.
package metrics
