package planner

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	corev1 "k8s.io/api/core/v1"
)

// antiAffinityFilter enforces required pod anti-affinity with topology key
// kubernetes.io/hostname, both ways: the incoming pod must not land next to a pod
// its terms select, and no pod on the node may select the incoming pod with its
// own terms. Terms with other topology keys are not evaluated (manifest refuses
// them).
type antiAffinityFilter struct{ idx *antiIndex }

func (f antiAffinityFilter) check(c *candidate, n *nodeInfo) rejection {
	if !f.idx.active {
		return rejection{}
	}
	for _, t := range c.antiTerms {
		for _, s := range n.labelSets {
			if s.n > 0 && f.idx.matches(t, s.id) {
				return rejection{code: rejAnti}
			}
		}
	}
	for _, t := range n.antiTerms {
		if t.n > 0 && f.idx.matches(t.id, c.labelSet) {
			return rejection{code: rejAnti}
		}
	}
	return rejection{}
}

// antiIndex holds every distinct required anti-affinity term and caches which
// label sets each term selects.
type antiIndex struct {
	active bool
	sets   *interner
	terms  []antiTerm
	ids    map[string]int32
	cache  map[[2]int32]bool
	// byPair indexes terms by one label pair their selector requires; terms
	// without such a pair are in unindexed. selecting uses it to find the few
	// terms that may select a label set.
	byPair    map[string][]int32
	unindexed []int32
}

type antiTerm struct {
	ownerNS    string
	namespaces []string // nil: the owner's namespace only
	allNS      bool     // an empty namespaceSelector: every namespace
	sel        labels.Selector
}

// termsOf registers the pod's required hostname anti-affinity terms.
func (a *antiIndex) termsOf(ns string, spec *corev1.PodSpec) []int32 {
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		return nil
	}
	var out []int32
	for i := range spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		t := &spec.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[i]
		if t.TopologyKey != LabelHostname {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
		if err != nil || t.LabelSelector == nil {
			// An invalid or missing selector selects nothing.
			continue
		}
		allNS := t.NamespaceSelector != nil && len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0
		key := ns + "\x00" + sel.String()
		for _, n := range t.Namespaces {
			key += "\x00" + n
		}
		if allNS {
			key += "\x00*"
		}
		if a.ids == nil {
			a.ids = make(map[string]int32)
			a.cache = make(map[[2]int32]bool)
		}
		id, ok := a.ids[key]
		if !ok {
			id = int32(len(a.terms))
			a.ids[key] = id
			a.terms = append(a.terms, antiTerm{ownerNS: ns, namespaces: t.Namespaces, allNS: allNS, sel: sel})
			a.index(id, t.LabelSelector)
		}
		out = append(out, id)
		a.active = true
	}
	return out
}

func (a *antiIndex) index(id int32, ls *metav1.LabelSelector) {
	if a.byPair == nil {
		a.byPair = map[string][]int32{}
	}
	for k, v := range ls.MatchLabels {
		key := k + "\x00" + v
		a.byPair[key] = append(a.byPair[key], id)
		return
	}
	for _, e := range ls.MatchExpressions {
		if e.Operator == metav1.LabelSelectorOpIn && len(e.Values) == 1 {
			key := e.Key + "\x00" + e.Values[0]
			a.byPair[key] = append(a.byPair[key], id)
			return
		}
	}
	a.unindexed = append(a.unindexed, id)
}

// selected reports whether any registered term selects the label set.
func (a *antiIndex) selected(set int32) bool {
	if !a.active {
		return false
	}
	for _, id := range a.unindexed {
		if a.matches(id, set) {
			return true
		}
	}
	for k, v := range a.sets.sets[set].labels {
		for _, id := range a.byPair[k+"\x00"+v] {
			if a.matches(id, set) {
				return true
			}
		}
	}
	return false
}

func (a *antiIndex) matches(term, set int32) bool {
	k := [2]int32{term, set}
	if v, ok := a.cache[k]; ok {
		return v
	}
	t := &a.terms[term]
	ls := &a.sets.sets[set]
	nsOK := t.allNS
	if !nsOK {
		if len(t.namespaces) == 0 {
			nsOK = ls.ns == t.ownerNS
		} else {
			nsOK = contains(t.namespaces, ls.ns)
		}
	}
	v := nsOK && t.sel.Matches(labels.Set(ls.labels))
	a.cache[k] = v
	return v
}

var _ filter = antiAffinityFilter{}
