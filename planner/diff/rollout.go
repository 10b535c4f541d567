package diff

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/batch"
)

// replicas is spec.replicas with Kubernetes' default of 1.
func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return max(*d.Spec.Replicas, 0)
}

func pods(n int32) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

// deploymentRollout describes what a Deployment change does to its pods; nil if
// its pods are untouched. base or head is nil for a created or deleted Deployment;
// causes name the ConfigMaps and Secrets whose change rolls it.
func deploymentRollout(base, head *appsv1.Deployment, causes []string) *Rollout {
	switch {
	case head == nil:
		return &Rollout{Strategy: strategyOf(base), OldReplicas: replicas(base), OldHash: planner.TemplateHash(&base.Spec.Template),
			Summary: pruneSummary(base.Name, base.ObjectMeta, replicas(base))}
	case base == nil:
		n := replicas(head)
		return &Rollout{Strategy: strategyOf(head), Replicas: n, NewHash: planner.TemplateHash(&head.Spec.Template),
			Summary: fmt.Sprintf("%s: %s created", head.Name, pods(n))}
	}
	oldHash, newHash := planner.TemplateHash(&base.Spec.Template), planner.TemplateHash(&head.Spec.Template)
	oldN, newN := replicas(base), replicas(head)
	r := &Rollout{Strategy: strategyOf(head), TemplateChanged: oldHash != newHash, OldHash: oldHash, NewHash: newHash,
		Cause: causes, OldReplicas: oldN, Replicas: newN}
	rolls := r.TemplateChanged || len(causes) > 0
	if !rolls && oldN == newN {
		if head.Spec.Paused != base.Spec.Paused {
			r.Summary = pausedSummary(head)
			return r
		}
		return nil
	}
	name := head.Name
	scale := ""
	if oldN != newN {
		scale = fmt.Sprintf("scale %d → %d", oldN, newN)
	}
	switch {
	case head.Spec.Paused:
		r.Summary = pausedSummary(head)
	case !rolls:
		if newN > oldN {
			r.Summary = fmt.Sprintf("%s: %s (%s added)", name, scale, pods(newN-oldN))
		} else {
			r.Summary = fmt.Sprintf("%s: %s (%s stopped)", name, scale, pods(oldN-newN))
		}
	case newN == 0:
		r.Summary = fmt.Sprintf("%s: %s (all %s stopped)", name, scale, pods(oldN))
	case r.Strategy == string(appsv1.RecreateDeploymentStrategyType):
		r.Summary = fmt.Sprintf("%s: all %s stopped, then %d started", name, pods(oldN), newN)
		if scale != "" {
			r.Summary = fmt.Sprintf("%s: %s, all %s stopped, then %d started", name, scale, pods(oldN), newN)
		}
	default:
		surge, unavail, err := planner.RollingBudget(head, newN)
		if err != nil {
			r.Summary = fmt.Sprintf("%s: rollout blocked, nothing changes: %v", name, err)
			break
		}
		r.MaxSurge, r.MaxUnavailable = surge, unavail
		what := fmt.Sprintf("%s replaced", pods(newN))
		if scale != "" {
			what = fmt.Sprintf("%s, %s replace %d", scale, pods(newN), oldN)
		}
		step := fmt.Sprintf("%d at a time, surge %d", min(surge+unavail, newN), surge)
		if unavail > 0 {
			step += fmt.Sprintf(", max unavailable %d", unavail)
		}
		r.Summary = fmt.Sprintf("%s: %s, %s", name, what, step)
	}
	return r
}

func pausedSummary(d *appsv1.Deployment) string {
	if d.Spec.Paused {
		return fmt.Sprintf("%s: paused (spec.paused): no pod is created or stopped until it is resumed", d.Name)
	}
	return fmt.Sprintf("%s: resumed: the rollout to the current template continues", d.Name)
}

func strategyOf(d *appsv1.Deployment) string {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return string(appsv1.RecreateDeploymentStrategyType)
	}
	return string(appsv1.RollingUpdateDeploymentStrategyType)
}

// pruneSummary is what happens to the pods of a workload removed from git.
func pruneSummary(name string, meta metav1.ObjectMeta, n int32) string {
	if meta.Annotations[api.AnnotationPrune] == "false" {
		return fmt.Sprintf("%s: left git, but %s keep running (%s: \"false\")", name, pods(n), api.AnnotationPrune)
	}
	return fmt.Sprintf("%s: left git, %s stopped", name, pods(n))
}

// podTemplate is the template the planner hashes for a bare Pod.
func podTemplate(p *corev1.Pod) *corev1.PodTemplateSpec {
	return &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: p.Labels, Annotations: p.Annotations},
		Spec:       p.Spec,
	}
}

// podRollout describes a bare Pod change: pods are immutable, so a changed Pod is
// stopped and started again (in the next reconcile round).
func podRollout(base, head *corev1.Pod, causes []string) *Rollout {
	switch {
	case head == nil:
		return &Rollout{Strategy: "Replace", OldHash: planner.TemplateHash(podTemplate(base)), Summary: pruneSummary(base.Name, base.ObjectMeta, 1)}
	case base == nil:
		return &Rollout{Strategy: "Replace", NewHash: planner.TemplateHash(podTemplate(head)), Summary: fmt.Sprintf("%s: 1 pod created", head.Name)}
	}
	r := &Rollout{Strategy: "Replace", OldHash: planner.TemplateHash(podTemplate(base)), NewHash: planner.TemplateHash(podTemplate(head)), Cause: causes}
	r.TemplateChanged = r.OldHash != r.NewHash
	if !r.TemplateChanged && len(causes) == 0 {
		return nil
	}
	r.Summary = fmt.Sprintf("%s: replaced: stopped, then started again (pods are immutable)", head.Name)
	return r
}

// jobRollout describes a Job change. A Job is immutable, so a changed spec (its
// batch.SpecHash) is a new run; see docs/BATCH.md.
func jobRollout(base, head *batchv1.Job) *Rollout {
	switch {
	case head == nil:
		return &Rollout{Strategy: "Run", OldHash: batch.SpecHash(base),
			Summary: fmt.Sprintf("%s: no new runs; a run still going finishes, finished runs are kept as history", base.Name)}
	case base == nil:
		return &Rollout{Strategy: "Run", NewHash: batch.SpecHash(head), Summary: fmt.Sprintf("%s: new run %s", head.Name, batch.RunName(head))}
	}
	r := &Rollout{Strategy: "Run", OldHash: batch.SpecHash(base), NewHash: batch.SpecHash(head)}
	r.TemplateChanged = r.OldHash != r.NewHash
	if r.TemplateChanged {
		r.Summary = fmt.Sprintf("%s: spec changed → new run %s (a run of the old spec still going is stopped)", head.Name, batch.RunName(head))
	} else {
		r.Summary = fmt.Sprintf("%s: no new run; the change applies to the current run %s", head.Name, batch.RunName(head))
	}
	return r
}

// cronJobRollout describes a CronJob change: later runs use the new spec, a run
// already going keeps the one it started with.
func cronJobRollout(base, head *batchv1.CronJob) *Rollout {
	r := &Rollout{Strategy: "Schedule"}
	switch {
	case head == nil:
		r.Summary = fmt.Sprintf("%s: no more runs; a run still going finishes", base.Name)
	case base == nil:
		r.Summary = fmt.Sprintf("%s: runs on schedule %q", head.Name, head.Spec.Schedule)
		if head.Spec.Suspend != nil && *head.Spec.Suspend {
			r.Summary = fmt.Sprintf("%s: suspended: no runs until spec.suspend is false", head.Name)
		}
	default:
		wasSuspended := base.Spec.Suspend != nil && *base.Spec.Suspend
		suspended := head.Spec.Suspend != nil && *head.Spec.Suspend
		switch {
		case suspended && !wasSuspended:
			r.Summary = fmt.Sprintf("%s: suspended: no new runs; runs going continue", head.Name)
		case !suspended && wasSuspended:
			r.Summary = fmt.Sprintf("%s: resumed on schedule %q", head.Name, head.Spec.Schedule)
		default:
			r.Summary = fmt.Sprintf("%s: next runs use the new spec; a run already going keeps its spec", head.Name)
		}
	}
	return r
}
