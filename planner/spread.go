package planner

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// spreadTracker counts one workload's pods per topology domain for one
// topologySpreadConstraint (or for the default spreading of a workload without
// constraints: soft, per hostname). It counts the pods of the same workload that
// its labelSelector selects; pods of other workloads are not counted.
type spreadTracker struct {
	key      string
	maxSkew  int32
	hard     bool // DoNotSchedule
	sel      labels.Selector
	topo     *topology
	counts   map[int32]int32 // by domain id
	eligible int             // domains among nodes that pass the pod's node selector and affinity
	minValid bool
	minCache int32
}

func (t *spreadTracker) describe() string {
	return fmt.Sprintf("topology spread maxSkew %d on %s", t.maxSkew, t.key)
}

func (t *spreadTracker) min() int32 {
	if t.minValid {
		return t.minCache
	}
	m := int32(0)
	if len(t.counts) >= t.eligible && len(t.counts) > 0 {
		first := true
		for _, v := range t.counts {
			if first || v < m {
				m, first = v, false
			}
		}
	}
	t.minCache, t.minValid = m, true
	return m
}

// add counts one more pod on node idx.
func (t *spreadTracker) add(idx int32) {
	if d := t.topo.ids[idx]; d >= 0 {
		t.counts[d]++
		t.minValid = false
	}
}

// spreadFilter enforces DoNotSchedule constraints: placing the pod must not make
// its domain's count exceed the smallest eligible domain's count by more than
// maxSkew. Nodes without the topology label are rejected.
type spreadFilter struct{}

func (spreadFilter) check(c *candidate, n *nodeInfo) rejection {
	for _, t := range c.spreads {
		if !t.hard {
			continue
		}
		d := t.topo.ids[n.idx]
		if d < 0 || t.counts[d]+1-t.min() > t.maxSkew {
			return rejection{code: rejSpread, spread: t}
		}
	}
	return rejection{}
}

// spreadScorer prefers domains with fewer of the workload's pods: 100 for an empty
// domain, 100/(1+count) otherwise, averaged over the constraints.
type spreadScorer struct{}

func (spreadScorer) weight() int64 { return 2 }

func (spreadScorer) score(c *candidate, h *nodeHot) int64 {
	if len(c.spreads) == 0 {
		return 0
	}
	var s int64
	for _, t := range c.spreads {
		if len(t.counts) == 0 {
			s += 100
			continue
		}
		d := t.topo.ids[h.idx]
		if d < 0 {
			continue
		}
		s += 100 / int64(1+t.counts[d])
	}
	return s / int64(len(c.spreads))
}

// newSpreadTrackers builds the trackers of a candidate from its constraints (or
// the default soft hostname spreading), counting the app's current pods.
func (c *cluster) newSpreadTrackers(cd *candidate, spec *corev1.PodSpec) {
	cons := spec.TopologySpreadConstraints
	if len(cons) == 0 {
		cd.spreads = []*spreadTracker{{key: LabelHostname, maxSkew: 1, topo: c.topology(LabelHostname), counts: map[int32]int32{}}}
	}
	for i := range cons {
		k := &cons[i]
		t := &spreadTracker{key: k.TopologyKey, maxSkew: k.MaxSkew, hard: k.WhenUnsatisfiable != corev1.ScheduleAnyway,
			topo: c.topology(k.TopologyKey), counts: map[int32]int32{}}
		if t.maxSkew < 1 {
			t.maxSkew = 1
		}
		if k.LabelSelector != nil {
			if sel, err := metav1.LabelSelectorAsSelector(k.LabelSelector); err == nil {
				t.sel = sel
			}
		}
		if t.hard {
			t.eligible = c.eligibleDomains(cd, t.topo)
		}
		cd.spreads = append(cd.spreads, t)
	}
	for _, p := range cd.app.pods {
		if p.gone || p.node == nil || !p.holdsResources() {
			continue
		}
		for _, t := range cd.spreads {
			if t.sel != nil && !t.sel.Matches(labels.Set(p.pod.Labels)) {
				continue
			}
			t.add(p.node.idx)
		}
	}
}

// eligibleDomains counts the distinct domains of key among nodes that pass the
// candidate's nodeSelector and required node affinity (nodeAffinityPolicy Honor;
// taints are ignored, nodeTaintsPolicy Ignore, as in Kubernetes).
func (c *cluster) eligibleDomains(cd *candidate, topo *topology) int {
	if len(cd.nodeSelector) == 0 && cd.required == nil {
		return topo.count
	}
	seen := map[int32]bool{}
	for _, n := range c.nodes {
		if (nodeSelectorFilter{}).check(cd, n).code != rejNone {
			continue
		}
		if d := topo.ids[n.idx]; d >= 0 {
			seen[d] = true
		}
	}
	return len(seen)
}

var (
	_ filter = spreadFilter{}
	_ scorer = spreadScorer{}
)
