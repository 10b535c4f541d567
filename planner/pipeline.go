package planner

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// filter is one feasibility check of the placement pipeline. It returns the zero
// rejection when the node passes.
type filter interface {
	check(c *candidate, n *nodeInfo) rejection
}

// scorer is one score of the placement pipeline, 0–100, multiplied by weight.
type scorer interface {
	weight() int64
	score(c *candidate, h *nodeHot) int64
}

type rejectCode uint8

const (
	rejNone rejectCode = iota
	rejNotReady
	rejUnschedulable
	rejSelector
	rejAffinity
	rejTaint
	rejMemory
	rejCPU
	rejPods
	rejPort
	rejAnti
	rejSpread
	rejStartCap
	rejNominated
)

// rejection is why a filter refused a node. It is built without allocating; the
// text is rendered only for pods that fit nowhere.
type rejection struct {
	code       rejectCode
	need, free int64
	taint      *corev1.Taint
	port       portKey
	spread     *spreadTracker
	limit      int
}

func (r rejection) key() string {
	switch r.code {
	case rejNotReady:
		return "node not ready"
	case rejUnschedulable:
		return "node unschedulable"
	case rejSelector:
		return "node selector mismatch"
	case rejAffinity:
		return "node affinity mismatch"
	case rejTaint:
		return "untolerated taint " + r.taint.ToString()
	case rejMemory:
		return "insufficient memory"
	case rejCPU:
		return "insufficient cpu"
	case rejPods:
		return "too many pods"
	case rejPort:
		return fmt.Sprintf("host port %d/%s in use", r.port.port, r.port.proto)
	case rejAnti:
		return "pod anti-affinity conflict"
	case rejSpread:
		return r.spread.describe()
	case rejStartCap:
		return fmt.Sprintf("start cap reached (%d per node per round)", r.limit)
	case rejNominated:
		return fmt.Sprintf("room reserved for a preempting pod (priority %d)", r.limit)
	}
	return "fits"
}

// candidate is one pod template being placed, with everything the filters and
// scorers read precomputed once.
type candidate struct {
	app            *app
	runPods        []*corev1.Pod // a Job run's pods, placed in order (jobs.go)
	ns             string
	rev            *Revision
	template       *corev1.PodTemplateSpec
	labelSet       int32
	cpu, mem       int64
	prio           int32
	ports          []portKey
	tolerations    []corev1.Toleration
	nodeSelector   map[string]string
	required       *corev1.NodeSelector
	preferred      []corev1.PreferredSchedulingTerm
	preferredTotal int64
	antiTerms      []int32
	spreads        []*spreadTracker
	// plain: no node selector or required affinity, host ports, anti-affinity or
	// hard spread; on a plain node only resources and the start cap decide.
	plain bool
	// selected: some pod's anti-affinity term may select this candidate.
	selected bool
	// namePrefix and shared are what every pod of the candidate has in common.
	namePrefix string
	shared     *corev1.Pod
	podBuf     []corev1.Pod
	recBuf     []podRec
	selCache   *selectorCache
	prefCache  *preferenceCache
}

// startCapFilter enforces Config.MaxStartsPerNodePerRound. It runs last, so a node
// it refuses passed every other filter: the pod waits instead of being unplaceable.
type startCapFilter struct{ limit int }

func (f startCapFilter) check(_ *candidate, n *nodeInfo) rejection {
	if f.limit > 0 && n.starts >= f.limit {
		return rejection{code: rejStartCap, limit: f.limit}
	}
	return rejection{}
}

type pipeline struct {
	filters []filter
	scorers []scorer
}

func (c *cluster) newPipeline() pipeline {
	return pipeline{
		filters: []filter{
			nodeReadyFilter{},
			nodeSelectorFilter{},
			taintFilter{},
			fitFilter{},
			hostPortFilter{},
			antiAffinityFilter{idx: &c.anti},
			spreadFilter{},
			nominatedFilter{},
			startCapFilter{limit: c.cfg.MaxStartsPerNodePerRound},
		},
		scorers: []scorer{
			binpackScorer{least: c.cfg.Scoring == LeastAllocated},
			spreadScorer{},
			nodeAffinityScorer{},
		},
	}
}

func (p *pipeline) feasible(cd *candidate, n *nodeInfo) rejection {
	for _, f := range p.filters {
		if r := f.check(cd, n); r.code != rejNone {
			return r
		}
	}
	return rejection{}
}

func (p *pipeline) score(cd *candidate, h *nodeHot) int64 {
	var s int64
	for _, sc := range p.scorers {
		s += sc.weight() * sc.score(cd, h)
	}
	return s
}

// selectNode runs filter → score → select over the nodes in seeded-shuffle order,
// starting where the previous placement stopped, until c.limit feasible nodes are
// scored. The highest score wins; ties go to the earlier node in that order.
func (c *cluster) selectNode(p *pipeline, cd *candidate) (best *nodeInfo, bestScore int64, feasible int) {
	n := len(c.order)
	examined := 0
	capLimit := int32(c.cfg.MaxStartsPerNodePerRound)
	fast := cd.plain && !c.slowPath
	var bestHot *nodeHot
	for examined < n && feasible < c.limit {
		h := &c.hot[c.order[(c.cursor+examined)%n]]
		examined++
		if fast && h.plain && (!h.anti || !cd.selected) {
			// The fast path: the same decision as the full pipeline for a plain
			// candidate on a plain node, without touching the node's full record.
			if cd.mem > h.freeMem || cd.cpu > h.freeCPU || h.freePods < 1 || (capLimit > 0 && h.starts >= capLimit) {
				continue
			}
		} else if p.feasible(cd, h.node).code != rejNone {
			continue
		}
		feasible++
		s := p.score(cd, h)
		if bestHot == nil || s > bestScore {
			bestHot, bestScore = h, s
		}
	}
	if bestHot != nil {
		best = bestHot.node
	}
	if n > 0 {
		c.cursor = (c.cursor + examined) % n
	}
	return best, bestScore, feasible
}

// explainScore renders the chosen node's score by component, e.g.
// "score 218 (binpack 18, spread 100), best of 3 feasible".
func (p *pipeline) explainScore(cd *candidate, h *nodeHot, total int64, feasible int) string {
	b := make([]byte, 0, 96)
	b = append(b, "score "...)
	b = strconv.AppendInt(b, total, 10)
	b = append(b, " (binpack "...)
	b = strconv.AppendInt(b, p.scorers[0].score(cd, h), 10)
	b = append(b, ", spread "...)
	b = strconv.AppendInt(b, p.scorers[1].score(cd, h), 10)
	if cd.preferredTotal > 0 {
		b = append(b, ", affinity "...)
		b = strconv.AppendInt(b, p.scorers[2].score(cd, h), 10)
	}
	b = append(b, "), best of "...)
	b = strconv.AppendInt(b, int64(feasible), 10)
	b = append(b, " feasible"...)
	return string(b)
}

// reasonGroup aggregates the rejections that share a key.
type reasonGroup struct {
	key      string
	code     rejectCode
	count    int
	need     int64
	mostFree int64
}

// explainRejections scans every node and renders the reason counts in the form
// "0/3 nodes fit: 2 insufficient memory (needs 4Gi, most free 2Gi), 1 untolerated
// taint dedicated=db:NoSchedule". deferred is true if some node refused only
// because of the start cap or a preempting pod's reservation.
func (c *cluster) explainRejections(p *pipeline, cd *candidate) (text string, deferred bool) {
	groups := map[string]*reasonGroup{}
	for _, n := range c.nodes {
		r := p.feasible(cd, n)
		if r.code == rejNone {
			continue
		}
		if r.code == rejStartCap || r.code == rejNominated {
			deferred = true // it passed every other filter: it waits, it is not unplaceable
		}
		k := r.key()
		g := groups[k]
		if g == nil {
			g = &reasonGroup{key: k, code: r.code, need: r.need, mostFree: r.free}
			groups[k] = g
		}
		g.count++
		if r.free > g.mostFree {
			g.mostFree = r.free
		}
	}
	list := make([]*reasonGroup, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].count != list[j].count {
			return list[i].count > list[j].count
		}
		return list[i].key < list[j].key
	})
	var b strings.Builder
	fmt.Fprintf(&b, "0/%d nodes fit", len(c.nodes))
	if len(list) == 0 {
		b.WriteString(": no nodes")
	}
	for i, g := range list {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s", g.count, g.key)
		switch g.code {
		case rejMemory:
			fmt.Fprintf(&b, " (needs %s, most free %s)", formatMem(g.need), formatMem(max(g.mostFree, 0)))
		case rejCPU:
			fmt.Fprintf(&b, " (needs %s, most free %s)", formatCPU(g.need), formatCPU(max(g.mostFree, 0)))
		case rejPods:
			fmt.Fprintf(&b, " (max %d)", g.mostFree)
		}
	}
	return b.String(), deferred
}

func formatMem(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }
func formatCPU(m int64) string { return resource.NewMilliQuantity(m, resource.DecimalSI).String() }
