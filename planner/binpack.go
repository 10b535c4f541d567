package planner

// binpackScorer scores a node 0–100 by how full it would be with the pod, averaged
// over CPU and memory: MostAllocated (default) prefers full nodes, packing pods so
// whole nodes stay free; LeastAllocated prefers empty ones.
type binpackScorer struct{ least bool }

func (binpackScorer) weight() int64 { return 1 }

func (b binpackScorer) score(c *candidate, h *nodeHot) int64 {
	var sum, k int64
	if h.allocCPU > 0 {
		sum += (h.allocCPU - h.freeCPU + c.cpu) * 100 / h.allocCPU
		k++
	}
	if h.allocMem > 0 {
		sum += (h.allocMem - h.freeMem + c.mem) * 100 / h.allocMem
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
