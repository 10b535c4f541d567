package batch

import (
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSpecHash(t *testing.T) {
	base := job("migrate").j
	h := SpecHash(base)
	if !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(h) {
		t.Fatalf("SpecHash = %q, want 10 hex digits", h)
	}
	same := []struct {
		name string
		edit func(*jobB)
	}{
		{"suspend", func(b *jobB) { b.suspend(true) }},
		{"parallelism", func(b *jobB) { b.parallelism(4) }},
		{"activeDeadlineSeconds", func(b *jobB) { b.deadline(60) }},
		{"ttlSecondsAfterFinished", func(b *jobB) { b.ttl(60) }},
		{"metadata", func(b *jobB) { b.j.Labels = map[string]string{"x": "y"} }},
	}
	for _, tt := range same {
		b := job("migrate")
		tt.edit(b)
		if got := SpecHash(b.j); got != h {
			t.Errorf("changing %s changed the hash (%s → %s); Kubernetes lets a running Job change it", tt.name, h, got)
		}
	}
	differ := []struct {
		name string
		edit func(*jobB)
	}{
		{"image", func(b *jobB) { b.j.Spec.Template.Spec.Containers[0].Image = "gantry.test/batch:v2" }},
		{"args", func(b *jobB) { b.j.Spec.Template.Spec.Containers[0].Args = []string{"--exit", "1"} }},
		{"completions", func(b *jobB) { b.completions(3) }},
		{"backoffLimit", func(b *jobB) { b.backoff(1) }},
		{"completionMode", func(b *jobB) { b.indexed() }},
	}
	for _, tt := range differ {
		b := job("migrate")
		tt.edit(b)
		if got := SpecHash(b.j); got == h {
			t.Errorf("changing %s kept the hash %s", tt.name, h)
		}
	}
}

func TestRunName(t *testing.T) {
	j := job("migrate").j
	if got, want := RunName(j), "migrate-"+SpecHash(j); got != want {
		t.Fatalf("RunName = %q, want %q", got, want)
	}
	long := job("a-very-long-job-name-that-goes-on-and-on-and-on-beyond-fifty-two-chars").j
	if n := len(RunName(long)); n > 63 {
		t.Fatalf("RunName is %d characters, want at most 63", n)
	}
	run := NewRun(j)
	if run.Name != RunName(j) || run.Labels[LabelJob] != "migrate" || run.Annotations[AnnotationSpecHash] != SpecHash(j) {
		t.Fatalf("NewRun = %s labels %v annotations %v", run.Name, run.Labels, run.Annotations)
	}
	if j.Labels != nil || j.Name != "migrate" {
		t.Fatal("NewRun changed its input")
	}
}

func TestJobRuns(t *testing.T) {
	v1 := job("migrate").j
	v2 := job("migrate").j
	v2.Spec.Template.Spec.Containers[0].Image = "gantry.test/batch:v2"
	r1, r2 := RunName(v1), RunName(v2)
	type view struct {
		Create    bool
		Supersede []string
		Delete    []string
		Plan      string
	}
	tests := []struct {
		name     string
		desired  *jobB
		observed []JobRef
		want     view
	}{
		{"first run", job("migrate"), nil, view{Create: true, Plan: "job migrate: new run " + r1}},
		{"unchanged", job("migrate"), []JobRef{{Name: r1, Result: ResultSucceeded}}, view{}},
		{"unchanged but parallelism edited: same run", job("migrate").parallelism(3), []JobRef{{Name: r1}}, view{}},
		{"spec changed after success", &jobB{v2}, []JobRef{{Name: r1, Result: ResultSucceeded}},
			view{Create: true, Plan: "job migrate: spec changed → new run " + r2}},
		{"spec changed while running", &jobB{v2}, []JobRef{{Name: r1}},
			view{Create: true, Supersede: []string{r1}, Plan: "job migrate: spec changed → new run " + r2 + " (stops active run " + r1 + ")"}},
		{"reverted to a run in history", job("migrate"), []JobRef{{Name: r1, Result: ResultSucceeded}, {Name: r2}},
			view{Supersede: []string{r2}, Plan: "job migrate: spec matches earlier run " + r1 + ", which is kept (no new run) (stops active run " + r2 + ")"}},
		{"old runs beyond history", &jobB{v2}, []JobRef{
			{Name: "migrate-a", StartTime: at(t, "2026-01-01T00:00:00Z"), Result: ResultSucceeded},
			{Name: "migrate-b", StartTime: at(t, "2026-01-02T00:00:00Z"), Result: ResultSucceeded},
			{Name: "migrate-c", StartTime: at(t, "2026-01-03T00:00:00Z"), Result: ResultSucceeded},
			{Name: "migrate-d", StartTime: at(t, "2026-01-04T00:00:00Z"), Result: ResultSucceeded},
			{Name: "migrate-e", StartTime: at(t, "2026-01-05T00:00:00Z"), Result: ResultFailed},
			{Name: "migrate-f", StartTime: at(t, "2026-01-06T00:00:00Z"), Result: ResultFailed},
		}, view{Create: true, Delete: []string{"migrate-a", "migrate-e"}, Plan: "job migrate: spec changed → new run " + r2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := JobRuns(tt.desired.j, tt.observed)
			got := view{Create: d.Create, Supersede: d.Supersede, Delete: d.Delete, Plan: d.Plan}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("JobRuns (-want +got):\n%s", diff)
			}
			if d.Run.Name != RunName(tt.desired.j) {
				t.Errorf("Run = %s, want %s", d.Run.Name, RunName(tt.desired.j))
			}
		})
	}
}
