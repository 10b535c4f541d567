package diff

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/plannertest"
)

var simNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// converged runs the planner on desired until its plan is empty, every placed pod
// Ready, and returns the cluster: the Input a live plan would start from.
func converged(t testing.TB, desired *manifest.Desired, nodes ...*corev1.Node) planner.Input {
	t.Helper()
	in := planner.Input{Desired: desired, Nodes: nodes, Now: simNow, Seed: 7, Apps: map[string]planner.AppState{}}
	for round := 0; ; round++ {
		if round > 20 {
			t.Fatal("base does not converge")
		}
		p := planner.Compute(in)
		if p.Empty() {
			return in
		}
		for _, pl := range p.Place {
			pod := pl.Pod.DeepCopy()
			pod.Spec.NodeName = pl.Node
			pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(in.Now)}}}
			in.Observed = append(in.Observed, pod)
		}
		for k, v := range p.Apps {
			in.Apps[k] = v
		}
		in.Now = in.Now.Add(time.Minute)
	}
}

func TestSimulate(t *testing.T) {
	web := func(image string, replicas int32) *manifest.Desired {
		return plannertest.Desired(plannertest.Deployment("web").Replicas(replicas).Image(image).Requests("500m", "1Gi").MaxSurge("1").MaxUnavailable("0").Obj())
	}
	nodes := func() []*corev1.Node {
		return []*corev1.Node{plannertest.Node("n1").CPU("2").Mem("4Gi").Obj(), plannertest.Node("n2").CPU("2").Mem("4Gi").Obj()}
	}
	base := converged(t, web("app:1", 3), nodes()...)
	if len(base.Observed) != 3 {
		t.Fatalf("base runs %d pods, want 3", len(base.Observed))
	}
	type app struct {
		Pods, Restarts, Stopped int
	}
	summary := func(p *Placement) map[string]app {
		out := map[string]app{}
		for _, a := range p.Apps {
			out[a.App] = app{a.Pods, a.Restarts, a.Stopped}
		}
		return out
	}
	withHead := func(d *manifest.Desired) planner.Input {
		in := base
		in.Desired = d
		return in
	}
	const key = "deployment/default/web"

	t.Run("no change", func(t *testing.T) {
		p := Simulate(withHead(web("app:1", 3)), 0)
		if len(p.Apps) != 0 || p.Restarts+p.Stopped != 0 || !p.Fits() || p.Unsettled || p.Rounds != 1 || p.Running != 3 {
			t.Fatalf("an unchanged revision moves pods: %+v", p)
		}
	})
	t.Run("image change replaces every pod", func(t *testing.T) {
		p := Simulate(withHead(web("app:2", 3)), 0)
		if d := cmp.Diff(map[string]app{key: {Pods: 3, Restarts: 3}}, summary(p)); d != "" {
			t.Fatalf("apps (-want +got):\n%s\n%+v", d, p)
		}
		if p.Rounds < 4 || !p.Fits() || p.Unsettled {
			t.Fatalf("a surge-1 rollout of 3 pods should take several rounds and settle: %+v", p)
		}
		if p.Restarts != 3 || p.Stopped != 0 {
			t.Fatalf("restarts %d stopped %d, want 3 and 0", p.Restarts, p.Stopped)
		}
	})
	t.Run("scale down", func(t *testing.T) {
		p := Simulate(withHead(web("app:1", 1)), 0)
		if d := cmp.Diff(map[string]app{key: {Stopped: 2}}, summary(p)); d != "" {
			t.Fatalf("apps (-want +got):\n%s", d)
		}
	})
	t.Run("too large for any node", func(t *testing.T) {
		big := plannertest.Deployment("big").Replicas(1).Image("big:1").Requests("1", "64Gi").Obj()
		head := web("app:1", 3)
		head.Deployments = append(head.Deployments, big)
		p := Simulate(withHead(head), 0)
		if p.Fits() || len(p.Unplaceable) != 1 || p.Unplaceable[0].App != "deployment/default/big" ||
			!strings.Contains(p.Unplaceable[0].Reason, "0/2 nodes fit: 2 insufficient memory") {
			t.Fatalf("unplaceable: %+v", p.Unplaceable)
		}
		if p.Restarts != 0 || p.Unsettled {
			t.Fatalf("a pod that fits nowhere restarts nothing and settles: %+v", p)
		}
	})
	t.Run("surge that cannot fit stalls the rollout", func(t *testing.T) {
		// 4 pods of 1 CPU fill both nodes; maxUnavailable 0 needs a fifth pod's room.
		full := plannertest.Desired(plannertest.Deployment("web").Replicas(4).Image("app:1").Requests("1", "1Gi").MaxSurge("1").MaxUnavailable("0").Obj())
		in := converged(t, full, nodes()...)
		in.Desired = plannertest.Desired(plannertest.Deployment("web").Replicas(4).Image("app:2").Requests("1", "1Gi").MaxSurge("1").MaxUnavailable("0").Obj())
		p := Simulate(in, 0)
		if p.Fits() || !strings.Contains(p.Unplaceable[0].Reason, "insufficient cpu") || p.Restarts != 0 {
			t.Fatalf("the stalled surge pod should be reported: %+v", p)
		}
	})
	t.Run("preemption", func(t *testing.T) {
		batch := plannertest.Deployment("batch").Replicas(4).Image("batch:1").Requests("1", "1Gi").Obj()
		in := converged(t, plannertest.Desired(batch), nodes()...)
		api := plannertest.Deployment("api").Replicas(1).Image("api:1").Pod(func(p *plannertest.PodSpecBuilder) {
			p.Requests("1", "1Gi").PriorityClass("high")
		}).Obj()
		in.Desired = plannertest.Desired(batch.DeepCopy(), api)
		p := Simulate(in, 0)
		if len(p.Preempted) != 1 || p.Preempted[0].For != "deployment/default/api" || p.Preempted[0].ForPriority != 1000 || p.Preempted[0].Priority != 0 {
			t.Fatalf("preempted: %+v", p.Preempted)
		}
		if d := cmp.Diff(map[string]app{"deployment/default/api": {Pods: 1}, "deployment/default/batch": {Stopped: 1}}, summary(p)); d != "" {
			t.Fatalf("apps (-want +got):\n%s", d)
		}
		// The evicted batch pod is wanted again and fits nowhere: the plan says so.
		if p.Fits() || p.Unplaceable[0].App != "deployment/default/batch" {
			t.Fatalf("unplaceable: %+v", p.Unplaceable)
		}
		text := Report{Base: "b", Head: "h", Placement: p}.Text()
		if !strings.Contains(text, "preempts pod default/batch-") || !strings.Contains(text, "for deployment/default/api (priority 1000)") {
			t.Fatalf("text:\n%s", text)
		}
	})
	t.Run("the input is not modified", func(t *testing.T) {
		in := withHead(web("app:2", 3))
		before := len(in.Observed)
		states := len(in.Apps)
		_ = Simulate(in, 0)
		if len(in.Observed) != before || len(in.Apps) != states || in.Observed[0].Spec.Containers[0].Image != "app:1" {
			t.Fatal("Simulate changed its input")
		}
	})
	t.Run("the round limit is reported", func(t *testing.T) {
		p := Simulate(withHead(web("app:2", 3)), 2)
		if !p.Unsettled || p.Rounds != 2 {
			t.Fatalf("rounds %d unsettled %v", p.Rounds, p.Unsettled)
		}
	})
}

// thousandApps is a converged cluster of 1,000 Deployments of 3 replicas on 100
// nodes, with app0417's image changed in Desired.
func thousandApps(tb testing.TB) planner.Input {
	var deps []any
	for i := range 1000 {
		deps = append(deps, plannertest.Deployment(fmt.Sprintf("app%04d", i)).Replicas(3).Image("app:1").Requests("100m", "128Mi").Obj())
	}
	var nodes []*corev1.Node
	for i := range 100 {
		nodes = append(nodes, plannertest.Node(fmt.Sprintf("n%03d", i)).CPU("64").Mem("256Gi").Obj())
	}
	in := converged(tb, plannertest.Desired(deps...), nodes...)
	head := plannertest.Desired(deps...)
	for i, d := range head.Deployments {
		if d.Name == "app0417" {
			d = d.DeepCopy()
			d.Spec.Template.Spec.Containers[0].Image = "app:2"
			head.Deployments[i] = d
		}
	}
	in.Desired = head
	return in
}

// TestSimulateOneOfThousand: the live plan of a commit that changes 1 of 1,000
// apps places, restarts and stops pods of that app only.
func TestSimulateOneOfThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 apps: a few seconds")
	}
	p := Simulate(thousandApps(t), 0)
	want := []AppPlacement{{App: "deployment/default/app0417", Pods: 3, Restarts: 3}}
	got := p.Apps
	for i := range got {
		got[i].Nodes = nil
	}
	if d := cmp.Diff(want, got); d != "" || p.Running != 3000 || !p.Fits() || p.Unsettled || len(p.Preempted) > 0 {
		t.Fatalf("apps (-want +got):\n%s\n%+v", d, p)
	}
}

// BenchmarkSimulateOneOfThousand times the live placement of that commit: every
// round of the simulated rollout is a planner.Compute over 3,000 pods.
func BenchmarkSimulateOneOfThousand(b *testing.B) {
	in := thousandApps(b)
	b.ResetTimer()
	rounds := 0
	for range b.N {
		rounds = Simulate(in, 0).Rounds
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/plan")
	b.ReportMetric(float64(rounds), "rounds")
}
