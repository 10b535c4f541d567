package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/planner/batch"
)

func i32(v int32) *int32 { return &v }

func TestPrintJobs(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 10, 0, 0, time.UTC)
	mt := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	jobs := []batchv1.Job{
		{ObjectMeta: metav1.ObjectMeta{Name: "indexed-1a2b3c4d5e", CreationTimestamp: *mt(-5 * time.Minute)},
			Spec:   batchv1.JobSpec{Completions: i32(5), Parallelism: i32(2)},
			Status: batchv1.JobStatus{Succeeded: 3, Active: 2, StartTime: mt(-5 * time.Minute)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "failing-0a0a0a0a0a", CreationTimestamp: *mt(-time.Hour)},
			Spec: batchv1.JobSpec{Completions: i32(1)},
			Status: batchv1.JobStatus{Failed: 3, StartTime: mt(-time.Hour), Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: *mt(-58 * time.Minute)}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "report-29539325", CreationTimestamp: *mt(-3 * time.Minute)},
			Spec: batchv1.JobSpec{Parallelism: i32(3)},
			Status: batchv1.JobStatus{Succeeded: 1, StartTime: mt(-3 * time.Minute), CompletionTime: mt(-3*time.Minute + 12*time.Second),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}}},
	}
	var out bytes.Buffer
	if err := printJobs(&out, "", false, now, jobs); err != nil {
		t.Fatal(err)
	}
	want := `NAME                 COMPLETIONS   DURATION   AGE   STATUS
indexed-1a2b3c4d5e   3/5           5m         5m    Running
failing-0a0a0a0a0a   0/1           2m         60m   Failed
report-29539325      1/1 of 3      12s        3m    Complete
`
	if out.String() != want {
		t.Fatalf("get jobs:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrintCronJobs(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 10, 20, 0, time.UTC)
	last := metav1.NewTime(time.Date(2026, 3, 1, 10, 10, 0, 0, time.UTC))
	yes := true
	berlin := "Europe/Berlin"
	cjs := []batchv1.CronJob{
		{ObjectMeta: metav1.ObjectMeta{Name: "report", Annotations: map[string]string{controlplane.AnnotationNextScheduleTime: "2026-03-01T10:11:00Z"}},
			Spec:   batchv1.CronJobSpec{Schedule: "* * * * *"},
			Status: batchv1.CronJobStatus{LastScheduleTime: &last, Active: []corev1.ObjectReference{{Name: "report-1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", TimeZone: &berlin, Suspend: &yes}},
		{ObjectMeta: metav1.ObjectMeta{Name: "broken", Annotations: map[string]string{controlplane.AnnotationScheduleError: "bad"}},
			Spec: batchv1.CronJobSpec{Schedule: "99 * * * *"}},
	}
	var out bytes.Buffer
	if err := printCronJobs(&out, "", false, now, cjs); err != nil {
		t.Fatal(err)
	}
	want := `NAME      SCHEDULE     TIMEZONE        SUSPEND   ACTIVE   LAST SCHEDULE   NEXT
report    * * * * *    <none>          False     1        20s             in 40s
nightly   0 3 * * *    Europe/Berlin   True      0        <none>          <suspended>
broken    99 * * * *   <none>          False     0        <none>          <invalid schedule>
`
	if out.String() != want {
		t.Fatalf("get cronjobs:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestCreatedByAndLogsArg(t *testing.T) {
	for _, tc := range []struct {
		labels, annotations map[string]string
		want                string
	}{
		{map[string]string{batch.LabelCronJob: "report"}, nil, "cronjob/report"},
		{map[string]string{batch.LabelCronJob: "report"}, map[string]string{batch.AnnotationInstantiate: "manual"}, "cronjob/report (manual)"},
		{map[string]string{batch.LabelJob: "migrate"}, nil, "job/migrate"},
		{nil, nil, "<none>"},
	} {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels, Annotations: tc.annotations}}
		if got := createdBy(j); got != tc.want {
			t.Errorf("createdBy(%v, %v) = %q, want %q", tc.labels, tc.annotations, got, tc.want)
		}
	}
	for arg, want := range map[string]string{"job/x": "x", "jobs/x": "x", "job.batch/x": "x", "x": "", "job/": ""} {
		got, ok := jobLogsArg(arg)
		if got != want || ok != (want != "") {
			t.Errorf("jobLogsArg(%q) = %q, %v", arg, got, ok)
		}
	}
}

func jobYAML(image string, parallelism int32) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  parallelism: %d
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: m
          image: %s
`, parallelism, image)
}

// TestPlanJobImmutable: `gantry plan` says what a Job change in git does — a
// changed spec is a new run named by the new spec hash, a parallelism change
// applies to the current run.
func TestPlanJobImmutable(t *testing.T) {
	dir := t.TempDir()
	write := func(sub, body string) string {
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "job.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	base := write("base", jobYAML("gantry.test/batch:v1", 1))
	image := write("image", jobYAML("gantry.test/batch:v2", 1))
	par := write("par", jobYAML("gantry.test/batch:v1", 3))
	var out bytes.Buffer
	code, err := runPlan(&out, planOptions{format: "text"}, []string{base, image})
	if err != nil || code != 2 {
		t.Fatalf("plan: code %d err %v\n%s", code, err, out.String())
	}
	// The run name the plan announces is the one the planner creates.
	loaded, lerr := loadDir(image, nil)
	if lerr != nil || len(loaded.desired.Jobs) != 1 {
		t.Fatalf("load %s: %v", image, lerr)
	}
	want := "migrate: spec changed → new run " + batch.RunName(loaded.desired.Jobs[0])
	if !strings.Contains(out.String(), want) {
		t.Fatalf("plan of an image change lacks %q:\n%s", want, out.String())
	}
	out.Reset()
	if _, err := runPlan(&out, planOptions{format: "text"}, []string{base, par}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "migrate: no new run; the change applies to the current run migrate-") {
		t.Fatalf("plan of a parallelism change:\n%s", out.String())
	}
}
