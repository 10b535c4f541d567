package batch

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// at parses an RFC 3339 time; tests use it as their fake clock.
func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("bad time %q: %v", s, err)
	}
	return v
}

// cronJob is a fixture builder: a defaulted CronJob as package manifest returns it.
type cronJobB struct{ cj *batchv1.CronJob }

func cronJob(name, schedule string) *cronJobB {
	f := false
	three, one := int32(3), int32(1)
	return &cronJobB{&batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: "cj-uid"},
		Spec: batchv1.CronJobSpec{
			Schedule:                   schedule,
			ConcurrencyPolicy:          batchv1.AllowConcurrent,
			Suspend:                    &f,
			SuccessfulJobsHistoryLimit: &three,
			FailedJobsHistoryLimit:     &one,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "data"}},
				Spec:       job("tmpl").j.Spec,
			},
		},
	}}
}

func (b *cronJobB) created(t time.Time) *cronJobB {
	b.cj.CreationTimestamp = metav1.NewTime(t)
	return b
}
func (b *cronJobB) zone(z string) *cronJobB { b.cj.Spec.TimeZone = &z; return b }
func (b *cronJobB) deadline(s int64) *cronJobB {
	b.cj.Spec.StartingDeadlineSeconds = &s
	return b
}
func (b *cronJobB) policy(p batchv1.ConcurrencyPolicy) *cronJobB {
	b.cj.Spec.ConcurrencyPolicy = p
	return b
}
func (b *cronJobB) suspend() *cronJobB { v := true; b.cj.Spec.Suspend = &v; return b }
func (b *cronJobB) limits(succ, failed int32) *cronJobB {
	b.cj.Spec.SuccessfulJobsHistoryLimit, b.cj.Spec.FailedJobsHistoryLimit = &succ, &failed
	return b
}

// job is a fixture builder: a defaulted Job (completions 1, parallelism 1,
// backoffLimit 6, NonIndexed, restartPolicy Never).
type jobB struct{ j *batchv1.Job }

func job(name string) *jobB {
	one, six := int32(1), int32(6)
	nonIndexed := batchv1.NonIndexedCompletion
	f := false
	grace := int64(30)
	return &jobB{&batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: batchv1.JobSpec{
			Completions: &one, Parallelism: &one, BackoffLimit: &six,
			CompletionMode: &nonIndexed, Suspend: &f,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{
					RestartPolicy:                 corev1.RestartPolicyNever,
					TerminationGracePeriodSeconds: &grace,
					Containers: []corev1.Container{{
						Name: "main", Image: "gantry.test/batch:v1",
						Env: []corev1.EnvVar{{Name: "MODE", Value: "test"}},
					}},
				},
			},
		},
	}}
}

func (b *jobB) completions(n int32) *jobB { b.j.Spec.Completions = &n; return b }
func (b *jobB) noCompletions() *jobB      { b.j.Spec.Completions = nil; return b }
func (b *jobB) parallelism(n int32) *jobB { b.j.Spec.Parallelism = &n; return b }
func (b *jobB) backoff(n int32) *jobB     { b.j.Spec.BackoffLimit = &n; return b }
func (b *jobB) indexed() *jobB {
	m := batchv1.IndexedCompletion
	b.j.Spec.CompletionMode = &m
	return b
}
func (b *jobB) deadline(s int64) *jobB { b.j.Spec.ActiveDeadlineSeconds = &s; return b }
func (b *jobB) ttl(s int32) *jobB      { b.j.Spec.TTLSecondsAfterFinished = &s; return b }
func (b *jobB) suspend(v bool) *jobB   { b.j.Spec.Suspend = &v; return b }
func (b *jobB) onFailure() *jobB {
	b.j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	return b
}

// cluster is a fake executor for Job tests: it holds the pods Step created and
// lets a test move them through their phases.
type cluster struct {
	t    *testing.T
	job  *batchv1.Job
	pods []*corev1.Pod
	st   JobStatus
	seed int64
}

// step runs Step at now and applies its decision: created pods become Pending,
// stopped pods get a deletionTimestamp (the executor then removes them).
func (c *cluster) step(now time.Time) JobDecision {
	c.t.Helper()
	d := Step(c.job, c.pods, c.st, now, c.seed)
	for _, p := range d.Create {
		p = p.DeepCopy()
		p.Status.Phase = corev1.PodPending
		c.pods = append(c.pods, p)
	}
	for _, s := range d.Stop {
		p := c.pod(s.Name)
		ts := metav1.NewTime(now)
		p.DeletionTimestamp = &ts
	}
	c.st = d.Status
	return d
}

func (c *cluster) pod(name string) *corev1.Pod {
	c.t.Helper()
	for _, p := range c.pods {
		if p.Name == name {
			return p
		}
	}
	c.t.Fatalf("no pod %q", name)
	return nil
}

// finish ends pod name with phase at time t.
func (c *cluster) finish(name string, phase corev1.PodPhase, t time.Time) {
	p := c.pod(name)
	p.Status.Phase = phase
	code := int32(0)
	if phase == corev1.PodFailed {
		code = 1
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code, FinishedAt: metav1.NewTime(t)}}}}
}

func (c *cluster) run(name string) { c.pod(name).Status.Phase = corev1.PodRunning }

// live lists the names of the pods not being deleted, in creation order.
func (c *cluster) live() []string {
	var out []string
	for _, p := range c.pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p.Name)
		}
	}
	return out
}
