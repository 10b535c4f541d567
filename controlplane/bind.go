package controlplane

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/store"
)

// bindFirstFit binds a pod created without spec.nodeName to the first node, in name
// order, that is Ready, schedulable, and has the pod's CPU and memory requests free
// in its allocatable capacity. It is the stop-gap of issue #4 for `gantry apply`;
// the planner replaces it. When nothing fits the pod stays unbound and Pending with
// a PodScheduled=False condition that says why.
func (s *Server) bindFirstFit(ctx context.Context, p *corev1.Pod) error {
	nodes, err := s.st.Nodes().List(ctx, "", store.ListOptions{})
	if err != nil {
		return err
	}
	want := podRequests(p)
	var reasons []string
	for _, n := range nodes.Items {
		if !nodeReady(n) || n.Spec.Unschedulable {
			reasons = append(reasons, n.Name+": not ready")
			continue
		}
		bound, err := s.st.Pods().List(ctx, "", store.ListOptions{Filter: func(o store.Object) bool {
			return o.(*corev1.Pod).Spec.NodeName == n.Name
		}})
		if err != nil {
			return err
		}
		used := corev1.ResourceList{}
		for _, bp := range bound.Items {
			if bp.Status.Phase == corev1.PodSucceeded || bp.Status.Phase == corev1.PodFailed {
				continue
			}
			addResources(used, podRequests(bp))
		}
		if why := fits(want, used, n.Status.Allocatable); why != "" {
			reasons = append(reasons, n.Name+": "+why)
			continue
		}
		p.Spec.NodeName = n.Name
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
			Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(s.opts.now()),
		})
		return nil
	}
	msg := "no nodes"
	if len(reasons) > 0 {
		msg = strings.Join(reasons, "; ")
	}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: "0/" + fmt.Sprint(len(nodes.Items)) + " nodes fit: " + msg, LastTransitionTime: metav1.NewTime(s.opts.now()),
	})
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podRequests sums the containers' CPU and memory requests (limits stand in for
// missing requests, as in Kubernetes).
func podRequests(p *corev1.Pod) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := c.Resources.Requests[r]
			if !ok {
				q, ok = c.Resources.Limits[r]
			}
			if ok {
				addResources(out, corev1.ResourceList{r: q})
			}
		}
	}
	return out
}

func addResources(dst, src corev1.ResourceList) {
	for k, v := range src {
		cur := dst[k]
		cur.Add(v)
		dst[k] = cur
	}
}

// fits returns "" if want fits into allocatable minus used, else the reason.
func fits(want, used, allocatable corev1.ResourceList) string {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		w, ok := want[r]
		if !ok || w.IsZero() {
			continue
		}
		alloc, ok := allocatable[r]
		if !ok {
			continue // a node that reports no capacity is not filtered on it
		}
		free := alloc.DeepCopy()
		u := used[r]
		free.Sub(u)
		if free.Cmp(w) < 0 {
			nn := nonNegative(free)
			return fmt.Sprintf("insufficient %s: requested %s, free %s", r, w.String(), nn.String())
		}
	}
	return ""
}

func nonNegative(q resource.Quantity) resource.Quantity {
	if q.Sign() < 0 {
		return resource.Quantity{}
	}
	return q
}
