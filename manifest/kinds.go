package manifest

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// kindInfo is what the loader knows about one supported kind.
type kindInfo struct {
	kind        string
	apiVersions []string
	namespaced  bool
	newObj      func() any
	support     *supportNode
	meta        func(obj any) *metav1.ObjectMeta
	// template returns the pod template of workload kinds (nil otherwise).
	template func(obj any) *workload
}

// workload is the pod template of a Pod, Deployment, Job or CronJob.
type workload struct {
	labels map[string]string
	spec   *corev1.PodSpec
	path   *field.Path // path of spec in the document
}

var kinds = map[string]*kindInfo{}

// kindsByAPI maps "apiVersion/kind" to its kind.
var kindsByAPI = map[string]*kindInfo{}

func init() {
	reg := func(k *kindInfo) {
		for _, sec := range SupportTable {
			if sec.Kind == k.kind {
				k.apiVersions = sec.APIVersions
				k.support = supportTree(sec)
			}
		}
		if k.support == nil {
			panic("manifest: kind " + k.kind + " has no section in SupportTable")
		}
		kinds[k.kind] = k
		for _, v := range k.apiVersions {
			kindsByAPI[v+"/"+k.kind] = k
		}
	}
	reg(&kindInfo{kind: "Namespace", newObj: func() any { return &corev1.Namespace{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*corev1.Namespace).ObjectMeta }})
	reg(&kindInfo{kind: "ConfigMap", namespaced: true, newObj: func() any { return &corev1.ConfigMap{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*corev1.ConfigMap).ObjectMeta }})
	reg(&kindInfo{kind: "Secret", namespaced: true, newObj: func() any { return &corev1.Secret{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*corev1.Secret).ObjectMeta }})
	reg(&kindInfo{kind: "Pod", namespaced: true, newObj: func() any { return &corev1.Pod{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*corev1.Pod).ObjectMeta },
		template: func(o any) *workload {
			p := o.(*corev1.Pod)
			return &workload{labels: p.Labels, spec: &p.Spec, path: field.NewPath("spec")}
		}})
	reg(&kindInfo{kind: "Deployment", namespaced: true, newObj: func() any { return &appsv1.Deployment{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*appsv1.Deployment).ObjectMeta },
		template: func(o any) *workload {
			d := o.(*appsv1.Deployment)
			return &workload{labels: d.Spec.Template.Labels, spec: &d.Spec.Template.Spec, path: field.NewPath("spec", "template", "spec")}
		}})
	reg(&kindInfo{kind: "Job", namespaced: true, newObj: func() any { return &batchv1.Job{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*batchv1.Job).ObjectMeta },
		template: func(o any) *workload {
			j := o.(*batchv1.Job)
			return &workload{labels: j.Spec.Template.Labels, spec: &j.Spec.Template.Spec, path: field.NewPath("spec", "template", "spec")}
		}})
	reg(&kindInfo{kind: "CronJob", namespaced: true, newObj: func() any { return &batchv1.CronJob{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*batchv1.CronJob).ObjectMeta },
		template: func(o any) *workload {
			c := o.(*batchv1.CronJob)
			t := &c.Spec.JobTemplate.Spec.Template
			return &workload{labels: t.Labels, spec: &t.Spec, path: field.NewPath("spec", "jobTemplate", "spec", "template", "spec")}
		}})
	reg(&kindInfo{kind: "Service", namespaced: true, newObj: func() any { return &corev1.Service{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*corev1.Service).ObjectMeta }})
	reg(&kindInfo{kind: "SecretStore", namespaced: true, newObj: func() any { return &SecretStore{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*SecretStore).ObjectMeta }})
	reg(&kindInfo{kind: "ClusterSecretStore", newObj: func() any { return &SecretStore{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*SecretStore).ObjectMeta }})
	reg(&kindInfo{kind: "ExternalSecret", namespaced: true, newObj: func() any { return &ExternalSecret{} },
		meta: func(o any) *metav1.ObjectMeta { return &o.(*ExternalSecret).ObjectMeta }})
}

// notYet lists Kubernetes (and External Secrets) kinds that gantry recognises but does
// not implement yet.
var notYet = map[string]bool{
	"DaemonSet": true, "StatefulSet": true, "ReplicaSet": true, "ReplicationController": true,
	"PersistentVolumeClaim": true, "PersistentVolume": true, "StorageClass": true,
	"HorizontalPodAutoscaler": true, "Ingress": true, "IngressClass": true, "NetworkPolicy": true,
	"ServiceAccount": true, "Role": true, "RoleBinding": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "PodDisruptionBudget": true, "Endpoints": true,
	"EndpointSlice": true, "LimitRange": true, "ResourceQuota": true, "PriorityClass": true,
	"CustomResourceDefinition": true, "PodTemplate": true, "RuntimeClass": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ClusterExternalSecret": true, "PushSecret": true, "Gateway": true, "HTTPRoute": true,
}

// supportedKindList renders "v1 ConfigMap, apps/v1 Deployment, …" for messages.
func supportedKindList() string {
	var parts []string
	for _, sec := range SupportTable {
		parts = append(parts, sec.APIVersions[0]+" "+sec.Kind)
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// lookupKind finds the kind of apiVersion/kind, or explains why there is none.
func lookupKind(apiVersion, kind string) (*kindInfo, string) {
	if k := kindsByAPI[apiVersion+"/"+kind]; k != nil {
		return k, ""
	}
	if k := kinds[kind]; k != nil {
		return nil, fmt.Sprintf("apiVersion %q is not supported for kind %s; use %s", apiVersion, kind, strings.Join(k.apiVersions, " or "))
	}
	if kind == "Kustomization" {
		return nil, "kustomization files are not supported yet; commit the output of `kustomize build` instead"
	}
	if notYet[kind] {
		return nil, fmt.Sprintf("kind %s is not supported yet (supported: %s)", kind, supportedKindList())
	}
	return nil, fmt.Sprintf("unknown kind %q of apiVersion %q (supported: %s)", kind, apiVersion, supportedKindList())
}
