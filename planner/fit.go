package planner

// fitFilter rejects nodes without room for the pod's requests (memory, then CPU,
// then the pod count). Requests are counted by podRequests: containers summed, init
// containers by the max rule, plus overhead. Pods without requests fit anywhere
// with a free pod slot.
type fitFilter struct{}

func (fitFilter) check(c *candidate, n *nodeInfo) rejection {
	if c.mem > n.freeMem() {
		return rejection{code: rejMemory, need: c.mem, free: n.freeMem()}
	}
	if c.cpu > n.freeCPU() {
		return rejection{code: rejCPU, need: c.cpu, free: n.freeCPU()}
	}
	if n.freePods() < 1 {
		return rejection{code: rejPods, need: 1, free: n.allocPods}
	}
	return rejection{}
}

var _ filter = fitFilter{}
