package planner

// nodeAffinityScorer scores preferred node affinity
// (preferredDuringSchedulingIgnoredDuringExecution): the matching terms' weights
// as a share of all the pod's weights, 0–100.
type nodeAffinityScorer struct{}

func (nodeAffinityScorer) weight() int64 { return 2 }

func (nodeAffinityScorer) score(c *candidate, h *nodeHot) int64 {
	if c.preferredTotal == 0 {
		return 0
	}
	if c.prefCache != nil {
		if v := c.prefCache.v[h.idx]; v >= 0 {
			return int64(v)
		}
	}
	n := h.node
	var w int64
	for i := range c.preferred {
		if matchNodeSelectorTerm(&c.preferred[i].Preference, n) {
			w += int64(c.preferred[i].Weight)
		}
	}
	s := w * 100 / c.preferredTotal
	if c.prefCache != nil {
		c.prefCache.v[h.idx] = int16(s)
	}
	return s
}

// preferenceCache remembers, per node, the preferred-affinity score of one set of
// preferred terms (-1: not computed yet).
type preferenceCache struct{ v []int16 }

var _ scorer = nodeAffinityScorer{}
