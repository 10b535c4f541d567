package controlplane_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/planner/batch"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

// fixedClock is a clock the test sets.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fixedClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

const batchManifests = `apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: c
              image: gantry.test/batch:v1
              resources:
                requests: {cpu: 10m, memory: 8Mi}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  completions: 2
  parallelism: 2
  ttlSecondsAfterFinished: 30
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: c
          image: gantry.test/batch:v1
          resources:
            requests: {cpu: 10m, memory: 8Mi}
`

// startBatchReconciler runs a reconcile loop with clock over a git repository
// holding manifests, and one ready node n1.
func startBatchReconciler(t *testing.T, manifests string, clock func() time.Time) (*env, *controlplane.Reconciler) {
	t.Helper()
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "batch")
	repo.Commit(t, map[string]string{"batch.yaml": manifests}, "batch")
	repo.Push(t)
	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(gitsync.Source{URL: repo.URL, PollInterval: time.Hour},
		gitsync.WithDataDir(filepath.Join(t.TempDir(), "git")), gitsync.WithLogger(quiet),
		gitsync.WithOnError(func(err error, retry time.Duration) { rec.SourceError(err, retry) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syncer.Close() })
	e := startServer(t, controlplane.WithNodeGracePeriod(time.Hour))
	rec = controlplane.NewReconciler(e.st, syncer, controlplane.WithReconcileLogger(quiet),
		controlplane.WithResync(200*time.Millisecond), controlplane.WithReconcileClock(clock))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"},
		Annotations: map[string]string{api.AnnotationHeartbeat: time.Now().UTC().Format(time.RFC3339Nano)}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}},
		}}
	if _, err := e.st.Nodes().Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	return e, rec
}

// finishPods plays the agent: every pending pod of run ends with exit code.
func finishPods(t *testing.T, st *store.Store, run string, code int32, at time.Time) int {
	t.Helper()
	ctx := context.Background()
	pods, err := st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.Labels[batch.LabelJobName] != run || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		p.Status.Phase = corev1.PodSucceeded
		if code != 0 {
			p.Status.Phase = corev1.PodFailed
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: code, StartedAt: metav1.NewTime(at.Add(-time.Second)), FinishedAt: metav1.NewTime(at)}}}}
		if _, err := st.Pods().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func waitJob(t *testing.T, st *store.Store, rec *controlplane.Reconciler, name, what string, ok func(*batchv1.Job) bool) *batchv1.Job {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last *batchv1.Job
	for time.Now().Before(deadline) {
		j, err := st.Jobs().Get(context.Background(), "default", name)
		if err == nil {
			last = j
			if ok(j) {
				return j
			}
		} else if !errors.Is(err, api.ErrNotFound) {
			t.Fatal(err)
		}
		rec.Kick()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %s: %s: timed out; last: %+v", name, what, last)
	return nil
}

func hasCond(j *batchv1.Job, typ batchv1.JobConditionType, reason string) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue && (reason == "" || c.Reason == reason) {
			return true
		}
	}
	return false
}

// TestJobStatusEventsAndRunNow: the planner's run status lands in the stored
// Jobs (active, succeeded, conditions, start and completion times); a repeated
// event (Forbid skipping a tick, every round) is one Event with a count; the
// TTL deletes a finished run with its pods; a CronJob runs now under a new name,
// and a taken name is a clear AlreadyExists.
func TestJobStatusEventsAndRunNow(t *testing.T) {
	testenv.Integration(t, "git")
	t0 := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	clk := &fixedClock{t: t0}
	e, rec := startBatchReconciler(t, batchManifests, clk.now)
	ctx := context.Background()

	// The Job "once": a run with 2 active pods; status copied into the stored Job.
	var onceRun string
	deadline := time.Now().Add(30 * time.Second)
	for onceRun == "" && time.Now().Before(deadline) {
		jobs, err := e.st.Jobs().List(ctx, "", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs.Items {
			if strings.HasPrefix(j.Name, "once-") {
				onceRun = j.Name
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if onceRun == "" {
		t.Fatal("no run of Job once was created")
	}
	j := waitJob(t, e.st, rec, onceRun, "2 active", func(j *batchv1.Job) bool { return j.Status.Active == 2 && j.Status.StartTime != nil })
	if !j.Status.StartTime.Time.Equal(t0.Truncate(time.Second)) {
		t.Fatalf("startTime %v, want %v", j.Status.StartTime, t0)
	}
	if n := finishPods(t, e.st, onceRun, 0, t0.Add(5*time.Second)); n != 2 {
		t.Fatalf("%d pods of %s finished, want 2", n, onceRun)
	}
	clk.set(t0.Add(10 * time.Second))
	j = waitJob(t, e.st, rec, onceRun, "Complete", func(j *batchv1.Job) bool {
		return j.Status.Succeeded == 2 && j.Status.Active == 0 && hasCond(j, batchv1.JobComplete, "") && j.Status.CompletionTime != nil
	})

	// The first tick of "tick" (10:01): one run, active.
	clk.set(t0.Add(35 * time.Second)) // 10:01:05
	tick1 := batch.JobName("tick", time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC))
	waitJob(t, e.st, rec, tick1, "active", func(j *batchv1.Job) bool { return j.Status.Active == 1 })

	// 10:02:05 with tick1 still running: Forbid skips the tick, every round, and
	// that is one event with a count.
	clk.set(t0.Add(95 * time.Second))
	var skipped *corev1.Event
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		rec.Kick()
		time.Sleep(300 * time.Millisecond)
		evs, err := e.st.Events().List(ctx, "default", store.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs.Items {
			if ev.Reason == batch.ReasonJobAlreadyActive {
				n++
				skipped = ev
			}
		}
		if n > 1 {
			t.Fatalf("%d JobAlreadyActive events, want one with a count", n)
		}
		if skipped != nil && skipped.Count >= 3 {
			break
		}
	}
	if skipped == nil || skipped.Count < 3 {
		t.Fatalf("JobAlreadyActive event after several rounds: %+v", skipped)
	}
	if skipped.InvolvedObject.Kind != "CronJob" || skipped.InvolvedObject.Name != "tick" {
		t.Fatalf("event on %+v, want CronJob tick", skipped.InvolvedObject)
	}

	// CronJob status: lastScheduleTime 10:01, one active run, next 10:03.
	cj, err := rec.CronJob(ctx, "default", "tick")
	if err != nil {
		t.Fatal(err)
	}
	if cj.Status.LastScheduleTime == nil || !cj.Status.LastScheduleTime.Time.Equal(time.Date(2026, 3, 1, 10, 1, 0, 0, time.UTC)) ||
		len(cj.Status.Active) != 1 || cj.Status.Active[0].Name != tick1 {
		t.Fatalf("cronjob status %+v", cj.Status)
	}
	if got := cj.Annotations[controlplane.AnnotationNextScheduleTime]; got != "2026-03-01T10:03:00Z" {
		t.Fatalf("next schedule %q, want 2026-03-01T10:03:00Z", got)
	}

	// Run now: a manual Job from the template; the same name again is refused.
	manual, err := rec.RunCronJob(ctx, "default", "tick", "tick-manual")
	if err != nil {
		t.Fatal(err)
	}
	if manual.Annotations[batch.AnnotationInstantiate] != "manual" || manual.Labels[batch.LabelCronJob] != "tick" {
		t.Fatalf("manual job meta %+v", manual.ObjectMeta)
	}
	if _, err := rec.RunCronJob(ctx, "default", "tick", "tick-manual"); !errors.Is(err, api.ErrAlreadyExists) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second run-now with the same name: %v, want AlreadyExists", err)
	}
	if _, err := rec.RunCronJob(ctx, "default", "nope", "x"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("run-now of an unknown cronjob: %v, want NotFound", err)
	}
	if _, err := rec.RunCronJob(ctx, "default", "tick", "Bad_Name"); !errors.Is(err, api.ErrInvalidArgument) {
		t.Fatalf("run-now with a bad name: %v, want InvalidArgument", err)
	}
	waitJob(t, e.st, rec, "tick-manual", "active", func(j *batchv1.Job) bool { return j.Status.Active == 1 })

	// tick1 and the manual run finish; the skipped 10:02 tick then runs (Forbid
	// does not advance lastScheduleTime).
	finishPods(t, e.st, tick1, 0, t0.Add(96*time.Second))
	finishPods(t, e.st, "tick-manual", 0, t0.Add(96*time.Second))
	clk.set(t0.Add(100 * time.Second))
	waitJob(t, e.st, rec, tick1, "Complete", func(j *batchv1.Job) bool { return hasCond(j, batchv1.JobComplete, "") && j.Status.Succeeded == 1 })
	waitJob(t, e.st, rec, batch.JobName("tick", time.Date(2026, 3, 1, 10, 2, 0, 0, time.UTC)), "the skipped tick runs", func(j *batchv1.Job) bool { return true })

	// ttlSecondsAfterFinished 30: the run of once and its pods are deleted.
	clk.set(j.Status.CompletionTime.Add(31 * time.Second))
	deadline = time.Now().Add(30 * time.Second)
	for {
		rec.Kick()
		_, err := e.st.Jobs().Get(ctx, "default", onceRun)
		pods, perr := e.st.Pods().List(ctx, "", store.ListOptions{Selector: mustSelector(t, batch.LabelJobName+"="+onceRun)})
		if perr != nil {
			t.Fatal(perr)
		}
		if errors.Is(err, api.ErrNotFound) && len(pods.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s after its TTL: get err %v, %d pods", onceRun, err, len(pods.Items))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
