package batch

import (
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// Default history limits of a CronJob, as in Kubernetes. They also apply to the
// superseded runs of a plain Job and to the runs of a Job or CronJob removed from
// git, whose limits are no longer known.
const (
	DefaultSuccessfulJobsHistoryLimit = 3
	DefaultFailedJobsHistoryLimit     = 1
)

// History returns the finished runs of CronJob cj to delete, oldest first: all
// but the newest spec.successfulJobsHistoryLimit (default 3) succeeded runs and
// the newest spec.failedJobsHistoryLimit (default 1) failed ones. Active runs are
// never returned. See PruneHistory for the order.
func History(cj *batchv1.CronJob, runs []JobRef) []string {
	succ, failed := int32(DefaultSuccessfulJobsHistoryLimit), int32(DefaultFailedJobsHistoryLimit)
	if cj != nil && cj.Spec.SuccessfulJobsHistoryLimit != nil {
		succ = *cj.Spec.SuccessfulJobsHistoryLimit
	}
	if cj != nil && cj.Spec.FailedJobsHistoryLimit != nil {
		failed = *cj.Spec.FailedJobsHistoryLimit
	}
	return PruneHistory(runs, succ, failed)
}

// PruneHistory returns the names of the finished runs beyond the limits, oldest
// first (succeeded and failed merged in that order). A run's age is its
// ScheduledTime, else its StartTime; a run with neither counts as the newest (as
// Kubernetes sorts a Job without startTime); ties are broken by name. A negative
// limit counts as 0. Active runs are kept.
func PruneHistory(runs []JobRef, successfulLimit, failedLimit int32) []string {
	var succ, failed []JobRef
	for _, r := range runs {
		switch r.Result {
		case ResultSucceeded:
			succ = append(succ, r)
		case ResultFailed:
			failed = append(failed, r)
		}
	}
	var out []JobRef
	out = append(out, excess(succ, successfulLimit)...)
	out = append(out, excess(failed, failedLimit)...)
	sortRuns(out)
	var names []string // nil when nothing is pruned
	for _, r := range out {
		names = append(names, r.Name)
	}
	return names
}

// excess returns the oldest len(runs)-limit runs.
func excess(runs []JobRef, limit int32) []JobRef {
	if limit < 0 {
		limit = 0
	}
	if len(runs) <= int(limit) {
		return nil
	}
	sortRuns(runs)
	return runs[:len(runs)-int(limit)]
}

func sortRuns(runs []JobRef) {
	sort.SliceStable(runs, func(i, j int) bool {
		a, b := runAge(runs[i]), runAge(runs[j])
		switch {
		case a.IsZero() != b.IsZero():
			return b.IsZero()
		case !a.Equal(b):
			return a.Before(b)
		}
		return runs[i].Name < runs[j].Name
	})
}

func runAge(r JobRef) time.Time {
	if !r.ScheduledTime.IsZero() {
		return r.ScheduledTime
	}
	return r.StartTime
}
