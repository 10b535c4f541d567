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
	counts   map[string]int32
	eligible int // domains among nodes that pass the pod's node selector and affinity
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

func (t *spreadTracker) add(domain string) {
	t.counts[domain]++
	t.minValid = false
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
		d, ok := n.domain(t.key)
		if !ok || t.counts[d]+1-t.min() > t.maxSkew {
			return rejection{code: rejSpread, spread: t}
		}
	}
	return rejection{}
}

// spreadScorer prefers domains with fewer of the workload's pods: 100 for an empty
// domain, 100/(1+count) otherwise, averaged over the constraints.
type spreadScorer struct{}

func (spreadScorer) weight() int64 { return 2 }

func (spreadScorer) score(c *candidate, n *nodeInfo) int64 {
	if len(c.spreads) == 0 {
		return 0
	}
	var s int64
	for _, t := range c.spreads {
		d, ok := n.domain(t.key)
		if !ok {
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
		cd.spreads = []*spreadTracker{{key: LabelHostname, maxSkew: 1, counts: map[string]int32{}}}
	}
	for i := range cons {
		k := &cons[i]
		t := &spreadTracker{key: k.TopologyKey, maxSkew: k.MaxSkew, hard: k.WhenUnsatisfiable != corev1.ScheduleAnyway, counts: map[string]int32{}}
		if t.maxSkew < 1 {
			t.maxSkew = 1
		}
		if k.LabelSelector != nil {
			if sel, err := metav1.LabelSelectorAsSelector(k.LabelSelector); err == nil {
				t.sel = sel
			}
		}
		if t.hard {
			t.eligible = c.eligibleDomains(cd, t.key)
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
			if d, ok := p.node.domain(t.key); ok {
				t.add(d)
			}
		}
	}
}

// eligibleDomains counts the distinct domains of key among nodes that pass the
// candidate's nodeSelector and required node affinity (nodeAffinityPolicy Honor;
// taints are ignored, nodeTaintsPolicy Ignore, as in Kubernetes).
func (c *cluster) eligibleDomains(cd *candidate, key string) int {
	seen := map[string]bool{}
	for _, n := range c.nodes {
		if (nodeSelectorFilter{}).check(cd, n).code != rejNone {
			continue
		}
		if d, ok := n.domain(key); ok {
			seen[d] = true
		}
	}
	return len(seen)
}

var (
	_ filter = spreadFilter{}
	_ scorer = spreadScorer{}
)
