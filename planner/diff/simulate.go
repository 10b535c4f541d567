package diff

import (
	"maps"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/planner"
)

// DefaultSimulationRounds bounds Simulate when it is given no limit: a rollout of
// 1,000 pods one at a time takes about as many rounds, so 1,000 covers any
// realistic change; a plan that still moves after that is reported Unsettled.
const DefaultSimulationRounds = 1000

// Simulate is the live placement of `gantry plan --server`: it runs planner.Compute
// on in (the cluster's nodes, pods and app states with the head revision as
// Desired), applies each plan to the simulated cluster as the reconcile loop and
// the agents would — placed pods start and turn Ready at once, stopped and
// preempted pods go away, Job runs are created, app states are kept — advances
// the logical clock past every minReadySeconds, and repeats until a plan is empty
// or stops making progress, or maxRounds (0: DefaultSimulationRounds) rounds ran.
// A single Compute would only show a rollout's first step; the simulation shows
// where all of the new pods end up, which pods fit nowhere even once the old ones
// are gone, and how many running pods are replaced.
//
// It is pure like the planner: the same Input gives the same Placement. in is not
// modified.
func Simulate(in planner.Input, maxRounds int) *Placement {
	if maxRounds <= 0 {
		maxRounds = DefaultSimulationRounds
	}
	step := simulationStep(in)
	observed := map[string]*corev1.Pod{}
	initial := map[string]string{} // pod key → app of the pods running at the start
	running := 0
	for _, p := range in.Observed {
		k := podKey(p.Namespace, p.Name)
		observed[k] = p
		initial[k] = p.Annotations[planner.AnnotationApp]
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			running++
		}
	}
	apps := maps.Clone(in.Apps)
	if apps == nil {
		apps = map[string]planner.AppState{}
	}
	jobs := map[string]*batchv1.Job{}
	for _, j := range in.Jobs {
		jobs[podKey(j.Namespace, j.Name)] = j
	}
	placed := map[string]string{}      // pod key → app of the pods the simulation started
	stopped := map[string]int{}        // app → pods running at the start that were stopped
	evicted := map[string]Preemption{} // pod key → eviction
	now := in.Now
	var last planner.Plan
	rounds, idle, settled := 0, 0, false
	for rounds < maxRounds {
		rounds++
		round := in
		round.Now, round.Apps = now, maps.Clone(apps)
		round.Observed = make([]*corev1.Pod, 0, len(observed))
		for _, k := range slices.Sorted(maps.Keys(observed)) {
			round.Observed = append(round.Observed, observed[k])
		}
		round.Jobs = make([]*batchv1.Job, 0, len(jobs))
		for _, k := range slices.Sorted(maps.Keys(jobs)) {
			round.Jobs = append(round.Jobs, jobs[k])
		}
		round.Seed = in.Seed + int64(rounds-1)
		p := planner.Compute(round)
		last = p
		if p.Empty() {
			settled = true
			break
		}
		remove := func(ns, name string) {
			k := podKey(ns, name)
			if app, ok := initial[k]; ok {
				if _, present := observed[k]; present {
					stopped[app]++ // "" for a pod of no app (an orphan pruned)
				}
			}
			delete(observed, k)
			delete(placed, k)
		}
		for _, e := range p.Preempt {
			k := podKey(e.Namespace, e.Pod)
			evicted[k] = Preemption{Pod: k, Node: e.Node, Priority: e.Priority, For: e.For, ForPriority: e.ForPriority}
			remove(e.Namespace, e.Pod)
		}
		for _, s := range p.Stop {
			remove(s.Namespace, s.Pod)
		}
		for _, pl := range p.Place {
			pod := pl.Pod.DeepCopy()
			pod.Spec.NodeName = pl.Node
			pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now)}}}
			k := podKey(pod.Namespace, pod.Name)
			observed[k] = pod
			placed[k] = pl.App
		}
		for _, a := range p.Adopt {
			k := podKey(a.Namespace, a.Pod)
			if pod := observed[k]; pod != nil {
				pod = pod.DeepCopy()
				if pod.Annotations == nil {
					pod.Annotations = map[string]string{}
				}
				pod.Annotations[planner.AnnotationApp] = a.App
				if a.Revision != "" {
					if pod.Labels == nil {
						pod.Labels = map[string]string{}
					}
					pod.Labels[planner.LabelPodTemplateHash] = a.Revision
				}
				observed[k] = pod
			}
		}
		for _, d := range p.DeleteJobs {
			delete(jobs, podKey(d.Namespace, d.Name))
		}
		for _, j := range p.JobRuns {
			if k := podKey(j.Job.Namespace, j.Job.Name); jobs[k] == nil {
				jobs[k] = j.Job
			}
		}
		for k, v := range p.Apps {
			apps[k] = v
		}
		for _, k := range p.ForgetApps {
			delete(apps, k)
		}
		// A round that only updates app states may be followed by one that acts
		// (a new revision is recorded, then rolled out); two in a row are a rollout
		// that waits for something the simulation cannot give (an unplaceable pod, a
		// pod that is not ready) — it stays as it is.
		if len(p.Place)+len(p.Stop)+len(p.Preempt)+len(p.Adopt)+len(p.JobRuns)+len(p.DeleteJobs) == 0 {
			if idle++; idle >= 2 {
				settled = true
				break
			}
		} else {
			idle = 0
		}
		now = now.Add(step)
	}

	out := &Placement{Nodes: len(in.Nodes), Apps: []AppPlacement{}, Live: true, Running: running, Rounds: rounds, Unsettled: !settled}
	byApp := map[string]map[string]int{}
	for k, app := range placed {
		if byApp[app] == nil {
			byApp[app] = map[string]int{}
		}
		byApp[app][observed[k].Spec.NodeName]++
	}
	for app := range stopped {
		if app != "" && byApp[app] == nil {
			byApp[app] = map[string]int{}
		}
	}
	for _, app := range slices.Sorted(maps.Keys(byApp)) {
		ap := AppPlacement{App: app}
		for _, n := range slices.Sorted(maps.Keys(byApp[app])) {
			ap.Nodes = append(ap.Nodes, NodeCount{Node: n, Pods: byApp[app][n]})
			ap.Pods += byApp[app][n]
		}
		ap.Restarts = min(stopped[app], ap.Pods)
		ap.Stopped = stopped[app] - ap.Restarts
		out.Restarts += ap.Restarts
		out.Stopped += ap.Stopped
		out.Apps = append(out.Apps, ap)
	}
	out.Stopped += stopped[""]
	for _, k := range slices.Sorted(maps.Keys(evicted)) {
		out.Preempted = append(out.Preempted, evicted[k])
	}
	// What is left unplaced when the cluster settles is what does not fit.
	tail := PlacementOf(last, len(in.Nodes))
	out.Unplaceable, out.Deferred = tail.Unplaceable, tail.Deferred
	return out
}

// simulationStep is how far the logical clock moves per simulated round: past the
// longest minReadySeconds, so a pod started in one round counts as available in
// the next. At least one second.
func simulationStep(in planner.Input) time.Duration {
	step := time.Second
	if in.Desired == nil {
		return step
	}
	for _, d := range in.Desired.Deployments {
		if s := time.Duration(d.Spec.MinReadySeconds)*time.Second + time.Second; s > step {
			step = s
		}
	}
	return step
}

func podKey(ns, name string) string {
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + name
}
