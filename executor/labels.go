package executor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// Labels set on every containerd container gantry creates. A restarted agent reads them
// back to adopt running containers without restarting them.
const (
	LabelPodUID       = api.Domain + "/pod-uid"
	LabelPodNamespace = api.Domain + "/pod-namespace"
	LabelPodName      = api.Domain + "/pod-name"
	LabelContainer    = api.Domain + "/container"
	LabelRestartCount = api.Domain + "/restart-count"
	LabelSpecHash     = api.Domain + "/spec-hash"
	// LabelInit is "true" on init containers.
	LabelInit = api.Domain + "/init"
	// LabelStartedAt is the RFC 3339 time the container was created and started.
	LabelStartedAt = api.Domain + "/started-at"
	// LabelExitCode is set once the task of an init container has exited; the container
	// is kept (without task) so a restarted agent knows the init step is done.
	LabelExitCode = api.Domain + "/exit-code"
	// LabelFinishedAt is the RFC 3339 time an init container's task exited.
	LabelFinishedAt = api.Domain + "/finished-at"
)

// SpecHash is the hash of a pod's spec that decides replacement: when the hash of the
// desired pod differs from the hash its containers carry, the pod is replaced (all
// containers stopped, sandbox torn down, started again). Metadata (labels,
// annotations) and status do not count.
func SpecHash(pod *corev1.Pod) string {
	b, err := json.Marshal(pod.Spec)
	if err != nil {
		// corev1.PodSpec always marshals; keep a stable value if it ever does not.
		return "unhashable"
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// containerID is the containerd ID of one run of a pod's container. It changes with the
// restart count, so a restarted container never collides with its predecessor.
func containerID(uid, name string, restart int32) string {
	return uid + "-" + name + "-" + strconv.Itoa(int(restart))
}

func containerLabels(pod *corev1.Pod, name string, init bool, restart int32, hash string) map[string]string {
	l := map[string]string{
		LabelPodUID:       string(pod.UID),
		LabelPodNamespace: pod.Namespace,
		LabelPodName:      pod.Name,
		LabelContainer:    name,
		LabelRestartCount: strconv.Itoa(int(restart)),
		LabelSpecHash:     hash,
	}
	if init {
		l[LabelInit] = "true"
	}
	return l
}
