// Package probe runs container probes with Kubernetes semantics: one attempt of an
// exec, httpGet, tcpSocket or grpc handler (Run), and a Worker that applies
// initialDelaySeconds, periodSeconds, timeoutSeconds, successThreshold and
// failureThreshold for one probe of one container, with an injected Clock.
//
// The package owns probe decisions only. It never touches containerd: exec probes go
// through Target.Exec, which the executor core supplies (task.Exec), and it never
// restarts a container or changes pod status itself — it reports through callbacks and
// the executor acts. Network probes only dial the address the Target names (the pod's
// IP, or the httpGet host the manifest sets).
package probe
