package planner

import (
	"fmt"
	"sort"
)

// preempt looks for one node where evicting lower-priority pods makes room for the
// candidate, and plans those evictions. Only nodes that refused the pod for lack of
// resources, and pass every other filter, are considered. On each it evicts the
// lowest-priority pods first (largest first among equals) until the pod fits, then
// spares every victim it can. The node with the fewest victims wins, then the
// lowest highest-victim priority, then the shuffle order. The pod itself is placed
// in a later plan, once the victims are gone; one preemption per node per plan.
func (c *cluster) preempt(p *pipeline, cd *candidate) bool {
	if cd.prio <= c.minPrio {
		return false
	}
	var bestNode *nodeInfo
	var best []*podRec
	n := len(c.order)
	for i := 0; i < n; i++ {
		node := c.nodes[c.order[i]]
		if node.preemptedFor != "" {
			continue
		}
		r := p.feasible(cd, node)
		if r.code != rejMemory && r.code != rejCPU && r.code != rejPods {
			continue
		}
		if !c.passesNonResource(p, cd, node) {
			continue
		}
		v := victimsOn(cd, node)
		if v == nil {
			continue
		}
		if best == nil || better(v, best) {
			bestNode, best = node, v
		}
	}
	if best == nil {
		return false
	}
	bestNode.preemptedFor = cd.app.key
	bestNode.nominatedPrio = cd.prio
	c.syncHot(bestNode) // the node is no longer plain: nominatedFilter applies
	for _, v := range best {
		v.gone = true
		c.plan.Preempt = append(c.plan.Preempt, Eviction{Namespace: v.ns, Pod: v.name, Node: bestNode.name,
			Priority: v.prio, For: cd.app.key, ForPriority: cd.prio,
			Reason: fmt.Sprintf("priority %d < %d; frees room on %s", v.prio, cd.prio, bestNode.name)})
	}
	return true
}

// passesNonResource runs the filters after fit (host ports, anti-affinity, spread;
// not the start cap, which is per round).
func (c *cluster) passesNonResource(p *pipeline, cd *candidate, n *nodeInfo) bool {
	for _, f := range []filter{nodeReadyFilter{}, nodeSelectorFilter{}, taintFilter{}, hostPortFilter{}, antiAffinityFilter{idx: &c.anti}, spreadFilter{}} {
		if f.check(cd, n).code != rejNone {
			return false
		}
	}
	return true
}

func victimsOn(cd *candidate, n *nodeInfo) []*podRec {
	var pool []*podRec
	for _, p := range n.pods {
		if p.gone || p.planned || !p.holdsResources() || p.prio >= cd.prio {
			continue
		}
		pool = append(pool, p)
	}
	sort.SliceStable(pool, func(i, j int) bool {
		if pool[i].prio != pool[j].prio {
			return pool[i].prio < pool[j].prio
		}
		si, sj := pool[i].mem+pool[i].cpu*1<<20, pool[j].mem+pool[j].cpu*1<<20
		if si != sj {
			return si > sj
		}
		return pool[i].name < pool[j].name
	})
	freeCPU, freeMem, freePods := n.freeCPU(), n.freeMem(), n.freePods()
	fits := func() bool { return cd.cpu <= freeCPU && cd.mem <= freeMem && freePods >= 1 }
	var victims []*podRec
	for _, p := range pool {
		if fits() {
			break
		}
		victims = append(victims, p)
		freeCPU += p.cpu
		freeMem += p.mem
		freePods++
	}
	if !fits() {
		return nil
	}
	// Spare victims, highest priority first, while the pod still fits.
	kept := victims[:0:0]
	for i := len(victims) - 1; i >= 0; i-- {
		p := victims[i]
		if cd.cpu <= freeCPU-p.cpu && cd.mem <= freeMem-p.mem && freePods-1 >= 1 {
			freeCPU -= p.cpu
			freeMem -= p.mem
			freePods--
			continue
		}
		kept = append(kept, p)
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].name < kept[j].name })
	return kept
}

func better(a, b []*podRec) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return maxPrio(a) < maxPrio(b)
}

func maxPrio(v []*podRec) int32 {
	m := v[0].prio
	for _, p := range v {
		m = max(m, p.prio)
	}
	return m
}

// nominatedFilter keeps pods of lower priority than a preempting pod off the node
// it preempted on, for the rest of the plan, so they cannot take room that frees
// up there (a Job pod finishing, say) and make the preemption start over, as
// kube-scheduler considers nominated pods when it filters lower-priority ones.
type nominatedFilter struct{}

func (nominatedFilter) check(c *candidate, n *nodeInfo) rejection {
	if n.preemptedFor != "" && c.prio < n.nominatedPrio {
		return rejection{code: rejNominated, limit: int(n.nominatedPrio)}
	}
	return rejection{}
}
