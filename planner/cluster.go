package planner

import (
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const defaultNodeLostGrace = 5 * time.Minute

// nodeInfo is the planner's working view of one node: what it offers, what is
// used (observed pods plus this plan's placements), and the indexes the filters need.
type nodeInfo struct {
	idx  int32
	name string
	node *corev1.Node

	ready          bool
	notReadySince  time.Time // zero if unknown
	unschedulable  bool
	labels         map[string]string
	taints         []corev1.Taint // NoSchedule and NoExecute only
	allocCPU       int64          // millicores
	allocMem       int64          // bytes
	allocPods      int64
	usedCPU        int64
	usedMem        int64
	usedPods       int64
	starts         int              // pods placed on it by this plan
	ports          map[portKey]bool // host ports in use
	labelSets      []setCount       // label sets of its pods (anti-affinity index)
	antiTerms      []setCount       // required anti-affinity terms of its pods
	pods           []*podRec
	preemptedFor   string // set when this plan preempts pods here
	nominatedPrio  int32  // the preempting pod's priority, when preemptedFor is set
	hostnameDomain string
}

type setCount struct {
	id int32
	n  int32
}

func addSetCount(s []setCount, id int32, d int32) []setCount {
	for i := range s {
		if s[i].id == id {
			s[i].n += d
			return s
		}
	}
	if d > 0 {
		s = append(s, setCount{id, d})
	}
	return s
}

// portKey is one host port (protocol, port, host IP).
type portKey struct {
	proto string
	ip    string
	port  int32
}

func (n *nodeInfo) freeCPU() int64  { return n.allocCPU - n.usedCPU }
func (n *nodeInfo) freeMem() int64  { return n.allocMem - n.usedMem }
func (n *nodeInfo) freePods() int64 { return n.allocPods - n.usedPods }

// nodeHot is the part of a node the placement loop reads for every node it
// examines, kept in one compact array so that loop stays in cache.
type nodeHot struct {
	idx                        int32
	starts                     int32
	freeCPU, freeMem, freePods int64
	allocCPU, allocMem         int64
	// plain: Ready, schedulable, no NoSchedule/NoExecute taint; for a plain
	// candidate only resources and the start cap then decide, unless the node
	// runs pods with anti-affinity terms (anti) and some term selects the
	// candidate.
	plain bool
	anti  bool
	node  *nodeInfo
}

func (c *cluster) syncHot(n *nodeInfo) {
	h := &c.hot[n.idx]
	h.freeCPU, h.freeMem, h.freePods = n.freeCPU(), n.freeMem(), n.freePods()
	h.starts = int32(n.starts)
	h.plain = n.ready && !n.unschedulable && len(n.taints) == 0 && n.preemptedFor == ""
	h.anti = len(n.antiTerms) > 0
}

// topology gives every node the id of its domain for one topology key (-1 when
// the node lacks the label); count is the number of distinct domains.
type topology struct {
	ids   []int32
	count int
}

func (c *cluster) topology(key string) *topology {
	if t := c.topos[key]; t != nil {
		return t
	}
	t := &topology{ids: make([]int32, len(c.nodes))}
	seen := map[string]int32{}
	for i, n := range c.nodes {
		d, ok := n.domain(key)
		if !ok {
			t.ids[i] = -1
			continue
		}
		id, ok := seen[d]
		if !ok {
			id = int32(len(seen))
			seen[d] = id
		}
		t.ids[i] = id
	}
	t.count = len(seen)
	if c.topos == nil {
		c.topos = map[string]*topology{}
	}
	c.topos[key] = t
	return t
}

// podRec is one observed pod as the planner sees it.
type podRec struct {
	pod        *corev1.Pod
	ns, name   string
	app        *app // nil for pods that belong to no app
	rev        string
	node       *nodeInfo // nil if unscheduled or on an unknown node
	nodeName   string
	cpu, mem   int64
	prio       int32
	labelSet   int32
	antiTerms  []int32
	ports      []portKey
	ready      bool
	readySince time.Time
	restarts   int32
	terminal   bool // Succeeded or Failed
	deleting   bool // deletionTimestamp set
	gone       bool // stopped by this plan or on a lost node: no longer counted
	adopted    bool
	planned    bool // created by this plan
}

// holdsResources: a pod uses its node's resources until it is terminal.
func (p *podRec) holdsResources() bool { return !p.terminal }

// available: Ready for at least minReadySeconds, on a Ready node.
func (p *podRec) available(now time.Time, minReady int32) bool {
	if !p.ready || p.node == nil || !p.node.ready {
		return false
	}
	if minReady <= 0 {
		return true
	}
	return !p.readySince.Add(time.Duration(minReady) * time.Second).After(now)
}

func newNodeInfo(idx int32, n *corev1.Node) *nodeInfo {
	ni := &nodeInfo{idx: idx, name: n.Name, node: n, labels: n.Labels, unschedulable: n.Spec.Unschedulable}
	ni.ready, ni.notReadySince = nodeReady(n)
	res := n.Status.Allocatable
	if len(res) == 0 {
		res = n.Status.Capacity
	}
	if q, ok := res[corev1.ResourceCPU]; ok {
		ni.allocCPU = q.MilliValue()
	}
	if q, ok := res[corev1.ResourceMemory]; ok {
		ni.allocMem = q.Value()
	}
	ni.allocPods = defaultPodsPerNode
	if q, ok := res[corev1.ResourcePods]; ok {
		ni.allocPods = q.Value()
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			ni.taints = append(ni.taints, t)
		}
	}
	ni.hostnameDomain = n.Name
	if h := n.Labels[LabelHostname]; h != "" {
		ni.hostnameDomain = h
	}
	return ni
}

// domain is the node's value of a topology key; ok is false if it has none.
func (n *nodeInfo) domain(key string) (string, bool) {
	if key == LabelHostname || key == "" {
		return n.hostnameDomain, true
	}
	v, ok := n.labels[key]
	return v, ok
}

// cluster is the working state of one Compute call.
type cluster struct {
	now    time.Time
	cfg    Config
	rng    *rand.Rand
	nodes  []*nodeInfo
	byName map[string]*nodeInfo
	order  []int32 // seeded shuffle of node indexes
	cursor int

	pods  []*podRec
	names map[nsName]bool // every pod, observed or planned

	sets    interner
	anti    antiIndex
	plan    *Plan
	limit   int // feasible nodes to score per placement
	minPrio int32

	hot        []nodeHot
	topos      map[string]*topology
	selCaches  map[string]*selectorCache
	prefCaches map[string]*preferenceCache

	slowPath bool // tests: never take the placement fast path
	seed     int64

	// hook, if set, is called after each placement decision (benchmarks only).
	hook func()
}

func newCluster(in *Input, cfg Config) *cluster {
	c := &cluster{
		now:    in.Now,
		cfg:    cfg,
		rng:    rand.New(rand.NewPCG(uint64(in.Seed), 0x9e3779b97f4a7c15)),
		byName: make(map[string]*nodeInfo, len(in.Nodes)),
		names:  make(map[nsName]bool, len(in.Observed)),
	}
	nodes := slices.Clone(in.Nodes)
	nodes = slices.DeleteFunc(nodes, func(n *corev1.Node) bool { return n == nil })
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	for _, n := range nodes {
		if _, dup := c.byName[n.Name]; dup {
			continue // a duplicate name: the first one counts
		}
		ni := newNodeInfo(int32(len(c.nodes)), n)
		c.nodes = append(c.nodes, ni)
		c.byName[n.Name] = ni
	}
	c.hot = make([]nodeHot, len(c.nodes))
	for i, n := range c.nodes {
		c.hot[i] = nodeHot{idx: int32(i), allocCPU: n.allocCPU, allocMem: n.allocMem, node: n}
		c.syncHot(n)
	}
	c.order = make([]int32, len(c.nodes))
	for i := range c.order {
		c.order[i] = int32(i)
	}
	c.rng.Shuffle(len(c.order), func(i, j int) { c.order[i], c.order[j] = c.order[j], c.order[i] })
	c.limit = nodesToScore(len(c.nodes), cfg.NodesToScore)
	return c
}

// nodesToScore bounds the feasible nodes scored per placement: every node up to
// 100 (kube-scheduler's minimum), then 2% of the nodes, at least 100.
func nodesToScore(n, configured int) int {
	if configured > 0 {
		return configured
	}
	return max(100, n/50)
}

// addPod accounts a pod on its node.
func (c *cluster) addPodToNode(p *podRec, n *nodeInfo) {
	p.node = n
	n.pods = append(n.pods, p)
	if !p.holdsResources() {
		return
	}
	n.usedCPU += p.cpu
	n.usedMem += p.mem
	n.usedPods++
	for _, pk := range p.ports {
		if n.ports == nil {
			n.ports = make(map[portKey]bool)
		}
		n.ports[pk] = true
	}
	if c.anti.active {
		n.labelSets = addSetCount(n.labelSets, p.labelSet, 1)
		for _, t := range p.antiTerms {
			n.antiTerms = addSetCount(n.antiTerms, t, 1)
		}
	}
	c.syncHot(n)
}

func podKey(ns, name string) string { return ns + "/" + name }

// nsName identifies a pod without building a string.
type nsName struct{ ns, name string }

// interner gives every distinct (namespace, labels) pair a small integer.
type interner struct {
	ids  map[string]int32
	sets []labelSet
}

type labelSet struct {
	ns     string
	labels map[string]string
}

func (in *interner) id(ns string, labels map[string]string) int32 {
	if in.ids == nil {
		in.ids = make(map[string]int32)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ns)
	for _, k := range keys {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte(1)
		b.WriteString(labels[k])
	}
	key := b.String()
	if id, ok := in.ids[key]; ok {
		return id
	}
	id := int32(len(in.sets))
	in.ids[key] = id
	in.sets = append(in.sets, labelSet{ns: ns, labels: labels})
	return id
}

// stop records a Stop step and takes the pod out of its app's counts. Its node
// resources stay taken for the rest of this plan: the pod runs until the agent
// stops it, so placements never count on room that is not free yet.
func (c *cluster) stop(p *podRec, reason string) {
	if p.gone {
		return
	}
	p.gone = true
	key := ""
	if p.app != nil {
		key = p.app.key
	} else if k := p.pod.Annotations[AnnotationApp]; k != "" {
		key = k
	}
	c.plan.Stop = append(c.plan.Stop, Stop{App: key, Namespace: p.ns, Pod: p.name, Node: p.nodeName, Reason: reason})
}
