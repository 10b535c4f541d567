package store

import (
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// Nodes is the typed access to corev1.Node objects (cluster-scoped).
func (s *Store) Nodes() *Resource[corev1.Node, *corev1.Node] {
	return NewResource[corev1.Node](s, api.KindNode)
}

// Pods is the typed access to corev1.Pod objects. spec.nodeName is the binding;
// status is written by the node's agent.
func (s *Store) Pods() *Resource[corev1.Pod, *corev1.Pod] {
	return NewResource[corev1.Pod](s, api.KindPod)
}

// Events is the typed access to corev1.Event objects.
func (s *Store) Events() *Resource[corev1.Event, *corev1.Event] {
	return NewResource[corev1.Event](s, api.KindEvent)
}
