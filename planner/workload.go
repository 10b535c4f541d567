package planner

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"gantry.io/gantry/api"
)

// app is one workload of Desired (a Deployment or a bare Pod) with its pods and
// the working copy of its state.
type app struct {
	key      string
	kind     AppKind
	ns, name string
	dep      *appsv1.Deployment
	bare     *corev1.Pod
	meta     *metav1.ObjectMeta
	template *corev1.PodTemplateSpec // git's template
	gitHash  string
	selector labels.Selector // nil: adopt nothing
	replicas int32
	prio     int32

	state    AppState
	orig     AppState
	hadState bool

	pods []*podRec

	// filled by reconcile
	target      *Revision
	newPods     []*podRec
	oldPods     []*podRec
	newAvail    int32
	oldAvail    int32
	create      int32
	invalid     string
	warning     string // shown in status, not a failure
	failing     string // crash loop or deadline text, for status
	unplaceable int
	unplaceWhy  string
	deferred    int

	// Jobs and CronJobs (jobs.go)
	job      *batchv1.Job     // git's Job; nil for other kinds or when it left git
	cron     *batchv1.CronJob // git's CronJob; nil likewise
	runs     []*jobRun        // sorted by name
	current  string           // the run of git's Job
	cronNext time.Time        // next tick of git's CronJob
}

// buildApps turns Desired into apps, sorted by key.
func (c *cluster) buildApps(in *Input) (map[string]*app, []*app) {
	byKey := map[string]*app{}
	var list []*app
	add := func(a *app) {
		if _, dup := byKey[a.key]; dup {
			return
		}
		st, ok := in.Apps[a.key]
		a.hadState = ok
		a.orig = st
		a.state = st.clone()
		a.gitHash = TemplateHash(a.template)
		var known bool
		a.prio, known = PodPriority(&a.template.Spec, c.cfg.PriorityClasses)
		if !known {
			a.warning = fmt.Sprintf("unknown priorityClassName %q: priority 0", a.template.Spec.PriorityClassName)
		}
		if r, ok := in.ReplicaOverrides[a.key]; ok && a.kind == KindDeployment {
			a.replicas = max(r, 0)
		}
		byKey[a.key] = a
		list = append(list, a)
	}
	if d := in.Desired; d != nil {
		for _, dep := range d.Deployments {
			if dep == nil {
				continue
			}
			ns := namespaceOf(dep.Namespace)
			tmpl := &dep.Spec.Template // read only; copied when stored in a Revision
			a := &app{key: AppKey(KindDeployment, ns, dep.Name), kind: KindDeployment, ns: ns, name: dep.Name,
				dep: dep, meta: &dep.ObjectMeta, template: tmpl, replicas: replicasOf(dep)}
			if dep.Spec.Selector != nil {
				if sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector); err == nil && !sel.Empty() {
					a.selector = sel
				}
			} else if len(tmpl.Labels) > 0 {
				a.selector = labels.SelectorFromSet(tmpl.Labels)
			}
			add(a)
		}
		for _, p := range d.Pods {
			if p == nil {
				continue
			}
			ns := namespaceOf(p.Namespace)
			tmpl := &corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: p.Labels, Annotations: p.Annotations},
				Spec:       p.Spec, // read only; copied when stored in a Revision
			}
			a := &app{key: AppKey(KindPod, ns, p.Name), kind: KindPod, ns: ns, name: p.Name,
				bare: p, meta: &p.ObjectMeta, template: tmpl, replicas: 1}
			add(a)
		}
		for _, j := range d.Jobs {
			if j == nil {
				continue
			}
			ns := namespaceOf(j.Namespace)
			add(&app{key: AppKey(KindJob, ns, j.Name), kind: KindJob, ns: ns, name: j.Name,
				job: j, meta: &j.ObjectMeta, template: &j.Spec.Template})
		}
		for _, cj := range d.CronJobs {
			if cj == nil {
				continue
			}
			ns := namespaceOf(cj.Namespace)
			add(&app{key: AppKey(KindCronJob, ns, cj.Name), kind: KindCronJob, ns: ns, name: cj.Name,
				cron: cj, meta: &cj.ObjectMeta, template: &cj.Spec.JobTemplate.Spec.Template})
		}
	}
	c.attachRuns(in, byKey, add)
	sort.Slice(list, func(i, j int) bool { return list[i].key < list[j].key })
	return byKey, list
}

func namespaceOf(ns string) string {
	if ns == "" {
		return metav1.NamespaceDefault
	}
	return ns
}

func (a *app) autoRollback() bool { return a.meta.Annotations[api.AnnotationAutoRollback] != "false" }
func (a *app) noPrune() bool      { return a.meta.Annotations[api.AnnotationPrune] == "false" }

// revision returns the history entry of hash, or nil.
func (a *app) revision(hash string) *Revision {
	for i := range a.state.Revisions {
		if a.state.Revisions[i].Hash == hash {
			return &a.state.Revisions[i]
		}
	}
	return nil
}

// ensureRevision records git's template as a revision if it is new.
func (a *app) ensureRevision(c *cluster) {
	if a.revision(a.gitHash) != nil {
		return
	}
	var n int64
	for _, r := range a.state.Revisions {
		n = max(n, r.Number)
	}
	a.state.Revisions = append(a.state.Revisions, Revision{Number: n + 1, Hash: a.gitHash, Template: a.template.DeepCopy(), Created: c.now})
}

// lastAvailable is the newest revision (by number) other than hash that ran fully
// available and still has its template.
func (a *app) lastAvailable(except string) *Revision {
	var best *Revision
	for i := range a.state.Revisions {
		r := &a.state.Revisions[i]
		if r.Hash == except || r.Available.IsZero() || r.Template == nil {
			continue
		}
		if best == nil || r.Number > best.Number {
			best = r
		}
	}
	return best
}

func (a *app) revNumber(hash string) int64 {
	if r := a.revision(hash); r != nil {
		return r.Number
	}
	return 0
}

// trimHistory keeps revisions still in use (target, git's, with pods, the newest
// available) plus the newest revisionHistoryLimit others.
func (a *app) trimHistory(limit int) {
	inUse := map[string]bool{a.state.Target: true, a.gitHash: true}
	for _, p := range a.pods {
		inUse[p.rev] = true
	}
	if r := a.lastAvailable(""); r != nil {
		inUse[r.Hash] = true
	}
	keep := a.state.Revisions[:0:0]
	others := 0
	for i := len(a.state.Revisions) - 1; i >= 0; i-- {
		r := a.state.Revisions[i]
		if inUse[r.Hash] {
			keep = append(keep, r)
		} else if others < limit {
			keep = append(keep, r)
			others++
		}
	}
	if len(keep) == len(a.state.Revisions) {
		return
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].Number < keep[j].Number })
	a.state.Revisions = keep
}

// clone deep-copies the parts of a state the planner changes.
func (s AppState) clone() AppState {
	out := s
	out.Revisions = append([]Revision(nil), s.Revisions...)
	out.Expired = append([]string(nil), s.Expired...)
	if s.Failed != nil {
		f := *s.Failed
		out.Failed = &f
	}
	if s.Pin != nil {
		p := *s.Pin
		out.Pin = &p
	}
	return out
}

// Equal reports whether two states are the same (times compared with Equal,
// templates by presence: a revision's hash identifies its template).
func (s AppState) Equal(o AppState) bool {
	if s.Target != o.Target || s.Message != o.Message || s.NoPrune != o.NoPrune ||
		s.Progress.Revision != o.Progress.Revision || s.Progress.Updated != o.Progress.Updated ||
		s.Progress.Available != o.Progress.Available || !s.Progress.Since.Equal(o.Progress.Since) ||
		len(s.Revisions) != len(o.Revisions) {
		return false
	}
	for i := range s.Revisions {
		a, b := s.Revisions[i], o.Revisions[i]
		if a.Number != b.Number || a.Hash != b.Hash || (a.Template == nil) != (b.Template == nil) ||
			!a.Created.Equal(b.Created) || !a.Available.Equal(b.Available) {
			return false
		}
	}
	if (s.Failed == nil) != (o.Failed == nil) || (s.Pin == nil) != (o.Pin == nil) {
		return false
	}
	if s.Failed != nil && (s.Failed.Revision != o.Failed.Revision || s.Failed.RollbackTo != o.Failed.RollbackTo ||
		s.Failed.Reason != o.Failed.Reason || !s.Failed.At.Equal(o.Failed.At)) {
		return false
	}
	if s.Pin != nil && *s.Pin != *o.Pin {
		return false
	}
	return batchStateEqual(s, o)
}
