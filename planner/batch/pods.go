package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Keys set on the pods of a Job, as Kubernetes sets them.
const (
	LabelJobName           = "batch.kubernetes.io/job-name"
	LabelJobNameLegacy     = "job-name"
	LabelControllerUID     = "batch.kubernetes.io/controller-uid"
	LabelControllerUIDOld  = "controller-uid"
	LabelCompletionIndex   = "batch.kubernetes.io/job-completion-index"
	AnnotationCompletionIx = "batch.kubernetes.io/job-completion-index"
	// EnvCompletionIndex is set in every container of an Indexed Job's pod.
	EnvCompletionIndex = "JOB_COMPLETION_INDEX"
)

// suffixAlphabet is the alphabet of Kubernetes generated names (no vowels, no
// look-alikes), so suffixes never spell words.
const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// ControllerUID is the value of the controller-uid labels of job's pods: job.UID
// when set, else a UUID-shaped digest of namespace, name and SpecHash, so a run
// stored without a UID still has a stable identity.
func ControllerUID(job *batchv1.Job) string {
	if job.UID != "" {
		return string(job.UID)
	}
	sum := sha256.Sum256([]byte(job.Namespace + "/" + job.Name + "/" + SpecHash(job)))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// podSuffix is the n-th deterministic 5-character suffix of job's pods for seed.
func podSuffix(seed int64, job string, n int) string {
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%d/%s/%d", seed, job, n)
	v := h.Sum64()
	b := make([]byte, 5)
	for i := range b {
		b[i] = suffixAlphabet[v%uint64(len(suffixAlphabet))]
		v /= uint64(len(suffixAlphabet))
	}
	return string(b)
}

// podIndex is the completion index of an Indexed Job's pod, or -1.
func podIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[AnnotationCompletionIx]
	if !ok {
		v, ok = p.Labels[LabelCompletionIndex]
	}
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// newPod builds the pod named name of job from its template; index < 0 for
// NonIndexed. The pod shares nothing with job.
func newPod(job *batchv1.Job, name string, index int, uid string) *corev1.Pod {
	tmpl := job.Spec.Template.DeepCopy()
	labels := map[string]string{}
	for k, v := range tmpl.Labels {
		labels[k] = v
	}
	labels[LabelJobName] = job.Name
	labels[LabelJobNameLegacy] = job.Name
	labels[LabelControllerUID] = uid
	labels[LabelControllerUIDOld] = uid
	annotations := map[string]string{}
	for k, v := range tmpl.Annotations {
		annotations[k] = v
	}
	spec := tmpl.Spec
	if index >= 0 {
		ix := strconv.Itoa(index)
		labels[LabelCompletionIndex] = ix
		annotations[AnnotationCompletionIx] = ix
		if spec.Hostname == "" {
			spec.Hostname = hostname(job.Name, ix)
		}
		for i := range spec.InitContainers {
			spec.InitContainers[i].Env = withIndexEnv(spec.InitContainers[i].Env, ix)
		}
		for i := range spec.Containers {
			spec.Containers[i].Env = withIndexEnv(spec.Containers[i].Env, ix)
		}
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	yes := true
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   job.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: spec,
	}
}

// withIndexEnv sets JOB_COMPLETION_INDEX first, replacing a template value, so the
// index is visible to later env entries that reference it.
func withIndexEnv(env []corev1.EnvVar, ix string) []corev1.EnvVar {
	out := []corev1.EnvVar{{Name: EnvCompletionIndex, Value: ix}}
	for _, e := range env {
		if e.Name != EnvCompletionIndex {
			out = append(out, e)
		}
	}
	return out
}

// hostname is "<job>-<index>", the job part cut so the whole is a DNS label (63).
func hostname(job, ix string) string {
	if max := 63 - 1 - len(ix); len(job) > max {
		job = job[:max]
	}
	for len(job) > 0 && job[len(job)-1] == '-' {
		job = job[:len(job)-1]
	}
	return job + "-" + ix
}
