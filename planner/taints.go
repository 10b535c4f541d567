package planner

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// taintFilter rejects nodes with a NoSchedule or NoExecute taint the pod does not
// tolerate. PreferNoSchedule taints do not filter.
type taintFilter struct{}

func (taintFilter) check(c *candidate, n *nodeInfo) rejection {
	for i := range n.taints {
		if !tolerated(c.tolerations, &n.taints[i]) {
			return rejection{code: rejTaint, taint: &n.taints[i]}
		}
	}
	return rejection{}
}

// tolerated reports whether any toleration matches the taint: same effect (or
// none given), same key (or none given, with operator Exists), and equal value
// (operator Equal, the default) or any value (Exists).
func tolerated(ts []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range ts {
		if toleratesTaint(&ts[i], taint) {
			return true
		}
	}
	return false
}

func toleratesTaint(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Key != "" && t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	}
	return false
}

// evictingTaint returns the first NoExecute taint of the node that the pod does
// not tolerate, or that it tolerates only for tolerationSeconds which have passed
// since the taint's timeAdded. Nil means the pod may stay.
func evictingTaint(spec *corev1.PodSpec, n *nodeInfo, now time.Time) *corev1.Taint {
	for i := range n.taints {
		t := &n.taints[i]
		if t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		var tol *corev1.Toleration
		for j := range spec.Tolerations {
			if toleratesTaint(&spec.Tolerations[j], t) {
				tol = &spec.Tolerations[j]
				break
			}
		}
		if tol == nil {
			return t
		}
		if tol.TolerationSeconds != nil && t.TimeAdded != nil {
			if now.Sub(t.TimeAdded.Time).Seconds() >= float64(*tol.TolerationSeconds) {
				return t
			}
		}
	}
	return nil
}

var _ filter = taintFilter{}
