package planner

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// nodeReadyFilter rejects nodes that are not Ready or are cordoned
// (spec.unschedulable).
type nodeReadyFilter struct{}

func (nodeReadyFilter) check(_ *candidate, n *nodeInfo) rejection {
	if !n.ready {
		return rejection{code: rejNotReady}
	}
	if n.unschedulable {
		return rejection{code: rejUnschedulable}
	}
	return rejection{}
}

// nodeReady reads the Ready condition. A node without one is not ready; since is
// the condition's lastTransitionTime when it is not True.
func nodeReady(n *corev1.Node) (ready bool, since time.Time) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				return true, time.Time{}
			}
			return false, c.LastTransitionTime.Time
		}
	}
	return false, time.Time{}
}

var _ filter = nodeReadyFilter{}
