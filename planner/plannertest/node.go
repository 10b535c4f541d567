package plannertest

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeBuilder builds a *corev1.Node. A new node is Ready, schedulable, labelled
// kubernetes.io/hostname=<name>, with 110 pods and no CPU or memory until set.
type NodeBuilder struct{ n *corev1.Node }

// Node starts a node named name.
func Node(name string) *NodeBuilder {
	n := &corev1.Node{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Capacity:    corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	return &NodeBuilder{n: n}
}

func (b *NodeBuilder) set(name corev1.ResourceName, q string) *NodeBuilder {
	v := resource.MustParse(q)
	b.n.Status.Capacity[name] = v
	b.n.Status.Allocatable[name] = v
	return b
}

// CPU sets capacity and allocatable CPU ("4", "500m"). Panics on a bad quantity
// (test fixtures only).
func (b *NodeBuilder) CPU(q string) *NodeBuilder { return b.set(corev1.ResourceCPU, q) }

// Mem sets capacity and allocatable memory ("8Gi").
func (b *NodeBuilder) Mem(q string) *NodeBuilder { return b.set(corev1.ResourceMemory, q) }

// Pods sets the pod capacity.
func (b *NodeBuilder) Pods(q string) *NodeBuilder { return b.set(corev1.ResourcePods, q) }

// Label adds a label.
func (b *NodeBuilder) Label(k, v string) *NodeBuilder { b.n.Labels[k] = v; return b }

// Taint adds a taint.
func (b *NodeBuilder) Taint(key, value string, effect corev1.TaintEffect) *NodeBuilder {
	b.n.Spec.Taints = append(b.n.Spec.Taints, corev1.Taint{Key: key, Value: value, Effect: effect})
	return b
}

// Unschedulable cordons the node.
func (b *NodeBuilder) Unschedulable() *NodeBuilder { b.n.Spec.Unschedulable = true; return b }

// NotReady sets the Ready condition to False since t.
func (b *NodeBuilder) NotReady(since time.Time) *NodeBuilder {
	b.n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionFalse,
		LastTransitionTime: metav1.NewTime(since)}}
	return b
}

// Obj returns the node.
func (b *NodeBuilder) Obj() *corev1.Node { return b.n }
