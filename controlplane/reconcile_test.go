package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

func deploymentYAML(image string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: %s
          resources:
            requests: {cpu: 100m, memory: 32Mi}
`, replicas, image)
}

// markReady plays the agent: every pod on the node is Running and Ready.
func markReady(t *testing.T, st *store.Store) int {
	t.Helper()
	ctx := context.Background()
	pods, err := st.Pods().List(ctx, "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning {
			continue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Minute))}}
		if _, err := st.Pods().Update(ctx, p); err != nil && !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrNotFound) {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func waitApp(t *testing.T, st *store.Store, what string, ok func(*store.App, []*corev1.Pod) bool) *store.App {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	var last *store.App
	for time.Now().Before(deadline) {
		a, err := st.Apps().Get(ctx, "default", store.AppObjectName(planner.KindDeployment, "web"))
		if err == nil {
			last = a
			pods, err := st.Pods().List(ctx, "", store.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if ok(a, pods.Items) {
				return a
			}
		}
		markReady(t, st)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: timed out; last app: %+v", what, last)
	return nil
}

func images(pods []*corev1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		out[p.Spec.Containers[0].Image]++
	}
	return out
}

func TestReconcileFromGit(t *testing.T) {
	testenv.Integration(t, "git")
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "app")
	first := repo.Commit(t, map[string]string{"web.yaml": deploymentYAML("gantry.test/echo:v1", 2)}, "web v1")
	repo.Push(t)

	dir := t.TempDir()
	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(gitsync.Source{URL: repo.URL, PollInterval: time.Hour},
		gitsync.WithDataDir(filepath.Join(dir, "git")), gitsync.WithLogger(quiet), gitsync.WithBackoff(50*time.Millisecond, 200*time.Millisecond),
		gitsync.WithOnError(func(err error, retry time.Duration) { rec.SourceError(err, retry) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syncer.Close() })
	e := startServer(t, controlplane.WithNodeGracePeriod(time.Hour))
	rec = controlplane.NewReconciler(e.st, syncer, controlplane.WithReconcileLogger(quiet), controlplane.WithResync(time.Second))
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

	a := waitApp(t, e.st, "v1 healthy", func(a *store.App, pods []*corev1.Pod) bool {
		return a.Status.Health == planner.Healthy && images(pods)["gantry.test/echo:v1"] == 2 && len(pods) == 2
	})
	if a.Status.SyncedRevision != first || len(a.Status.History) != 1 {
		t.Fatalf("synced %q (want %q), history %+v", a.Status.SyncedRevision, first, a.Status.History)
	}
	for _, p := range mustPods(t, e.st) {
		if p.Spec.NodeName != "n1" {
			t.Fatalf("pod %s not bound to n1: %q", p.Name, p.Spec.NodeName)
		}
	}

	// A rolling update to v2: never more than replicas+maxSurge pods, never fewer
	// than replicas ready (maxUnavailable 0).
	repo.Commit(t, map[string]string{"web.yaml": deploymentYAML("gantry.test/echo:v2", 2)}, "web v2")
	repo.Push(t)
	rec.Sync()
	maxPods := 0
	a = waitApp(t, e.st, "v2 healthy", func(a *store.App, pods []*corev1.Pod) bool {
		maxPods = max(maxPods, len(pods))
		ready := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				ready++
			}
		}
		if ready < 2 {
			t.Fatalf("only %d ready pods during the rollout (replicas 2, maxUnavailable 0)", ready)
		}
		return a.Status.Health == planner.Healthy && images(pods)["gantry.test/echo:v2"] == 2 && len(pods) == 2
	})
	if maxPods > 3 {
		t.Fatalf("%d pods at once: more than replicas + maxSurge (3)", maxPods)
	}
	if len(a.Status.History) != 2 || !a.Status.History[1].Current {
		t.Fatalf("history after v2: %+v", a.Status.History)
	}

	// Invalid YAML: nothing applied, Stalled with file:line, the pods untouched.
	before := podNames(mustPods(t, e.st))
	bad := repo.Commit(t, map[string]string{"web.yaml": deploymentYAML("gantry.test/echo:v3", 2), "broken.yaml": "kind: Deployment\nmetadata: [\n"}, "broken")
	repo.Push(t)
	rec.Sync()
	a = waitApp(t, e.st, "stalled", func(a *store.App, _ []*corev1.Pod) bool { return a.Status.Health == store.Stalled })
	if !strings.Contains(a.Status.LastError, bad[:12]) || len(a.Status.Diagnostics) == 0 || !strings.Contains(a.Status.Diagnostics[0], "broken.yaml:") {
		t.Fatalf("stalled status lacks the revision or file:line: %+v", a.Status)
	}
	time.Sleep(1500 * time.Millisecond) // a resync passes
	if after := podNames(mustPods(t, e.st)); after != before {
		t.Fatalf("an invalid revision changed the pods: %s → %s", before, after)
	}
	if got := images(mustPods(t, e.st)); got["gantry.test/echo:v2"] != 2 {
		t.Fatalf("images after invalid revision: %v", got)
	}

	// Manual rollback to revision 1: pinned, v1 pods come back.
	if _, err := rec.Rollback(context.Background(), "default", "web", 1, false); err != nil {
		t.Fatal(err)
	}
	waitApp(t, e.st, "pinned to 1", func(a *store.App, pods []*corev1.Pod) bool {
		return a.State.Pin != nil && images(pods)["gantry.test/echo:v1"] == 2 && len(pods) == 2 && strings.Contains(a.Status.Message, "pinned")
	})

	// The git server goes away: Waiting, running pods untouched.
	before = podNames(mustPods(t, e.st))
	if err := os.Rename(repo.Bare, repo.Bare+".gone"); err != nil {
		t.Fatal(err)
	}
	rec.Sync()
	a = waitApp(t, e.st, "waiting", func(a *store.App, _ []*corev1.Pod) bool { return a.Status.Health == store.Waiting })
	if !strings.Contains(a.Status.LastError, "git source fetch failed") {
		t.Fatalf("waiting status: %+v", a.Status)
	}
	if after := podNames(mustPods(t, e.st)); after != before {
		t.Fatalf("a git outage changed the pods: %s → %s", before, after)
	}
}

func mustPods(t *testing.T, st *store.Store) []*corev1.Pod {
	t.Helper()
	pods, err := st.Pods().List(context.Background(), "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podNames(pods []*corev1.Pod) string {
	var n []string
	for _, p := range pods {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}
