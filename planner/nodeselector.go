package planner

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// nodeSelectorFilter enforces spec.nodeSelector and required node affinity
// (requiredDuringSchedulingIgnoredDuringExecution): every nodeSelector label must
// match, and at least one of the required terms must match.
type nodeSelectorFilter struct{}

func (nodeSelectorFilter) check(c *candidate, n *nodeInfo) rejection {
	if c.selCache != nil {
		switch c.selCache.v[n.idx] {
		case selMatch:
			return rejection{}
		case selNoSelector:
			return rejection{code: rejSelector}
		case selNoAffinity:
			return rejection{code: rejAffinity}
		}
		r := checkNodeSelector(c, n)
		c.selCache.v[n.idx] = selMatch
		switch r.code {
		case rejSelector:
			c.selCache.v[n.idx] = selNoSelector
		case rejAffinity:
			c.selCache.v[n.idx] = selNoAffinity
		}
		return r
	}
	return checkNodeSelector(c, n)
}

// selectorCache remembers, per node, the verdict of one (nodeSelector, required
// affinity) pair; candidates with equal pairs share it, since node labels do not
// change during a Compute.
type selectorCache struct{ v []uint8 }

const (
	selUnknown uint8 = iota
	selMatch
	selNoSelector
	selNoAffinity
)

func checkNodeSelector(c *candidate, n *nodeInfo) rejection {
	for k, v := range c.nodeSelector {
		if n.labels[k] != v {
			return rejection{code: rejSelector}
		}
	}
	if c.required != nil && !matchNodeSelector(c.required, n) {
		return rejection{code: rejAffinity}
	}
	return rejection{}
}

// matchNodeSelector: the terms are ORed; an empty term list matches nothing, as in
// Kubernetes.
func matchNodeSelector(s *corev1.NodeSelector, n *nodeInfo) bool {
	for i := range s.NodeSelectorTerms {
		if matchNodeSelectorTerm(&s.NodeSelectorTerms[i], n) {
			return true
		}
	}
	return false
}

// matchNodeSelectorTerm: the requirements of one term are ANDed; a term with no
// requirements matches nothing.
func matchNodeSelectorTerm(t *corev1.NodeSelectorTerm, n *nodeInfo) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		r := &t.MatchExpressions[i]
		v, has := n.labels[r.Key]
		if !matchRequirement(r, v, has) {
			return false
		}
	}
	for i := range t.MatchFields {
		r := &t.MatchFields[i]
		if r.Key != "metadata.name" || !matchRequirement(r, n.name, true) {
			return false
		}
	}
	return true
}

func matchRequirement(r *corev1.NodeSelectorRequirement, v string, has bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !has || !contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		nv, err1 := strconv.ParseInt(v, 10, 64)
		rv, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return nv > rv
		}
		return nv < rv
	}
	return false
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

var _ filter = nodeSelectorFilter{}
