package planner

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// placeAll places the pods every app asked for, highest priority first (then by
// app key), one pod at a time through the pipeline; Job and CronJob apps place
// the pods their runs create, run by run.
func (c *cluster) placeAll(apps []*app) {
	var want []*app
	for _, a := range apps {
		if a.create > 0 && a.target != nil && a.target.Template != nil || a.pendingRunPods() > 0 {
			want = append(want, a)
		}
	}
	sort.SliceStable(want, func(i, j int) bool { return want[i].prio > want[j].prio })
	total := 0
	for _, a := range want {
		total += int(a.create) + a.pendingRunPods()
	}
	if total > 1024 {
		// Size the name set once instead of growing it pod by pod.
		names := make(map[nsName]bool, len(c.names)+total)
		for k := range c.names {
			names[k] = true
		}
		c.names = names
	}
	p := c.newPipeline()
	for _, a := range want {
		if a.kind == KindJob || a.kind == KindCronJob {
			c.placeRunPods(&p, a)
			continue
		}
		c.placeCandidate(&p, c.newCandidate(a), int(a.create))
	}
}

// placeCandidate places n pods of the candidate and returns how many it placed.
// When one fits nowhere the rest wait too: they are identical, so they would not
// fit either.
func (c *cluster) placeCandidate(p *pipeline, cd *candidate, n int) int {
	a := cd.app
	for i := 0; i < n; i++ {
		node, score, feasible := c.selectNode(p, cd)
		if node != nil {
			c.bind(p, cd, node, score, feasible)
			if c.hook != nil {
				c.hook()
			}
			continue
		}
		left := n - i
		why, deferred := c.explainRejections(p, cd)
		switch {
		case deferred:
			a.deferred += left
			c.plan.Deferred = append(c.plan.Deferred, Deferred{App: a.key, Pods: left, Reason: why})
		case c.preempt(p, cd):
			a.deferred += left
			c.plan.Deferred = append(c.plan.Deferred, Deferred{App: a.key, Pods: left,
				Reason: "waiting for preempted pods to stop: " + why})
		default:
			a.unplaceable += left
			a.unplaceWhy = why
			c.plan.Unplaceable = append(c.plan.Unplaceable, Unplaceable{App: a.key, Revision: cd.rev.Hash, Pods: left, Reason: why})
		}
		if c.hook != nil {
			c.hook()
		}
		return i
	}
	return n
}

// newCandidate precomputes what the pipeline reads about the app's target template.
func (c *cluster) newCandidate(a *app) *candidate {
	t := a.target.Template
	spec := &t.Spec
	cd := &candidate{app: a, ns: a.ns, rev: a.target, template: t, prio: a.prio,
		tolerations: spec.Tolerations, nodeSelector: spec.NodeSelector}
	cd.cpu, cd.mem = podRequests(spec)
	cd.ports = hostPorts(spec)
	if aff := spec.Affinity; aff != nil && aff.NodeAffinity != nil {
		cd.required = aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		cd.preferred = aff.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		for _, p := range cd.preferred {
			cd.preferredTotal += int64(p.Weight)
		}
	}
	c.attachCaches(cd)
	cd.antiTerms = c.anti.termsOf(a.ns, spec)
	if c.anti.active {
		cd.labelSet = c.sets.id(a.ns, podLabels(a, a.target))
		cd.selected = c.anti.selected(cd.labelSet)
	}
	c.newSpreadTrackers(cd, spec)
	hard := false
	for _, t := range cd.spreads {
		hard = hard || t.hard
	}
	cd.namePrefix = a.name + "-" + a.target.Hash + "-"
	cd.plain = len(cd.nodeSelector) == 0 && cd.required == nil && len(cd.ports) == 0 && len(cd.antiTerms) == 0 && !hard
	return cd
}

// attachCaches gives the candidate the per-node verdict caches shared by every
// candidate with the same node selector and affinity.
func (c *cluster) attachCaches(cd *candidate) {
	if len(cd.nodeSelector) > 0 || cd.required != nil {
		key, err := json.Marshal(struct {
			S map[string]string
			R *corev1.NodeSelector
		}{cd.nodeSelector, cd.required})
		if err == nil {
			if c.selCaches == nil {
				c.selCaches = map[string]*selectorCache{}
			}
			sc := c.selCaches[string(key)]
			if sc == nil {
				sc = &selectorCache{v: make([]uint8, len(c.nodes))}
				c.selCaches[string(key)] = sc
			}
			cd.selCache = sc
		}
	}
	if cd.preferredTotal > 0 {
		key, err := json.Marshal(cd.preferred)
		if err == nil {
			if c.prefCaches == nil {
				c.prefCaches = map[string]*preferenceCache{}
			}
			pc := c.prefCaches[string(key)]
			if pc == nil {
				pc = &preferenceCache{v: make([]int16, len(c.nodes))}
				for i := range pc.v {
					pc.v[i] = -1
				}
				c.prefCaches[string(key)] = pc
			}
			cd.prefCache = pc
		}
	}
}

// bind creates the pod on the node and accounts it.
func (c *cluster) bind(p *pipeline, cd *candidate, n *nodeInfo, score int64, feasible int) {
	a := cd.app
	reason := p.explainScore(cd, &c.hot[n.idx], score, feasible)
	pod := c.newPod(cd, n.name)
	if len(cd.recBuf) == 0 {
		cd.recBuf = make([]podRec, min(max(a.create, 1), 64))
	}
	r := &cd.recBuf[0]
	cd.recBuf = cd.recBuf[1:]
	*r = podRec{pod: pod, ns: a.ns, name: pod.Name, app: a, rev: cd.rev.Hash, nodeName: n.name,
		cpu: cd.cpu, mem: cd.mem, prio: cd.prio, labelSet: cd.labelSet, antiTerms: cd.antiTerms,
		ports: cd.ports, planned: true}
	n.starts++
	c.addPodToNode(r, n)
	for _, t := range cd.spreads {
		if t.sel != nil && !t.sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		t.add(n.idx)
	}
	c.plan.Place = append(c.plan.Place, Placement{App: a.key, Pod: pod, Node: n.name, Score: score, Reason: reason})
}

// podLabels are the template's labels plus pod-template-hash.
func podLabels(a *app, rev *Revision) map[string]string {
	l := make(map[string]string, len(rev.Template.Labels)+1)
	for k, v := range rev.Template.Labels {
		l[k] = v
	}
	l[LabelPodTemplateHash] = rev.Hash
	return l
}

// newPod builds the full pod to create: for a Deployment named
// <deployment>-<pod-template-hash>-<5 random characters from the seeded source>,
// for a bare Pod its own name; labels of the template plus pod-template-hash;
// annotations of the template plus gantry.io/app and gantry.io/revision; an owner
// reference to the Deployment; spec.nodeName and spec.priority set.
//
// The pods of one candidate share their read-only parts (label and annotation
// maps, owner references, the spec's containers, volumes and other slices and
// pointers): the plan is data to serialise, not to edit. Deep-copy a pod before
// changing it.
func (c *cluster) newPod(cd *candidate, node string) *corev1.Pod {
	if len(cd.runPods) > 0 {
		return c.nextRunPod(cd, node)
	}
	a, rev := cd.app, cd.rev
	name := a.name
	if a.kind == KindDeployment {
		for {
			name = cd.namePrefix + c.suffix()
			if !c.names[nsName{a.ns, name}] {
				break
			}
		}
	}
	c.names[nsName{a.ns, name}] = true
	if cd.shared == nil {
		cd.shared = c.sharedPod(a, rev)
	}
	if len(cd.podBuf) == 0 {
		// One allocation for a batch of pods instead of one each.
		cd.podBuf = make([]corev1.Pod, min(max(a.create, 1), 64))
	}
	pod := &cd.podBuf[0]
	cd.podBuf = cd.podBuf[1:]
	*pod = corev1.Pod{
		TypeMeta:   cd.shared.TypeMeta,
		ObjectMeta: cd.shared.ObjectMeta,
		Spec:       cd.shared.Spec,
		Status:     cd.shared.Status,
	}
	pod.Name = name
	pod.Spec.NodeName = node
	return pod
}

// sharedPod is the part every pod of one revision has in common.
func (c *cluster) sharedPod(a *app, rev *Revision) *corev1.Pod {
	t := rev.Template
	ann := make(map[string]string, len(t.Annotations)+2)
	for k, v := range t.Annotations {
		ann[k] = v
	}
	ann[AnnotationApp] = a.key
	ann[AnnotationRevision] = strconv.FormatInt(rev.Number, 10)
	pod := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: a.ns, Labels: podLabels(a, rev), Annotations: ann,
			CreationTimestamp: metav1.NewTime(c.now),
		},
		Spec:   *t.Spec.DeepCopy(),
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	if a.kind == KindDeployment {
		ctrl := true
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: a.name,
			UID: a.dep.UID, Controller: &ctrl}}
	}
	prio := a.prio
	pod.Spec.Priority = &prio
	return pod
}

const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func (c *cluster) suffix() string {
	var b [5]byte
	for i := range b {
		b[i] = suffixAlphabet[c.rng.IntN(len(suffixAlphabet))]
	}
	return string(b[:])
}

func describePods(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}
