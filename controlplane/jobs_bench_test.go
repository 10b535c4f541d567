package controlplane_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

const benchCronJobs = 1000

// benchClock stands still at a fixed time until jumpTo, then runs with real time.
type benchClock struct {
	mu     sync.Mutex
	fixed  time.Time
	off    time.Duration
	moving bool
}

func (c *benchClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.moving {
		return c.fixed
	}
	return time.Now().Add(c.off)
}

// jumpTo makes the clock read t now and run from there.
func (c *benchClock) jumpTo(t time.Time) {
	c.mu.Lock()
	c.off, c.moving = time.Until(t), true
	c.mu.Unlock()
}

func benchCronManifests(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: cron-%04d
spec:
  schedule: "* * * * *"
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
`, i)
	}
	return b.String()
}

// BenchmarkCronJobs1000SameMinute: 1,000 `* * * * *` CronJobs from git on the
// real reconcile loop over an embedded etcd (fsync on) with 10 ready nodes and
// no agents. The loop's clock stands still at 10:00:05 until the loop has seen
// all 1,000 (their apps are stored); then it jumps to 5 s before the next minute
// and runs with real time, so the tick comes due on the loop's own wake-up timer as in
// production. Measured per CronJob, from the scheduled time (the real instant
// the clock reads the minute): Job created (the store's watch delivers it) and
// pod placed (the run's pod is bound to a node in the store). One op is one tick
// of 1,000; runs pile up (no agent finishes them), so use the default -benchtime
// (one op).
func BenchmarkCronJobs1000SameMinute(b *testing.B) {
	testenv.Integration(b, "git")
	git := testenv.StartGitDaemon(b)
	repo := git.NewRepo(b, "cron")
	repo.Commit(b, map[string]string{"cron.yaml": benchCronManifests(benchCronJobs)}, "1000 cronjobs")
	repo.Push(b)

	dir := b.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	cli, err := e.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	st := store.New(cli)
	for i := range 10 {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("n%d", i), Labels: map[string]string{"kubernetes.io/hostname": fmt.Sprintf("n%d", i)},
			Annotations: map[string]string{api.AnnotationHeartbeat: time.Now().UTC().Format(time.RFC3339Nano)}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("5000")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}},
			}}
		if _, err := st.Nodes().Create(ctx, n); err != nil {
			b.Fatal(err)
		}
	}
	// The clock stands at 10:00:05 while the loop first sees the CronJobs (however
	// long that takes), so no tick comes due before the measured one.
	clk := &benchClock{fixed: time.Date(2026, 3, 1, 10, 0, 5, 0, time.UTC)}
	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(gitsync.Source{URL: repo.URL, PollInterval: time.Hour},
		gitsync.WithDataDir(filepath.Join(dir, "git")), gitsync.WithLogger(quiet),
		gitsync.WithOnError(func(err error, retry time.Duration) { rec.SourceError(err, retry) }))
	if err != nil {
		b.Fatal(err)
	}
	defer syncer.Close()
	rec = controlplane.NewReconciler(st, syncer, controlplane.WithReconcileLogger(quiet), controlplane.WithReconcileClock(clk.now),
		controlplane.WithResync(time.Hour), controlplane.WithPlannerConfig(planner.Config{MaxStartsPerNodePerRound: -1}))
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Setup: every CronJob's app is stored (anchored, see CronState.Since).
	deadline := time.Now().Add(10 * time.Minute)
	for {
		apps, err := st.Apps().List(ctx, "", store.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, a := range apps.Items {
			if a.State.Cron != nil && !a.State.Cron.Since.IsZero() {
				n++
			}
		}
		if n == benchCronJobs {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d CronJob apps stored after 10 minutes", n, benchCronJobs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var created, placed []time.Duration
	b.ResetTimer()
	for range b.N {
		jobs, err := st.Jobs().Watch(ctx, "", store.WatchOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pods, err := st.Pods().Watch(ctx, "", store.WatchOptions{})
		if err != nil {
			b.Fatal(err)
		}
		known := map[string]bool{}
		// Drain the initial Added events of runs from earlier ticks.
		drain := time.After(2 * time.Second)
	initial:
		for {
			select {
			case ev := <-jobs:
				known[ev.Object.Name] = true
			case ev := <-pods:
				known["pod/"+ev.Object.Name] = true
			case <-drain:
				break initial
			}
		}
		tick := clk.now().Truncate(time.Minute).Add(time.Minute)
		clk.jumpTo(tick.Add(-5 * time.Second))
		due := time.Now().Add(5 * time.Second) // the real instant the clock reads tick
		rec.Kick()                             // the loop recomputes its wake-up for the tick
		nJobs, nPods := 0, 0
		limit := time.After(5 * time.Minute)
		for nJobs < benchCronJobs || nPods < benchCronJobs {
			select {
			case ev := <-jobs:
				if ev.Type == store.Added && !known[ev.Object.Name] {
					known[ev.Object.Name] = true
					created = append(created, time.Since(due))
					nJobs++
				}
			case ev := <-pods:
				if ev.Type == store.Added && !known["pod/"+ev.Object.Name] && ev.Object.Spec.NodeName != "" {
					known["pod/"+ev.Object.Name] = true
					placed = append(placed, time.Since(due))
					nPods++
				}
			case <-limit:
				b.Fatalf("after 5 minutes: %d jobs created, %d pods placed of %d", nJobs, nPods, benchCronJobs)
			}
		}
	}
	b.StopTimer()
	report := func(name string, l []time.Duration) {
		sort.Slice(l, func(i, k int) bool { return l[i] < l[k] })
		pct := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000 }
		b.ReportMetric(pct(0.50), name+"-p50-ms")
		b.ReportMetric(pct(0.99), name+"-p99-ms")
		b.ReportMetric(pct(1), name+"-max-ms")
	}
	report("created", created)
	report("placed", placed)
	b.ReportMetric(0, "ns/op")
}
