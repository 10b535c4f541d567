package manifest

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
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
