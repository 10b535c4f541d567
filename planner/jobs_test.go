package planner

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/planner/plannertest"
)

// TestCronTickOnceAcrossLeaders: two leaders (different seeds) planning the same
// state at the same Now name the same Job for the tick, so create-if-absent runs
// it once; after the commit neither plans it again.
func TestCronTickOnceAcrossLeaders(t *testing.T) {
	s := newScenario()
	s.nodes["n1"] = plannertest.Node("n1").CPU("4").Mem("8Gi").Obj()
	for _, cmd := range []string{`apply-cronjob report schedule="*/5 * * * *"`, "step", "tick 5m"} {
		if _, err := s.run(cmd); err != nil {
			t.Fatal(err)
		}
	}
	in := s.input()
	names := func(p Plan) []string {
		var out []string
		for _, r := range p.JobRuns {
			out = append(out, r.Job.Namespace+"/"+r.Job.Name)
		}
		return out
	}
	in.Seed = 1
	a := Compute(in)
	in.Seed = 2
	b := Compute(in)
	if len(a.JobRuns) != 1 {
		t.Fatalf("want one run for the tick, got %v", names(a))
	}
	if d := cmp.Diff(names(a), names(b)); d != "" {
		t.Fatalf("leaders name different Jobs for one tick (-seed 1 +seed 2):\n%s", d)
	}
	if got := s.commitBatch(&a) + "; " + s.commitBatch(&b); got != "report-29454365 created; report-29454365 already exists" {
		t.Fatalf("commits: %s", got)
	}
	for seed := int64(3); seed < 6; seed++ {
		in := s.input()
		in.Seed = seed
		if p := Compute(in); len(p.JobRuns) != 0 {
			t.Fatalf("seed %d: the tick runs again after its commit: %v", seed, names(p))
		}
	}
}

// TestCronBadScheduleIsDegraded: a schedule the cron parser refuses stalls the
// CronJob (Degraded, with the parser's error), creates nothing and never wakes.
func TestCronBadScheduleIsDegraded(t *testing.T) {
	s := newScenario()
	s.nodes["n1"] = plannertest.Node("n1").CPU("4").Mem("8Gi").Obj()
	if _, err := s.run(`apply-cronjob bad schedule="61 * * * *"`); err != nil {
		t.Fatal(err)
	}
	p := Compute(s.input())
	st := p.Status[AppKey(KindCronJob, "default", "bad")]
	if st.Health != Degraded || !strings.Contains(st.Message, "stalled") {
		t.Fatalf("status = %+v, want Degraded and stalled", st)
	}
	if len(p.JobRuns) != 0 || !p.Wake.IsZero() {
		t.Fatalf("a stalled CronJob planned runs %v or a wake %v", p.JobRuns, p.Wake)
	}
}
