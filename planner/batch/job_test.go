package batch

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// jobView is the readable part of a JobDecision.
type jobView struct {
	Create     []string
	Stop       []string
	Active     int32
	Succeeded  int32
	Failed     int32
	Completed  string   // completedIndexes
	Conditions []string // "Type=Status reason"
	Delete     bool
	Wake       string
	Events     []string
}

func viewJob(d JobDecision) jobView {
	v := jobView{Active: d.Status.Active, Succeeded: d.Status.Succeeded, Failed: d.Status.Failed,
		Completed: d.Status.CompletedIndexes, Delete: d.Delete, Wake: ts(d.Wake)}
	for _, p := range d.Create {
		v.Create = append(v.Create, p.Name)
	}
	for _, s := range d.Stop {
		v.Stop = append(v.Stop, s.Name)
	}
	for _, c := range d.Status.Conditions {
		v.Conditions = append(v.Conditions, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Reason))
	}
	for _, e := range d.Events {
		v.Events = append(v.Events, e.Reason)
	}
	return v
}

func check(t *testing.T, step string, d JobDecision, want jobView) {
	t.Helper()
	if diff := cmp.Diff(want, viewJob(d)); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", step, diff)
	}
}

func TestIndexedJobToComplete(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	c := &cluster{t: t, job: job("render").completions(5).parallelism(2).indexed().j, seed: 7}

	d := c.step(t0)
	names := d.Create
	if len(names) != 2 {
		t.Fatalf("created %d pods, want 2", len(names))
	}
	p0, p1 := names[0].Name, names[1].Name
	if !strings.HasPrefix(p0, "render-0-") || !strings.HasPrefix(p1, "render-1-") {
		t.Fatalf("pod names %s, %s; want render-0-<suffix>, render-1-<suffix>", p0, p1)
	}
	check(t, "start", d, jobView{Create: []string{p0, p1}, Active: 2})
	if d.Status.StartTime == nil || !d.Status.StartTime.Time.Equal(t0) {
		t.Fatalf("startTime = %v, want %s", d.Status.StartTime, t0)
	}

	// Nothing changed: nothing to do.
	c.run(p0)
	c.run(p1)
	check(t, "steady", c.step(sec(1)), jobView{Active: 2})

	// Index 1 succeeds first: the lowest missing index, 2, starts.
	c.finish(p1, corev1.PodSucceeded, sec(10))
	d = c.step(sec(11))
	p2 := d.Create[0].Name
	check(t, "index 1 done", d, jobView{Create: []string{p2}, Active: 2, Succeeded: 1, Completed: "1"})
	if !strings.HasPrefix(p2, "render-2-") {
		t.Fatalf("new pod %s, want index 2", p2)
	}

	// Index 0 fails (restartPolicy Never): it is retried after the 10 s back-off.
	c.finish(p0, corev1.PodFailed, sec(20))
	check(t, "index 0 failed, back-off", c.step(sec(21)), jobView{Active: 1, Succeeded: 1, Failed: 1, Completed: "1", Wake: ts(sec(30))})
	d = c.step(sec(30))
	p0b := d.Create[0].Name
	check(t, "index 0 retried", d, jobView{Create: []string{p0b}, Active: 2, Succeeded: 1, Failed: 1, Completed: "1"})
	if !strings.HasPrefix(p0b, "render-0-") || p0b == p0 {
		t.Fatalf("retry of index 0 named %s (first try %s)", p0b, p0)
	}

	for _, n := range []string{p0b, p2} {
		c.run(n)
		c.finish(n, corev1.PodSucceeded, sec(40))
	}
	d = c.step(sec(41))
	p3, p4 := d.Create[0].Name, d.Create[1].Name
	check(t, "0-2 done", d, jobView{Create: []string{p3, p4}, Active: 2, Succeeded: 3, Failed: 1, Completed: "0-2"})
	if !strings.HasPrefix(p3, "render-3-") || !strings.HasPrefix(p4, "render-4-") {
		t.Fatalf("pods %s %s, want indexes 3 and 4", p3, p4)
	}

	c.finish(p3, corev1.PodSucceeded, sec(50))
	check(t, "3 done, 4 running", c.step(sec(51)), jobView{Active: 1, Succeeded: 4, Failed: 1, Completed: "0-3"})
	c.finish(p4, corev1.PodSucceeded, sec(60))
	d = c.step(sec(61))
	check(t, "complete", d, jobView{Succeeded: 5, Failed: 1, Completed: "0-4",
		Conditions: []string{"Complete=True CompletionsReached"}, Events: []string{"Completed"}})
	if d.Status.CompletionTime == nil || !d.Status.CompletionTime.Time.Equal(sec(61)) {
		t.Fatalf("completionTime = %v", d.Status.CompletionTime)
	}
	// A finished Job stays finished and does nothing more.
	check(t, "after", c.step(sec(3600)), jobView{Succeeded: 5, Failed: 1, Completed: "0-4",
		Conditions: []string{"Complete=True CompletionsReached"}})
}

func TestIndexedPodShape(t *testing.T) {
	j := job("render").completions(3).parallelism(1).indexed().j
	j.UID = "job-uid"
	d := Step(j, nil, JobStatus{}, at(t, "2026-03-01T10:00:00Z"), 1)
	if len(d.Create) != 1 {
		t.Fatalf("created %d pods", len(d.Create))
	}
	p := d.Create[0]
	yes := true
	want := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: "default",
			Labels: map[string]string{"app": "render", LabelJobName: "render", LabelJobNameLegacy: "render",
				LabelControllerUID: "job-uid", LabelControllerUIDOld: "job-uid", LabelCompletionIndex: "0"},
			Annotations:     map[string]string{AnnotationCompletionIx: "0"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: "render", UID: "job-uid", Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: *j.Spec.Template.Spec.DeepCopy(),
	}
	want.Spec.Hostname = "render-0"
	want.Spec.Containers[0].Env = []corev1.EnvVar{{Name: EnvCompletionIndex, Value: "0"}, {Name: "MODE", Value: "test"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("pod (-want +got):\n%s", diff)
	}
	if j.Spec.Template.Spec.Containers[0].Env[0].Name != "MODE" || len(j.Spec.Template.Labels) != 1 {
		t.Fatal("Step changed the Job's template")
	}
}

func TestNonIndexedNamesAreSeededAndUnique(t *testing.T) {
	j := job("migrate").completions(3).parallelism(3).j
	now := at(t, "2026-03-01T10:00:00Z")
	a := Step(j, nil, JobStatus{}, now, 42)
	b := Step(j, nil, JobStatus{}, now, 42)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same inputs, different decisions:\n%s", diff)
	}
	other := Step(j, nil, JobStatus{}, now, 43)
	if other.Create[0].Name == a.Create[0].Name {
		t.Fatalf("seeds 42 and 43 gave the same name %s", a.Create[0].Name)
	}
	// A pod that already holds the first name pushes the new pods to the next ones.
	taken := a.Create[0].DeepCopy()
	taken.Status.Phase = corev1.PodFailed
	c := Step(j, []*corev1.Pod{taken}, JobStatus{}, now, 42)
	seen := map[string]bool{taken.Name: true}
	for _, p := range c.Create {
		if seen[p.Name] {
			t.Fatalf("duplicate pod name %s", p.Name)
		}
		seen[p.Name] = true
		if !strings.HasPrefix(p.Name, "migrate-") || len(p.Name) != len("migrate-")+5 {
			t.Fatalf("name %q, want migrate-<5 chars>", p.Name)
		}
		if _, ok := p.Labels[LabelCompletionIndex]; ok {
			t.Fatalf("NonIndexed pod has an index label")
		}
	}
}

func TestAlwaysFailingJob(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	c := &cluster{t: t, job: job("broken").backoff(2).j, seed: 1}

	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodFailed, sec(5))
	check(t, "first failure: 10 s back-off", c.step(sec(6)), jobView{Failed: 1, Wake: ts(sec(15))})
	check(t, "still backing off", c.step(sec(14)), jobView{Failed: 1, Wake: ts(sec(15))})
	d := c.step(sec(15))
	p = d.Create[0].Name
	check(t, "retry 1", d, jobView{Create: []string{p}, Active: 1, Failed: 1})
	c.finish(p, corev1.PodFailed, sec(20))
	check(t, "second failure: 20 s back-off", c.step(sec(21)), jobView{Failed: 2, Wake: ts(sec(40))})
	d = c.step(sec(40))
	p = d.Create[0].Name
	check(t, "retry 2", d, jobView{Create: []string{p}, Active: 1, Failed: 2})
	c.finish(p, corev1.PodFailed, sec(45))
	check(t, "third failure > backoffLimit 2", c.step(sec(46)), jobView{Failed: 3,
		Conditions: []string{"Failed=True BackoffLimitExceeded"}, Events: []string{"BackoffLimitExceeded"}})
	check(t, "no more pods", c.step(sec(3600)), jobView{Failed: 3, Conditions: []string{"Failed=True BackoffLimitExceeded"}})
	if n := len(c.pods); n != 3 {
		t.Fatalf("%d pods in all, want 3 (1 + backoffLimit retries)", n)
	}
}

func TestBackoff(t *testing.T) {
	got := []time.Duration{}
	for n := int32(0); n <= 8; n++ {
		got = append(got, Backoff(n))
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 320 * time.Second, 6 * time.Minute, 6 * time.Minute}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Backoff (-want +got):\n%s", diff)
	}
}

func TestSuccessResetsBackoff(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("flaky").completions(3).parallelism(1).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodFailed, t0.Add(time.Second))
	p = c.step(t0.Add(11 * time.Second)).Create[0].Name
	c.finish(p, corev1.PodSucceeded, t0.Add(20*time.Second))
	d := c.step(t0.Add(21 * time.Second))
	check(t, "success: next pod at once", d, jobView{Create: []string{d.Create[0].Name}, Active: 1, Succeeded: 1, Failed: 1})
}

func TestActiveDeadline(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("slow").deadline(60).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.run(p)
	check(t, "running", c.step(t0.Add(30*time.Second)), jobView{Active: 1, Wake: ts(t0.Add(60 * time.Second))})
	check(t, "deadline", c.step(t0.Add(60*time.Second)), jobView{Stop: []string{p},
		Conditions: []string{"Failed=True DeadlineExceeded"}, Events: []string{"DeadlineExceeded"}})
	// The stopped pod ends Failed: a finished Job does not count it or start more.
	c.finish(p, corev1.PodFailed, t0.Add(61*time.Second))
	check(t, "after", c.step(t0.Add(90*time.Second)), jobView{Conditions: []string{"Failed=True DeadlineExceeded"}})
}

func TestTTLAfterFinished(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("once").ttl(100).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodSucceeded, t0.Add(5*time.Second))
	done := t0.Add(6 * time.Second)
	check(t, "complete, TTL pending", c.step(done), jobView{Succeeded: 1,
		Conditions: []string{"Complete=True CompletionsReached"}, Events: []string{"Completed"}, Wake: ts(done.Add(100 * time.Second))})
	check(t, "before TTL", c.step(done.Add(99*time.Second)), jobView{Succeeded: 1,
		Conditions: []string{"Complete=True CompletionsReached"}, Wake: ts(done.Add(100 * time.Second))})
	check(t, "TTL expired", c.step(done.Add(100*time.Second)), jobView{Succeeded: 1,
		Conditions: []string{"Complete=True CompletionsReached"}, Delete: true, Events: []string{"TTLExpired"}})

	// TTL 0 deletes as soon as the Job fails.
	f := &cluster{t: t, job: job("zero").ttl(0).backoff(0).j, seed: 1}
	p = f.step(t0).Create[0].Name
	f.finish(p, corev1.PodFailed, t0.Add(time.Second))
	check(t, "failed, TTL 0", f.step(t0.Add(2*time.Second)), jobView{Failed: 1,
		Conditions: []string{"Failed=True BackoffLimitExceeded"}, Delete: true, Events: []string{"BackoffLimitExceeded", "TTLExpired"}})
}

func TestSuspendAndResume(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("batch").completions(4).parallelism(2).deadline(600).j, seed: 1}
	d := c.step(t0)
	a, b := d.Create[0].Name, d.Create[1].Name
	c.run(a)
	c.job.Spec.Suspend = ptrBool(true)
	check(t, "suspend stops the pods", c.step(t0.Add(time.Minute)), jobView{Stop: []string{a, b},
		Conditions: []string{"Suspended=True JobSuspended"}, Events: []string{"Suspended"}})
	// Stopped pods end Failed; being deleted, they are not counted as failures.
	c.finish(a, corev1.PodFailed, t0.Add(61*time.Second))
	check(t, "suspended: nothing runs, no deadline", c.step(t0.Add(time.Hour)), jobView{
		Conditions: []string{"Suspended=True JobSuspended"}})
	c.job.Spec.Suspend = ptrBool(false)
	resume := t0.Add(2 * time.Hour)
	d = c.step(resume)
	check(t, "resume", d, jobView{Create: []string{d.Create[0].Name, d.Create[1].Name}, Active: 2,
		Conditions: []string{"Suspended=False JobResumed"}, Events: []string{"Resumed"}, Wake: ts(resume.Add(600 * time.Second))})
	if !d.Status.StartTime.Time.Equal(resume) {
		t.Fatalf("startTime %s, want the resume time %s", d.Status.StartTime, resume)
	}
}

func TestSuspendedFromTheStart(t *testing.T) {
	d := Step(job("later").suspend(true).j, nil, JobStatus{}, at(t, "2026-03-01T10:00:00Z"), 1)
	check(t, "created suspended", d, jobView{Conditions: []string{"Suspended=True JobSuspended"}, Events: []string{"Suspended"}})
	if d.Status.StartTime != nil {
		t.Fatalf("a suspended Job has no startTime, got %s", d.Status.StartTime)
	}
}

func TestOnFailureRestartsCount(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("retry").onFailure().backoff(2).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.run(p)
	restart := func(n int32) {
		c.pod(p).Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: n,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	}
	restart(1)
	check(t, "one in-place restart: same pod, no new one", c.step(t0.Add(time.Minute)), jobView{Active: 1})
	restart(2)
	check(t, "restarts reach backoffLimit", c.step(t0.Add(2*time.Minute)), jobView{Stop: []string{p},
		Conditions: []string{"Failed=True BackoffLimitExceeded"}, Events: []string{"BackoffLimitExceeded"}})
	if len(c.pods) != 1 {
		t.Fatalf("OnFailure made %d pods, want 1", len(c.pods))
	}

	// backoffLimit 0: the first restart fails the Job.
	z := &cluster{t: t, job: job("strict").onFailure().backoff(0).j, seed: 1}
	p = z.step(t0).Create[0].Name
	z.run(p)
	z.pod(p).Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", RestartCount: 1}}
	check(t, "backoffLimit 0", z.step(t0.Add(time.Minute)), jobView{Stop: []string{p},
		Conditions: []string{"Failed=True BackoffLimitExceeded"}, Events: []string{"BackoffLimitExceeded"}})
}

func TestWorkQueueJob(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("queue").noCompletions().parallelism(3).j, seed: 1}
	d := c.step(t0)
	if len(d.Create) != 3 {
		t.Fatalf("created %d, want 3", len(d.Create))
	}
	a, b, x := d.Create[0].Name, d.Create[1].Name, d.Create[2].Name
	c.finish(a, corev1.PodSucceeded, t0.Add(time.Second))
	check(t, "one done: the others drain, none new", c.step(t0.Add(2*time.Second)), jobView{Active: 2, Succeeded: 1})
	c.finish(b, corev1.PodSucceeded, t0.Add(3*time.Second))
	c.finish(x, corev1.PodSucceeded, t0.Add(3*time.Second))
	check(t, "all done", c.step(t0.Add(4*time.Second)), jobView{Succeeded: 3,
		Conditions: []string{"Complete=True CompletionsReached"}, Events: []string{"Completed"}})
}

func TestParallelismLoweredStopsPendingFirst(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("wide").completions(10).parallelism(3).j, seed: 1}
	d := c.step(t0)
	c.run(d.Create[2].Name)
	c.job.Spec.Parallelism = ptrInt32(1)
	got := c.step(t0.Add(time.Second))
	pending := []string{d.Create[0].Name, d.Create[1].Name}
	if pending[0] > pending[1] {
		pending[0], pending[1] = pending[1], pending[0]
	}
	check(t, "parallelism 3 → 1", got, jobView{Stop: pending, Active: 1})
}

func TestCompletionStopsLeftovers(t *testing.T) {
	// completions 2, parallelism 3 runs 2 pods; when both succeed none is left, but a
	// pod that somehow still runs (a lost stop) is stopped on completion.
	t0 := at(t, "2026-03-01T10:00:00Z")
	j := job("two").completions(2).parallelism(3).j
	d := Step(j, nil, JobStatus{}, t0, 1)
	if len(d.Create) != 2 {
		t.Fatalf("created %d, want min(parallelism, completions) = 2", len(d.Create))
	}
	pods := []*corev1.Pod{d.Create[0], d.Create[1], d.Create[0].DeepCopy()}
	pods[2].Name = "two-extra"
	for i, p := range pods {
		p.Status.Phase = corev1.PodRunning
		if i < 2 {
			p.Status.Phase = corev1.PodSucceeded
		}
	}
	got := Step(j, pods, d.Status, t0.Add(time.Minute), 1)
	check(t, "complete", got, jobView{Stop: []string{"two-extra"}, Succeeded: 2,
		Conditions: []string{"Complete=True CompletionsReached"}, Events: []string{"Completed"}})
}

func TestCountedOnce(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("count").completions(3).parallelism(1).backoff(10).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodFailed, t0.Add(time.Second))
	for i := 2; i < 6; i++ {
		c.step(t0.Add(time.Duration(i) * time.Second))
	}
	if c.st.Failed != 1 {
		t.Fatalf("failed = %d after seeing one failed pod 4 times, want 1", c.st.Failed)
	}
	// The failed pod disappears (node lost, cleaned up): the count stays.
	c.pods = nil
	c.step(t0.Add(7 * time.Second))
	if c.st.Failed != 1 {
		t.Fatalf("failed = %d after the pod vanished, want 1", c.st.Failed)
	}
}

func TestIndexedStrayPods(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	j := job("ix").completions(2).parallelism(2).indexed().j
	mk := func(name, ix string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnotationCompletionIx: ix}}}
		p.Status.Phase = corev1.PodRunning
		return p
	}
	pods := []*corev1.Pod{mk("ix-0-a", "0"), mk("ix-0-b", "0"), mk("ix-7-a", "7"), mk("ix-x", "x")}
	d := Step(j, pods, JobStatus{}, t0, 1)
	got := viewJob(d)
	if len(got.Create) != 1 || !strings.HasPrefix(got.Create[0], "ix-1-") {
		t.Fatalf("create %v, want one pod for index 1", got.Create)
	}
	got.Create = nil
	check(t, "strays", JobDecision{Stop: d.Stop, Status: d.Status}, jobView{Stop: []string{"ix-0-b", "ix-7-a", "ix-x"}, Active: 2})
}

func TestSupersede(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("migrate").j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.run(p)
	d := Supersede(c.job, c.pods, c.st, t0.Add(time.Minute))
	check(t, "supersede", d, jobView{Stop: []string{p}, Conditions: []string{"Failed=True Superseded"}, Events: []string{"Superseded"}})
	again := Supersede(c.job, c.pods, d.Status, t0.Add(2*time.Minute))
	check(t, "finished: left alone", again, jobView{Conditions: []string{"Failed=True Superseded"}})
}

func TestNilPodsAreIgnored(t *testing.T) {
	d := Step(job("x").j, []*corev1.Pod{nil}, JobStatus{}, at(t, "2026-03-01T10:00:00Z"), 1)
	if len(d.Create) != 1 {
		t.Fatalf("created %d", len(d.Create))
	}
}

func TestIndexesFormat(t *testing.T) {
	for _, tt := range []struct {
		in   []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2, 5, 7, 8}, "0-2,5,7-8"}} {
		got := formatIndexes(tt.in)
		if got != tt.want {
			t.Errorf("formatIndexes(%v) = %q, want %q", tt.in, got, tt.want)
		}
		back := sortedKeys(parseIndexes(got, 100))
		if diff := cmp.Diff(append([]int{}, tt.in...), back); diff != "" {
			t.Errorf("round trip of %q (-want +got):\n%s", got, diff)
		}
	}
	if got := sortedKeys(parseIndexes("1,x,3-2,-4,2-4,9", 4)); !cmp.Equal(got, []int{1, 2, 3}) {
		t.Errorf("parseIndexes of junk = %v, want [1 2 3]", got)
	}
}

func ptrBool(v bool) *bool { return &v }

// A stopped pod is not counted however it ends, and its Stop repeats while the
// caller has not acted on it (no deletionTimestamp yet).
func TestStoppedPodsAreNotCounted(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	j := job("wide").completions(10).parallelism(2).backoff(0).j
	d := Step(j, nil, JobStatus{}, t0, 1)
	pods := []*corev1.Pod{d.Create[0], d.Create[1]}
	for _, p := range pods {
		p.Status.Phase = corev1.PodRunning
	}
	j.Spec.Parallelism = ptrInt32(1)
	d = Step(j, pods, d.Status, t0.Add(time.Second), 1)
	if len(d.Stop) != 1 {
		t.Fatalf("stop %v, want one pod", d.Stop)
	}
	victim := d.Stop[0].Name
	if diff := cmp.Diff([]string{victim}, d.Status.Stopped); diff != "" {
		t.Fatalf("Stopped (-want +got):\n%s", diff)
	}
	// Not acted on yet: the Stop repeats, no new pod starts.
	again := Step(j, pods, d.Status, t0.Add(2*time.Second), 1)
	check(t, "stop repeats", again, jobView{Stop: []string{victim}, Active: 1})
	// It ends Failed (killed) without a deletionTimestamp: backoffLimit 0 is not tripped.
	for _, p := range pods {
		if p.Name == victim {
			p.Status.Phase = corev1.PodFailed
		}
	}
	after := Step(j, pods, again.Status, t0.Add(3*time.Second), 1)
	check(t, "killed pod not counted", after, jobView{Active: 1})
	// Once it is gone, Stopped forgets it.
	if got := Step(j, pods[:0], after.Status, t0.Add(4*time.Second), 1).Status.Stopped; got != nil {
		t.Fatalf("Stopped = %v after the pod vanished", got)
	}
}

// The store keeps JobStatus as JSON: the Kubernetes fields stay at the top level
// (as `status` of a Job) and a round trip loses nothing Step needs.
func TestJobStatusJSON(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("j").completions(2).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodFailed, t0.Add(time.Second))
	c.step(t0.Add(2 * time.Second))
	b, err := json.Marshal(c.st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"failed":1`, `"startTime":"2026-03-01T10:00:00Z"`, `"counted":["` + p + `"]`, `"failuresSinceSuccess":1`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back JobStatus
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c.st, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestIndexedParallelismLowered(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("ix").completions(6).parallelism(3).indexed().j, seed: 1}
	d := c.step(t0)
	for _, p := range d.Create {
		c.run(p.Name)
	}
	c.job.Spec.Parallelism = ptrInt32(1)
	got := c.step(t0.Add(time.Second))
	check(t, "keeps the lowest index", got, jobView{Stop: []string{d.Create[1].Name, d.Create[2].Name}, Active: 1})
}

func TestHostnameIsADNSLabel(t *testing.T) {
	long := strings.Repeat("a", 60) + "-bcd"
	if h := hostname(long, "12"); len(h) > 63 || !strings.HasSuffix(h, "-12") {
		t.Fatalf("hostname %q (%d chars)", h, len(h))
	}
	if h := hostname(strings.Repeat("a", 59)+"-", "7"); h != strings.Repeat("a", 59)+"-7" {
		t.Fatalf("hostname %q: want the trailing dash of the cut name dropped", h)
	}
}

func TestRef(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	start := metav1.NewTime(t0)
	for _, tt := range []struct {
		cond batchv1.JobConditionType
		want JobResult
	}{{batchv1.JobComplete, ResultSucceeded}, {batchv1.JobFailed, ResultFailed}, {batchv1.JobSuspended, ResultActive}} {
		st := JobStatus{JobStatus: batchv1.JobStatus{StartTime: &start,
			Conditions: []batchv1.JobCondition{{Type: tt.cond, Status: corev1.ConditionTrue, LastTransitionTime: start}}}}
		r := Ref(job("x").j, st)
		if r.Result != tt.want || !r.StartTime.Equal(t0) || !r.ScheduledTime.IsZero() {
			t.Errorf("Ref with %s = %+v, want result %q", tt.cond, r, tt.want)
		}
	}
}
