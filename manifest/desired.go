package manifest

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Position is where something stands in a loaded file. Line and Col are 1-based;
// File is relative to the directory given to Load.
type Position struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// Object is one decoded, defaulted document with its origin.
type Object struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"` // empty for cluster-scoped kinds
	Name       string   `json:"name"`
	Source     Position `json:"source"` // the document's first line
	// Typed is the decoded object: *corev1.Pod, *appsv1.Deployment, *SecretStore, …
	Typed any `json:"-"`
}

// Desired is the whole desired state of one repository revision, grouped by kind.
// Every slice is sorted by (namespace, name). Objects lists every document in file order.
// Only objects without errors are included; a nil *Desired is safe to call methods on
// and reads as empty.
type Desired struct {
	Namespaces          []*corev1.Namespace
	Pods                []*corev1.Pod
	Deployments         []*appsv1.Deployment
	Services            []*corev1.Service
	ConfigMaps          []*corev1.ConfigMap
	Secrets             []*corev1.Secret
	Jobs                []*batchv1.Job
	CronJobs            []*batchv1.CronJob
	SecretStores        []*SecretStore
	ClusterSecretStores []*SecretStore
	ExternalSecrets     []*ExternalSecret

	Objects []Object
}

// assemble builds the Desired of the entries without errors.
func assemble(entries []*entry) *Desired {
	d := &Desired{}
	for _, e := range entries {
		if e.failed || e.obj == nil {
			continue
		}
		d.Objects = append(d.Objects, Object{
			APIVersion: apiVersionOf(e),
			Kind:       e.info.kind,
			Namespace:  e.meta.Namespace,
			Name:       e.meta.Name,
			Source:     e.doc.start(),
			Typed:      e.obj,
		})
		switch o := e.obj.(type) {
		case *corev1.Namespace:
			d.Namespaces = append(d.Namespaces, o)
		case *corev1.Pod:
			d.Pods = append(d.Pods, o)
		case *appsv1.Deployment:
			d.Deployments = append(d.Deployments, o)
		case *corev1.Service:
			d.Services = append(d.Services, o)
		case *corev1.ConfigMap:
			d.ConfigMaps = append(d.ConfigMaps, o)
		case *corev1.Secret:
			d.Secrets = append(d.Secrets, o)
		case *batchv1.Job:
			d.Jobs = append(d.Jobs, o)
		case *batchv1.CronJob:
			d.CronJobs = append(d.CronJobs, o)
		case *SecretStore:
			if e.info.kind == "ClusterSecretStore" {
				d.ClusterSecretStores = append(d.ClusterSecretStores, o)
			} else {
				d.SecretStores = append(d.SecretStores, o)
			}
		case *ExternalSecret:
			d.ExternalSecrets = append(d.ExternalSecrets, o)
		}
	}
	sortByKey(d.Namespaces)
	sortByKey(d.Pods)
	sortByKey(d.Deployments)
	sortByKey(d.Services)
	sortByKey(d.ConfigMaps)
	sortByKey(d.Secrets)
	sortByKey(d.Jobs)
	sortByKey(d.CronJobs)
	sortByKey(d.SecretStores)
	sortByKey(d.ClusterSecretStores)
	sortByKey(d.ExternalSecrets)
	return d
}

func apiVersionOf(e *entry) string {
	if tm, ok := e.obj.(interface{ GetObjectKind() schema.ObjectKind }); ok {
		if v := tm.GetObjectKind().GroupVersionKind().GroupVersion().String(); v != "" {
			return v
		}
	}
	return e.info.apiVersions[0]
}

func sortByKey[T metav1.Object](list []T) {
	sort.SliceStable(list, func(i, j int) bool {
		if list[i].GetNamespace() != list[j].GetNamespace() {
			return list[i].GetNamespace() < list[j].GetNamespace()
		}
		return list[i].GetName() < list[j].GetName()
	})
}

// Len is the number of objects; 0 for a nil Desired.
func (d *Desired) Len() int {
	if d == nil {
		return 0
	}
	return len(d.Objects)
}

// Lookup returns the object of kind in namespace ("" for cluster-scoped kinds) with
// name. It is safe on a nil Desired.
func (d *Desired) Lookup(kind, namespace, name string) (Object, bool) {
	if d == nil {
		return Object{}, false
	}
	for _, o := range d.Objects {
		if o.Kind == kind && o.Namespace == namespace && o.Name == name {
			return o, true
		}
	}
	return Object{}, false
}

// Deployment returns the Deployment namespace/name, or nil (also on a nil Desired).
func (d *Desired) Deployment(namespace, name string) *appsv1.Deployment {
	if d == nil {
		return nil
	}
	for _, x := range d.Deployments {
		if x.Namespace == namespace && x.Name == name {
			return x
		}
	}
	return nil
}
