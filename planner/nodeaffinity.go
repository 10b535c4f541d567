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
	n := h.node
	var w int64
	for i := range c.preferred {
		if matchNodeSelectorTerm(&c.preferred[i].Preference, n) {
			w += int64(c.preferred[i].Weight)
		}
	}
	return w * 100 / c.preferredTotal
}

var _ scorer = nodeAffinityScorer{}
