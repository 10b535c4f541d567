package planner

import (
	"encoding/json"
	"hash/fnv"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// TemplateHash is the revision identity of a pod template, like the
// pod-template-hash of a Kubernetes ReplicaSet: FNV-32a over the template's JSON
// encoding (map keys sorted, so it is stable), rendered in the safe alphabet
// Kubernetes uses for generated names. Equal templates give equal hashes.
func TemplateHash(t *corev1.PodTemplateSpec) string {
	h := fnv.New32a()
	b, err := json.Marshal(t)
	if err != nil {
		// PodTemplateSpec always marshals; fall back to a hash of nothing rather
		// than panicking on an impossible input.
		b = nil
	}
	_, _ = h.Write(b)
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}
