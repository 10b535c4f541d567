package batch

import (
	"fmt"
	"time"
)

// Lines renders d as the lines `gantry plan` prints for CronJob cronJob, e.g.
//
//	cronjob report: run report-29539325 for 2026-03-01T10:05:00Z (5 start times missed, the latest runs)
//	cronjob report: stop report-29539320 (concurrencyPolicy Replace)
//
// Events other than the create and delete ones follow as "cronjob report: <message>".
// Nothing to do gives no lines.
func (d CronDecision) Lines(cronJob string) []string {
	var out []string
	if d.Err != nil {
		return []string{fmt.Sprintf("cronjob %s: stalled: %v", cronJob, d.Err)}
	}
	for _, s := range d.Stop {
		out = append(out, fmt.Sprintf("cronjob %s: stop %s (concurrencyPolicy Replace)", cronJob, s))
	}
	if d.Create != nil {
		line := fmt.Sprintf("cronjob %s: run %s for %s", cronJob, d.Create.Name, d.ScheduledTime.UTC().Format(time.RFC3339))
		if d.Missed > 1 {
			line += fmt.Sprintf(" (%d start times missed, the latest runs)", d.Missed)
		}
		out = append(out, line)
	}
	for _, e := range d.Events {
		if e.Reason != ReasonSuccessfulCreate && e.Reason != ReasonSuccessfulDelete {
			out = append(out, fmt.Sprintf("cronjob %s: %s", cronJob, e.Message))
		}
	}
	return out
}

// Lines renders d as the lines `gantry plan` prints for Job run job, e.g.
//
//	job migrate-1a2b3c4d5e: create pod migrate-1a2b3c4d5e-bcdfg
//	job migrate-1a2b3c4d5e: stop pod migrate-1a2b3c4d5e-hjklm (job suspended)
//	job migrate-1a2b3c4d5e: Job has reached the specified backoff limit
//
// Nothing to do gives no lines.
func (d JobDecision) Lines(job string) []string {
	var out []string
	for _, p := range d.Create {
		out = append(out, fmt.Sprintf("job %s: create pod %s", job, p.Name))
	}
	for _, s := range d.Stop {
		out = append(out, fmt.Sprintf("job %s: stop pod %s (%s)", job, s.Name, s.Reason))
	}
	for _, e := range d.Events {
		if e.Reason != ReasonTTLExpired {
			out = append(out, fmt.Sprintf("job %s: %s", job, e.Message))
		}
	}
	if d.Delete {
		out = append(out, fmt.Sprintf("job %s: delete with its pods (ttlSecondsAfterFinished expired)", job))
	}
	return out
}
