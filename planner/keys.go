package planner

import "gantry.io/gantry/api"

// Keys the planner writes on the pods it creates and reads back from observed pods.
const (
	// LabelPodTemplateHash is the Kubernetes label naming a pod's revision.
	LabelPodTemplateHash = "pod-template-hash"
	// AnnotationApp names the app (AppKey) that owns a pod.
	AnnotationApp = api.Domain + "/app"
	// AnnotationRevision is the revision number of the pod's template, for humans;
	// the pod-template-hash label is the identity.
	AnnotationRevision = api.Domain + "/revision"
	// LabelHostname is the well-known node label used as the per-node topology key.
	LabelHostname = "kubernetes.io/hostname"
)
