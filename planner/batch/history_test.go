package batch

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHistory(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	min := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	run := func(n int, r JobResult) JobRef {
		return JobRef{Name: JobName("tick", min(n)), ScheduledTime: min(n), Result: r}
	}
	runs := []JobRef{
		run(5, ResultSucceeded), run(1, ResultSucceeded), run(3, ResultFailed), run(2, ResultSucceeded),
		run(4, ResultSucceeded), run(6, ResultFailed), run(0, ResultFailed), run(7, ResultActive), run(8, ResultActive),
	}
	tests := []struct {
		name         string
		succ, failed int32
		want         []JobRef
	}{
		{"defaults 3 and 1", 3, 1, []JobRef{run(0, ResultFailed), run(1, ResultSucceeded), run(3, ResultFailed)}},
		{"keep nothing", 0, 0, []JobRef{run(0, ResultFailed), run(1, ResultSucceeded), run(2, ResultSucceeded),
			run(3, ResultFailed), run(4, ResultSucceeded), run(5, ResultSucceeded), run(6, ResultFailed)}},
		{"negative is 0", -1, 5, []JobRef{run(1, ResultSucceeded), run(2, ResultSucceeded), run(4, ResultSucceeded), run(5, ResultSucceeded)}},
		{"within limits", 10, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]JobRef(nil), runs...)
			got := History(cronJob("tick", "* * * * *").limits(tt.succ, tt.failed).cj, in)
			var want []string
			for _, r := range tt.want {
				want = append(want, r.Name)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("History (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPruneHistoryOrder(t *testing.T) {
	t0 := at(t, "2026-03-01T10:00:00Z")
	runs := []JobRef{
		{Name: "b", StartTime: t0, Result: ResultSucceeded},
		{Name: "no-start", Result: ResultSucceeded}, // newest, as Kubernetes sorts it
		{Name: "a", StartTime: t0, Result: ResultSucceeded},
		{Name: "old", StartTime: t0.Add(-time.Hour), Result: ResultSucceeded},
	}
	if diff := cmp.Diff([]string{"old", "a", "b"}, PruneHistory(runs, 1, 1)); diff != "" {
		t.Errorf("PruneHistory (-want +got):\n%s", diff)
	}
	// A CronJob removed from git keeps the default limits.
	if diff := cmp.Diff([]string{"old"}, Orphaned(runs)); diff != "" {
		t.Errorf("Orphaned (-want +got):\n%s", diff)
	}
	if got := History(nil, runs); len(got) != 1 {
		t.Errorf("History(nil) = %v, want the default limits", got)
	}
}
