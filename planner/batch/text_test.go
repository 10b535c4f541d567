package batch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestLines(t *testing.T) {
	cj := cronJob("report", "* * * * *").created(at(t, "2026-01-01T00:00:00Z")).policy(batchv1.ReplaceConcurrent).cj
	d := Due(cj, CronStatus{LastScheduleTime: at(t, "2026-03-01T10:00:00Z"), Active: []JobRef{{Name: "report-1"}}}, at(t, "2026-03-01T10:05:00Z"))
	want := []string{
		"cronjob report: stop report-1 (concurrencyPolicy Replace)",
		"cronjob report: run report-29539325 for 2026-03-01T10:05:00Z (5 start times missed, the latest runs)",
	}
	if diff := cmp.Diff(want, d.Lines("report")); diff != "" {
		t.Errorf("CronDecision.Lines (-want +got):\n%s", diff)
	}
	bad := Due(cronJob("bad", "nope").cj, CronStatus{}, at(t, "2026-03-01T10:05:00Z"))
	if l := bad.Lines("bad"); len(l) != 1 || l[0][:len("cronjob bad: stalled: ")] != "cronjob bad: stalled: " {
		t.Errorf("stalled lines %q", l)
	}

	t0 := at(t, "2026-03-01T10:00:00Z")
	c := &cluster{t: t, job: job("once").backoff(0).ttl(0).j, seed: 1}
	p := c.step(t0).Create[0].Name
	c.finish(p, corev1.PodFailed, t0.Add(time.Second))
	want = []string{
		"job once: Job has reached the specified backoff limit",
		"job once: delete with its pods (ttlSecondsAfterFinished expired)",
	}
	if diff := cmp.Diff(want, c.step(t0.Add(2*time.Second)).Lines("once")); diff != "" {
		t.Errorf("JobDecision.Lines (-want +got):\n%s", diff)
	}
	if l := (JobDecision{}).Lines("idle"); l != nil {
		t.Errorf("idle Job lines %q, want none", l)
	}
}
