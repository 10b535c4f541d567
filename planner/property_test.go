package planner

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"gantry.io/gantry/planner/plannertest"
)

// randomScenario builds a random cluster and workload from seed: 2–7 nodes of
// varied sizes (some tainted or labelled), 1–6 Deployments with varied replicas,
// requests, strategies, priorities, anti-affinity and spread, 0–2 Jobs and maybe
// a CronJob every minute.
func randomScenario(seed uint64) *scenario {
	r := rand.New(rand.NewPCG(seed, 7))
	s := newScenario()
	s.cfg.MaxStartsPerNodePerRound = 1 + r.IntN(6)
	cpus := []string{"1", "2", "4", "8"}
	mems := []string{"2Gi", "4Gi", "8Gi", "16Gi"}
	for i := range 2 + r.IntN(6) {
		name := fmt.Sprintf("n%d", i+1)
		b := plannertest.Node(name).CPU(cpus[r.IntN(len(cpus))]).Mem(mems[r.IntN(len(mems))]).Pods(fmt.Sprint(4 + r.IntN(20)))
		if r.IntN(5) == 0 {
			b.Taint("dedicated", "db", corev1.TaintEffectNoSchedule)
		}
		if r.IntN(2) == 0 {
			b.Label("disk", "ssd")
		}
		s.nodes[name] = b.Obj()
	}
	reqCPU := []string{"50m", "100m", "250m", "500m", "1"}
	reqMem := []string{"64Mi", "128Mi", "512Mi", "1Gi", "2Gi"}
	prios := []string{"", "", "low", "high"}
	for i := range 1 + r.IntN(6) {
		name := fmt.Sprintf("app%d", i)
		b := plannertest.Deployment(name).Replicas(int32(1+r.IntN(5))).Image(name+":1").
			Requests(reqCPU[r.IntN(len(reqCPU))], reqMem[r.IntN(len(reqMem))])
		surge, unavail := randomFencepost(r)
		b.MaxSurge(surge).MaxUnavailable(unavail)
		if r.IntN(4) == 0 {
			b.Recreate()
		}
		b.Pod(func(p *plannertest.PodSpecBuilder) {
			p.PriorityClass(prios[r.IntN(len(prios))])
			switch r.IntN(6) {
			case 0:
				p.AntiAffinity("app", name)
			case 1:
				p.Spread(1, corev1.DoNotSchedule, "app", name)
			case 2:
				p.Spread(1, corev1.ScheduleAnyway, "app", name)
			case 3:
				p.NodeSelector("disk", "ssd")
			}
			if r.IntN(4) == 0 {
				p.Toleration("dedicated", "db", corev1.TaintEffectNoSchedule)
			}
		})
		s.deps[name] = b
	}
	// Jobs and a CronJob in the mix: their pods go through the same placement.
	modes := []string{"NonIndexed", "Indexed"}
	for i := range r.IntN(3) {
		name := fmt.Sprintf("job%d", i)
		j := newTestJob(name)
		_ = applyJobArgs(&j.Spec, map[string][]string{
			"completions": {fmt.Sprint(1 + r.IntN(4))}, "parallelism": {fmt.Sprint(1 + r.IntN(3))},
			"mode": {modes[r.IntN(2)]}, "backoff": {fmt.Sprint(r.IntN(3))},
			"cpu": {reqCPU[r.IntN(len(reqCPU))]}, "mem": {reqMem[r.IntN(len(reqMem))]},
		})
		s.jobs[name] = j
	}
	if r.IntN(2) == 0 {
		policies := []string{"Allow", "Forbid", "Replace"}
		if _, err := s.run(fmt.Sprintf(`apply-cronjob cron schedule="*/1 * * * *" policy=%s backoff=1 ttl=%d cpu=%s mem=%s`,
			policies[r.IntN(3)], 30*r.IntN(3), reqCPU[r.IntN(len(reqCPU))], reqMem[r.IntN(len(reqMem))])); err != nil {
			panic(err)
		}
	}
	return s
}

// finishJobPods ends each running, ready Job pod with probability 1/2: Succeeded
// four times in five, else Failed.
func (s *scenario) finishJobPods(r *rand.Rand) {
	for _, k := range sortedKeys(s.observed) {
		p := s.observed[k]
		if p.Labels["batch.kubernetes.io/job-name"] == "" || podState(p) != "ready" || r.IntN(2) == 0 {
			continue
		}
		phase := corev1.PodSucceeded
		if r.IntN(5) == 0 {
			phase = corev1.PodFailed
		}
		p.Status.Phase = phase
	}
}

func randomFencepost(r *rand.Rand) (surge, unavail string) {
	vals := []string{"0", "1", "2", "25%", "50%"}
	for {
		surge, unavail = vals[r.IntN(len(vals))], vals[r.IntN(len(vals))]
		if surge != "0" || unavail != "0" {
			return surge, unavail
		}
	}
}

// appCounts is, per Deployment, the pods in the store and how many are available
// (Ready on a Ready node; the scenarios use minReadySeconds 0).
func (s *scenario) appCounts() (total, avail map[string]int32) {
	total, avail = map[string]int32{}, map[string]int32{}
	for _, p := range s.observed {
		app := p.Annotations[AnnotationApp]
		total[app]++
		n := s.nodes[p.Spec.NodeName]
		if n != nil && isReadyNode(n) && podState(p) == "r"+p.Annotations[AnnotationRevision]+" ready" {
			avail[app]++
		}
	}
	return total, avail
}

// checkNoOvercommit fails if any node's pods request more than it offers.
func (s *scenario) checkNoOvercommit(t *testing.T, ctx string) {
	t.Helper()
	use := map[string][3]int64{}
	for _, p := range s.observed {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue // a finished pod holds nothing
		}
		c, m := podRequests(&p.Spec)
		u := use[p.Spec.NodeName]
		use[p.Spec.NodeName] = [3]int64{u[0] + c, u[1] + m, u[2] + 1}
	}
	for name, u := range use {
		n := s.nodes[name]
		if n == nil {
			continue
		}
		a := n.Status.Allocatable
		if u[0] > a.Cpu().MilliValue() || u[1] > a.Memory().Value() || u[2] > a.Pods().Value() {
			t.Fatalf("%s: node %s overcommitted: cpu %dm/%dm mem %d/%d pods %d/%d\n%s", ctx, name,
				u[0], a.Cpu().MilliValue(), u[1], a.Memory().Value(), u[2], a.Pods().Value(), s.pods())
		}
	}
}

// rolloutBounds returns, per app, replicas+maxSurge and replicas−maxUnavailable.
func (s *scenario) rolloutBounds() (maxTotal, minAvail map[string]int32) {
	maxTotal, minAvail = map[string]int32{}, map[string]int32{}
	for name, b := range s.deps {
		d := b.Obj()
		key := AppKey(KindDeployment, "default", name)
		R := *d.Spec.Replicas
		if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.Type != "RollingUpdate" {
			maxTotal[key], minAvail[key] = R, 0
			continue
		}
		surge, unavail, err := rollingParams(d, R)
		if err != nil {
			continue
		}
		maxTotal[key], minAvail[key] = R+surge, R-unavail
	}
	return maxTotal, minAvail
}

// stepChecked plans, checks the invariants across the commit, commits, and marks
// a random subset (or all) of the pods ready. It returns the plan.
func (s *scenario) stepChecked(t *testing.T, r *rand.Rand, allReady bool, ctx string) Plan {
	t.Helper()
	s.round++
	in := s.input()
	p := Compute(in)
	again := Compute(s.input())
	if d := cmp.Diff(p.String(), again.String()); d != "" {
		t.Fatalf("%s: Compute is not deterministic:\n%s", ctx, d)
	}
	if slow := compute(s.input(), computeOptions{slowPath: true}); slow.String() != p.String() {
		t.Fatalf("%s: the placement fast path decides differently (-slow +fast):\n%s", ctx, cmp.Diff(slow.String(), p.String()))
	}
	if !apiequality.Semantic.DeepEqual(in.Nodes, s.input().Nodes) || !apiequality.Semantic.DeepEqual(in.Observed, s.input().Observed) ||
		!apiequality.Semantic.DeepEqual(in.Jobs, s.input().Jobs) {
		t.Fatalf("%s: Compute mutated its input", ctx)
	}
	totalBefore, availBefore := s.appCounts()
	maxTotal, minAvail := s.rolloutBounds()
	// Preemption is a disruption the rollout budget does not cover (Kubernetes
	// guards it with PodDisruptionBudgets): preempted available pods are counted
	// as if still there.
	preempted := map[string]int32{}
	for _, e := range p.Preempt {
		pod := s.observed[podKey(e.Namespace, e.Pod)]
		if podState(pod) == "r"+pod.Annotations[AnnotationRevision]+" ready" {
			preempted[pod.Annotations[AnnotationApp]]++
		}
	}
	s.commit(&p)
	s.checkNoOvercommit(t, ctx)
	totalAfter, availAfter := s.appCounts()
	for app, mt := range maxTotal {
		if got := totalAfter[app]; got > max(mt, totalBefore[app]) {
			t.Fatalf("%s: %s has %d pods, more than replicas+maxSurge %d\nplan:\n%s", ctx, app, got, mt, p)
		}
		if got := availAfter[app] + preempted[app]; got < min(minAvail[app], availBefore[app]) {
			t.Fatalf("%s: %s has %d available pods, fewer than replicas-maxUnavailable %d (before: %d)\nplan:\n%s",
				ctx, app, got, minAvail[app], availBefore[app], p)
		}
	}
	s.finishJobPods(r)
	for _, pod := range s.observed {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if allReady || r.IntN(3) > 0 {
			if n := s.nodes[pod.Spec.NodeName]; n != nil && isReadyNode(n) {
				s.setReady(pod, true)
			}
		}
	}
	s.now = s.now.Add(10 * time.Second)
	return p
}

// converge steps with every pod marked ready until the plan is empty.
func (s *scenario) converge(t *testing.T, r *rand.Rand, ctx string) {
	t.Helper()
	for i := 0; i < 60; i++ {
		p := s.stepChecked(t, r, true, ctx)
		if p.Empty() && Compute(s.input()).Empty() {
			return
		}
	}
	t.Fatalf("%s: no empty plan after 60 rounds; last:\n%s\n%s", ctx, Compute(s.input()), s.pods())
}

// TestPropertyInvariants runs random clusters through a first rollout, an image
// change with random readiness and the loss of a node, checking after every plan that no node is
// overcommitted, that no rollout exceeds replicas+maxSurge pods nor drops below
// replicas−maxUnavailable available pods, that Compute is deterministic and leaves
// its input alone, and that Compute on the state its own plans produce (with pods
// marked ready) converges to an empty plan.
func TestPropertyInvariants(t *testing.T) {
	seeds := 100
	if testing.Short() {
		seeds = 40
	}
	completed, cronRuns := 0, 0
	defer func() {
		// The mix must really hold jobs: runs completed, CronJob runs created.
		t.Logf("%d Job runs complete, %d CronJob runs in the store at the end", completed, cronRuns)
		if !t.Failed() && (completed == 0 || cronRuns == 0) {
			t.Errorf("jobs not exercised: %d runs complete, %d CronJob runs", completed, cronRuns)
		}
	}()
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 99))
		s := randomScenario(seed)
		ctx := fmt.Sprintf("seed %d", seed)
		s.converge(t, r, ctx+" initial")
		// Change some images; roll out with random readiness, then converge.
		for name, b := range s.deps {
			if r.IntN(2) == 0 {
				b.Image(name + ":2")
			}
		}
		for range 5 {
			s.stepChecked(t, r, false, ctx+" rollout")
		}
		s.converge(t, r, ctx+" after rollout")
		// Lose a node: its pods are replaced after the grace period.
		names := sortedKeys(s.nodes)
		lost := names[r.IntN(len(names))]
		if _, err := s.run("fail-node " + lost); err != nil {
			t.Fatal(err)
		}
		s.stepChecked(t, r, true, ctx+" node lost")
		s.now = s.now.Add(defaultNodeLostGrace)
		s.converge(t, r, ctx+" after node loss")
		for _, pod := range s.observed {
			finished := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
			if pod.Spec.NodeName == lost && pod.Annotations[AnnotationApp] != "" && !finished {
				t.Fatalf("%s: pod %s still on lost node %s", ctx, pod.Name, lost)
			}
		}
		final := Compute(s.input())
		if !final.Empty() {
			t.Fatalf("%s: converged state plans again:\n%s", ctx, final)
		}
		for _, st := range s.apps {
			for _, run := range st.Runs {
				if c, ok := run.Finished(); ok && c == "Complete" {
					completed++
				}
			}
		}
		for _, j := range s.runs {
			if j.Labels["gantry.io/cronjob"] != "" {
				cronRuns++
			}
		}
	}
}

// TestOneChangedAppPlansOnlyThatApp: with 1,000 converged apps, changing one app's
// template gives a plan whose every step and state change concerns that app.
func TestOneChangedAppPlansOnlyThatApp(t *testing.T) {
	in := convergedCluster(t, 1000, 100)
	changed := AppKey(KindDeployment, "default", "app0417")
	for _, d := range in.Desired.Deployments {
		if d.Name == "app0417" {
			d.Spec.Template.Spec.Containers[0].Image = "app:2"
		}
	}
	p := Compute(in)
	if len(p.Place) == 0 {
		t.Fatalf("the change planned nothing:\n%s", p)
	}
	var others []string
	for _, pl := range p.Place {
		if pl.App != changed {
			others = append(others, "place "+pl.Pod.Name)
		}
	}
	for _, st := range p.Stop {
		if st.App != changed {
			others = append(others, "stop "+st.Pod)
		}
	}
	for k := range p.Apps {
		if k != changed {
			others = append(others, "state "+k)
		}
	}
	if len(p.Preempt)+len(p.Adopt)+len(p.ForgetApps)+len(p.Unplaceable)+len(p.Deferred) > 0 {
		others = append(others, "preempt/adopt/forget/unplaceable/deferred")
	}
	if len(others) > 0 {
		t.Fatalf("plan touches other apps: %s", strings.Join(others, ", "))
	}
	if _, ok := p.Apps[changed]; !ok {
		t.Fatalf("the changed app's state is not in the plan")
	}
}

// convergedCluster builds apps Deployments of 3 replicas on nodes nodes, runs
// plans until they converge with every pod ready, and returns the Input of the
// converged state.
func convergedCluster(t testing.TB, apps, nodes int) Input {
	t.Helper()
	s := newScenario()
	s.cfg.MaxStartsPerNodePerRound = -1
	for i := range nodes {
		name := fmt.Sprintf("n%03d", i)
		s.nodes[name] = plannertest.Node(name).CPU("64").Mem("256Gi").Obj()
	}
	for i := range apps {
		name := fmt.Sprintf("app%04d", i)
		s.deps[name] = plannertest.Deployment(name).Replicas(3).Image("app:1").Requests("100m", "128Mi")
	}
	for round := 0; ; round++ {
		if round > 10 {
			t.Fatalf("no convergence")
		}
		s.round++
		p := Compute(s.input())
		if p.Empty() {
			break
		}
		s.commit(&p)
		for _, pod := range s.observed {
			s.setReady(pod, true)
		}
		s.now = s.now.Add(10 * time.Second)
	}
	return s.input()
}

// TestRollingParams checks the rounding of maxSurge (up) and maxUnavailable (down).
func TestRollingParams(t *testing.T) {
	tests := []struct {
		name                   string
		replicas               int32
		surge, unavail         string
		wantSurge, wantUnavail int32
		wantErr                bool
	}{
		{"defaults of 10", 10, "25%", "25%", 3, 2, false},
		{"defaults of 1", 1, "25%", "25%", 1, 0, false},
		{"ints", 5, "2", "1", 2, 1, false},
		{"percent rounds to zero both", 0, "25%", "25%", 0, 1, false},
		{"both zero", 3, "0", "0%", 0, 0, true},
		{"unavailable capped", 2, "0", "5", 0, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := plannertest.Deployment("x").Replicas(tt.replicas).MaxSurge(tt.surge).MaxUnavailable(tt.unavail).Obj()
			s, u, err := rollingParams(d, tt.replicas)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				if d := cmp.Diff([2]int32{tt.wantSurge, tt.wantUnavail}, [2]int32{s, u}); d != "" {
					t.Fatalf("(surge, unavailable) (-want +got):\n%s", d)
				}
			}
		})
	}
}

// TestFastPathMatchesFilters: on a benchmark-shaped cluster (varied nodes, 10% of
// pods with spread, anti-affinity or node affinity) the placement fast path gives
// exactly the plan of the full filter chain.
func TestFastPathMatchesFilters(t *testing.T) {
	in := placementInput(300, 3000)
	in.Config.MaxStartsPerNodePerRound = 5
	fast, slow := compute(in, computeOptions{}), compute(in, computeOptions{slowPath: true})
	if len(fast.Place) == 0 {
		t.Fatal("nothing placed")
	}
	if d := cmp.Diff(slow.String(), fast.String()); d != "" {
		t.Fatalf("fast path differs (-slow +fast):\n%s", d)
	}
}
