package planner

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// observe turns the observed pods into podRecs, attaches them to their apps
// (adopting matching orphans) and accounts them on their nodes. Pods whose app
// left git are returned by app key, for pruning.
func (c *cluster) observe(observed []*corev1.Pod, byKey map[string]*app, list []*app) (leftGit map[string][]*podRec) {
	pods := make([]*corev1.Pod, 0, len(observed))
	for _, p := range observed {
		if p != nil {
			pods = append(pods, p)
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	recs := make([]*podRec, 0, len(pods))
	for _, p := range pods {
		r := newPodRec(p, c.cfg.PriorityClasses)
		r.antiTerms = c.anti.termsOf(r.ns, &p.Spec)
		recs = append(recs, r)
		c.names[nsName{r.ns, r.name}] = true
	}
	for _, a := range list {
		// Registering the templates' terms first tells whether the anti-affinity
		// index is needed at all.
		c.anti.termsOf(a.ns, &a.template.Spec)
	}
	c.anti.sets = &c.sets
	leftGit = map[string][]*podRec{}
	for _, r := range recs {
		if c.anti.active {
			r.labelSet = c.sets.id(r.ns, r.pod.Labels)
		}
		if c.minPrio > r.prio || len(c.pods) == 0 {
			c.minPrio = r.prio
		}
		c.pods = append(c.pods, r)
		if key := r.pod.Annotations[AnnotationApp]; key != "" {
			if a := byKey[key]; a != nil {
				r.app = a
				a.pods = append(a.pods, r)
			} else {
				leftGit[key] = append(leftGit[key], r)
			}
		} else if a := c.adopter(r, list); a != nil {
			r.app, r.adopted = a, true
			a.pods = append(a.pods, r)
			rev := r.rev
			if a.revision(rev) == nil && rev != a.gitHash {
				rev = ""
			}
			r.rev = rev
			c.plan.Adopt = append(c.plan.Adopt, Adoption{App: a.key, Namespace: r.ns, Pod: r.name, Revision: rev,
				Reason: "orphan pod matches the workload's selector"})
		}
		if r.nodeName != "" {
			if n := c.byName[r.nodeName]; n != nil {
				c.addPodToNode(r, n)
			}
		}
	}
	return leftGit
}

// adopter finds the app an orphan pod (one without the gantry.io/app annotation)
// belongs to: a bare Pod of the same name, else the first Deployment (by key) in
// its namespace whose selector matches its labels. Pods controlled by some other
// owner are never adopted.
func (c *cluster) adopter(r *podRec, list []*app) *app {
	for _, o := range r.pod.OwnerReferences {
		if o.Controller != nil && *o.Controller && o.Kind != "Deployment" && o.Kind != "ReplicaSet" {
			return nil
		}
	}
	for _, a := range list {
		if a.ns != r.ns {
			continue
		}
		if a.kind == KindPod && a.name == r.name {
			return a
		}
	}
	for _, a := range list {
		if a.kind == KindDeployment && a.ns == r.ns && a.selector != nil && a.selector.Matches(labels.Set(r.pod.Labels)) {
			return a
		}
	}
	return nil
}

func newPodRec(p *corev1.Pod, classes map[string]int32) *podRec {
	r := &podRec{pod: p, ns: namespaceOf(p.Namespace), name: p.Name, nodeName: p.Spec.NodeName,
		rev: p.Labels[LabelPodTemplateHash]}
	r.cpu, r.mem = podRequests(&p.Spec)
	r.prio, _ = PodPriority(&p.Spec, classes)
	r.ports = hostPorts(&p.Spec)
	r.terminal = p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
	r.deleting = p.DeletionTimestamp != nil
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			r.ready = true
			r.readySince = cond.LastTransitionTime.Time
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		r.restarts += cs.RestartCount
	}
	return r
}
