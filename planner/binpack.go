package planner

// binpackScorer scores a node 0–100 by how full it would be with the pod, averaged
// over CPU and memory: MostAllocated (default) prefers full nodes, packing pods so
// whole nodes stay free; LeastAllocated prefers empty ones.
type binpackScorer struct{ least bool }

func (binpackScorer) weight() int64 { return 1 }

func (b binpackScorer) score(c *candidate, n *nodeInfo) int64 {
	var sum, k int64
	if n.allocCPU > 0 {
		sum += (n.usedCPU + c.cpu) * 100 / n.allocCPU
		k++
	}
	if n.allocMem > 0 {
		sum += (n.usedMem + c.mem) * 100 / n.allocMem
		k++
	}
	if k == 0 {
		return 0
	}
	s := sum / k
	if s > 100 {
		s = 100
	}
	if b.least {
		return 100 - s
	}
	return s
}

var _ scorer = binpackScorer{}
