package planner

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/planner/plannertest"
)

// placementInput is 5,000 nodes of varied sizes and 150,000 pods in Deployments of
// varied sizes and requests; 10% of the pods carry a spread constraint or an
// affinity (hard or soft hostname spread, required anti-affinity, required or
// preferred node affinity).
func placementInput(nodes, pods int) Input {
	r := rand.New(rand.NewPCG(1, 2))
	in := Input{Now: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), Seed: 1,
		Config: Config{MaxStartsPerNodePerRound: -1}}
	sizes := []struct{ cpu, mem string }{{"16", "64Gi"}, {"32", "128Gi"}, {"64", "256Gi"}, {"96", "384Gi"}}
	zones := []string{"a", "b", "c"}
	for i := range nodes {
		sz := sizes[r.IntN(len(sizes))]
		in.Nodes = append(in.Nodes, plannertest.Node(fmt.Sprintf("node-%05d", i)).CPU(sz.cpu).Mem(sz.mem).Pods("250").
			Label("zone", zones[i%len(zones)]).Obj())
	}
	cpus := []string{"100m", "250m", "500m", "1", "2"}
	mems := []string{"128Mi", "256Mi", "512Mi", "1Gi", "4Gi"}
	var objs []any
	placed := 0
	for i := 0; placed < pods; i++ {
		n := min(1+r.IntN(20), pods-placed)
		placed += n
		name := fmt.Sprintf("app%05d", i)
		b := plannertest.Deployment(name).Replicas(int32(n)).Image("app:1").
			Requests(cpus[r.IntN(len(cpus))], mems[r.IntN(len(mems))])
		if r.IntN(10) == 0 { // ~10% of the pods
			b.Pod(func(p *plannertest.PodSpecBuilder) {
				switch r.IntN(5) {
				case 0:
					p.Spread(1, corev1.DoNotSchedule, "app", name)
				case 1:
					p.Spread(1, corev1.ScheduleAnyway, "app", name)
				case 2:
					p.AntiAffinity("app", name)
				case 3:
					p.RequireNode("zone", zones[r.IntN(len(zones))])
				case 4:
					p.PreferNode("zone", zones[r.IntN(len(zones))], 50)
				}
			})
		}
		objs = append(objs, b.Obj())
	}
	in.Desired = plannertest.Desired(objs...)
	return in
}

// BenchmarkPlacement places 150,000 pods on 5,000 nodes in one Compute and
// reports placements/s, the p99 time of one placement decision and the
// allocations per placement (all of Compute's allocations divided by the pods
// placed).
func BenchmarkPlacement(b *testing.B) {
	in := placementInput(5000, 150000)
	var lat []time.Duration
	var last time.Time
	hook := func() {
		now := time.Now()
		lat = append(lat, now.Sub(last))
		last = now
	}
	var placed, allocs uint64
	var total, cpu time.Duration
	for b.Loop() {
		lat = lat[:0]
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuTime()
		start := time.Now()
		last = start
		p := compute(in, computeOptions{hook: hook})
		total += time.Since(start)
		cpu += cpuTime() - cpu0
		runtime.ReadMemStats(&ms1)
		placed += uint64(len(p.Place))
		allocs += ms1.Mallocs - ms0.Mallocs
		if len(p.Unplaceable) > 0 {
			b.Logf("unplaceable: %d groups, first: %s", len(p.Unplaceable), p.Unplaceable[0].Reason)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(placed)/total.Seconds(), "placements/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs/placement")
	}
	b.ReportMetric(float64(allocs)/float64(max(placed, 1)), "allocs/placement")
	b.ReportMetric(float64(placed)/float64(b.N), "placed/op")
	// On a shared machine wall time includes waiting for a core; CPU time (all
	// threads of the process, GC included) shows the planner's own cost.
	b.ReportMetric(float64(placed)/cpu.Seconds(), "placements/cpu-s")
}

// cpuTime is the user+system CPU time of the whole process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNoopReconcile plans 1,000 unchanged, converged apps (3,000 pods on 100
// nodes): the plan is empty.
func BenchmarkNoopReconcile(b *testing.B) {
	in := convergedCluster(b, 1000, 100)
	if p := Compute(in); !p.Empty() {
		b.Fatalf("not converged:\n%s", p)
	}
	cpu0 := cpuTime()
	for b.Loop() {
		Compute(in)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/reconcile")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/reconcile")
}

// BenchmarkCronTick1000 plans the minute at which 1,000 CronJobs are due at once
// on 100 nodes: one Compute creates the 1,000 Jobs and places their 1,000 first
// pods. It is the planner's share of issue #8's "1,000 CronJobs due on the same
// minute" benchmark (the store commit and the agents are not in it).
func BenchmarkCronTick1000(b *testing.B) {
	s := newScenario()
	s.cfg.MaxStartsPerNodePerRound = -1
	for i := range 100 {
		name := fmt.Sprintf("n%03d", i)
		s.nodes[name] = plannertest.Node(name).CPU("64").Mem("256Gi").Obj()
	}
	for i := range 1000 {
		if _, err := s.run(fmt.Sprintf(`apply-cronjob cron%04d schedule="*/1 * * * *" cpu=100m mem=64Mi`, i)); err != nil {
			b.Fatal(err)
		}
	}
	s.now = s.now.Add(time.Minute)
	in := s.input()
	if p := Compute(in); len(p.JobRuns) != 1000 || len(p.Place) != 1000 {
		b.Fatalf("want 1000 runs and 1000 pods, got %d and %d", len(p.JobRuns), len(p.Place))
	}
	cpu0 := cpuTime()
	for b.Loop() {
		Compute(in)
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/reconcile")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/reconcile")
}
