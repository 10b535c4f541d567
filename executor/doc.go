// Package executor runs pods on one node through containerd: a CNI network sandbox per
// pod, containers, volumes, probes, restarts, logs and metrics, and re-adoption of
// containers after an agent restart. It converges containerd to the pods it is given
// and reports what is true; it never decides placement and never imports controlplane.
//
// Its subpackages hold the parts that need no containerd: sandbox (netns + CNI),
// volumes, probe, backoff, logs and metrics. README.md has the state diagrams, the
// vocabulary (sandbox, run, spec hash, adopt) and the decisions this package made.
package executor
