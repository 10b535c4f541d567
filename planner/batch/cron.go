package batch

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// MaxMissedStartTimes is the number of missed start times above which Due reports
// TooManyMissedTimes, as the Kubernetes CronJob controller does. Due still starts
// the most recent missed time.
const MaxMissedStartTimes = 100

// JobResult is where a Job run stands.
type JobResult string

// The results of a run. An unfinished run has ResultActive.
const (
	ResultActive    JobResult = ""
	ResultSucceeded JobResult = "Succeeded"
	ResultFailed    JobResult = "Failed"
)

// JobRef names one Job run of a CronJob (or one run of a plain Job).
type JobRef struct {
	Name string
	// ScheduledTime is the tick the run belongs to (zero for a plain Job).
	ScheduledTime time.Time
	// StartTime is when the run started (status.startTime); zero if not yet.
	StartTime time.Time
	// Result is ResultActive until the run has a Complete or Failed condition.
	Result JobResult
}

// CronStatus is the state of one CronJob that Due needs: its status in the store.
type CronStatus struct {
	// LastScheduleTime is the last tick a Job was created for; zero if none.
	LastScheduleTime time.Time
	// Active lists the runs not yet finished.
	Active []JobRef
}

// CronDecision is what one CronJob should do now. The caller creates Create with
// create-if-absent (a Job named for its tick that already exists counts as
// created: it is the same tick), stops the pods of Stop, stores LastScheduleTime
// and comes back at Wake.
type CronDecision struct {
	// Create is the Job to create for ScheduledTime, or nil.
	Create *batchv1.Job
	// ScheduledTime is the tick Create belongs to (zero when Create is nil).
	ScheduledTime time.Time
	// Stop lists active runs to stop before Create starts (concurrencyPolicy Replace).
	Stop []string
	// LastScheduleTime is the new status.lastScheduleTime: ScheduledTime when a Job
	// is created, else the input's value.
	LastScheduleTime time.Time
	// Missed is how many start times passed unmet since the last schedule (or the
	// CronJob's creation), counting only those within startingDeadlineSeconds; at
	// most MaxMissedStartTimes+1. Only the most recent of them runs.
	Missed int
	// Events are the transitions of this decision (created, skipped, missed…).
	Events []Event
	// Wake is when to evaluate the CronJob again: the next tick after now. Zero
	// when the CronJob is suspended, its schedule is invalid or never fires again.
	// The caller also re-evaluates when an active run finishes (Forbid waits for it).
	Wake time.Time
	// Err is set (wrapping api.ErrInvalidArgument) when the schedule or time zone
	// is invalid: the CronJob is stalled until its manifest is fixed.
	Err error
}

// Due decides what CronJob cj does at now, given its stored status. Rules, as in
// the Kubernetes CronJob controller:
//   - suspend: nothing runs and there is no wake-up; missed times are not recorded,
//     so resuming runs the most recent one still within startingDeadlineSeconds.
//   - The unmet ticks are those after status.lastScheduleTime (else the CronJob's
//     creationTimestamp, else now: a CronJob without either starts with the next
//     tick) and at or before now. With startingDeadlineSeconds only ticks at or
//     after now - deadline count; older ones are reported as MissSchedule.
//   - Only the most recent unmet tick runs; more than MaxMissedStartTimes unmet
//     ticks also give a TooManyMissedTimes warning.
//   - A tick whose Job is already in status.Active is done (nothing to create).
//   - concurrencyPolicy Forbid with an active run: the tick is skipped with a
//     JobAlreadyActive event and lastScheduleTime is not advanced, so it runs when
//     the active run ends if still within the deadline (Kubernetes behaves so).
//     Replace: the active runs are stopped and the new one is created. Allow
//     (the default): the new run starts next to the active ones.
//
// The Job is named "<cronjob>-<unix minutes of the tick>" (JobName), so one tick
// has one name and create-if-absent makes it run once across restarts and leader
// changes.
func Due(cj *batchv1.CronJob, status CronStatus, now time.Time) CronDecision {
	d := CronDecision{LastScheduleTime: status.LastScheduleTime}
	if cj == nil {
		return d
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return d
	}
	sched, err := ParseSchedule(cj)
	if err != nil {
		d.Err = err
		d.Events = append(d.Events, Event{EventWarning, ReasonUnparseableSchedule, err.Error()})
		return d
	}

	earliest := status.LastScheduleTime
	if earliest.IsZero() {
		earliest = cj.CreationTimestamp.Time
	}
	if earliest.IsZero() {
		earliest = now
	}
	if sds := cj.Spec.StartingDeadlineSeconds; sds != nil {
		deadline := now.Add(-time.Duration(*sds) * time.Second)
		if deadline.After(earliest) {
			// Ticks in (earliest, deadline) are lost: say so once, for the latest.
			if lost, ok := mostRecent(sched, earliest, deadline.Add(-time.Nanosecond)); ok {
				d.Events = append(d.Events, Event{EventWarning, ReasonMissSchedule,
					fmt.Sprintf("Missed scheduled time to start a job: %s (startingDeadlineSeconds %d)", formatTick(lost, sched.Location), *sds)})
			}
			// Next(t) is strictly after t; step back so a tick exactly at the
			// deadline still counts.
			earliest = deadline.Add(-time.Nanosecond)
		}
	}
	n, tick, next := scanTicks(sched, earliest, now, MaxMissedStartTimes+1)
	d.Missed = n
	if n == 0 {
		d.Wake = next
		return d
	}
	if n > MaxMissedStartTimes {
		tick, _ = mostRecent(sched, earliest, now)
		next = sched.Next(tick)
	}
	d.Wake = next
	if n > MaxMissedStartTimes {
		d.Events = append(d.Events, Event{EventWarning, ReasonTooManyMissedTimes,
			fmt.Sprintf("too many missed start times (more than %d since %s). Set or decrease .spec.startingDeadlineSeconds or check clock skew",
				MaxMissedStartTimes, formatTick(earliest, sched.Location))})
	}
	name := JobName(cj.Name, tick)
	for _, a := range status.Active {
		if a.Name == name {
			d.LastScheduleTime = tick
			return d
		}
	}
	if len(status.Active) > 0 {
		switch cj.Spec.ConcurrencyPolicy {
		case batchv1.ForbidConcurrent:
			d.Events = append(d.Events, Event{EventNormal, ReasonJobAlreadyActive,
				fmt.Sprintf("Not starting job for %s because prior execution %s is running and concurrency policy is Forbid",
					formatTick(tick, sched.Location), status.Active[0].Name)})
			return d
		case batchv1.ReplaceConcurrent:
			for _, a := range status.Active {
				d.Stop = append(d.Stop, a.Name)
				d.Events = append(d.Events, Event{EventNormal, ReasonSuccessfulDelete,
					fmt.Sprintf("Deleted job %s (concurrency policy Replace)", a.Name)})
			}
		}
	}
	d.Create = JobFor(cj, tick, sched.Location)
	d.ScheduledTime = tick
	d.LastScheduleTime = tick
	d.Events = append(d.Events, Event{EventNormal, ReasonSuccessfulCreate, fmt.Sprintf("Created job %s", name)})
	return d
}

// scanTicks counts the ticks in (after, until], stopping at limit. It returns the
// last tick seen and the tick after it (zero if the schedule never fires again);
// below limit they are the most recent tick and the next one.
func scanTicks(s Schedule, after, until time.Time, limit int) (n int, last, next time.Time) {
	t := s.Next(after)
	for ; !t.IsZero() && !t.After(until) && n < limit; t = s.Next(t) {
		n++
		last = t
	}
	return n, last, t
}

// mostRecent returns the latest tick in (after, until]. It looks back from until
// in growing windows, so a long downtime costs a few schedule evaluations, not one
// per missed tick.
func mostRecent(s Schedule, after, until time.Time) (time.Time, bool) {
	if !until.After(after) {
		return time.Time{}, false
	}
	first := s.Next(after)
	if first.IsZero() || first.After(until) {
		return time.Time{}, false
	}
	if every, ok := s.Schedule.(cron.ConstantDelaySchedule); ok && every.Delay > 0 {
		// @every is anchored at the last schedule: step in whole delays.
		return first.Add(until.Sub(first) / every.Delay * every.Delay), true
	}
	window := time.Minute
	if second := s.Next(first); !second.IsZero() && second.Sub(first) > window {
		window = second.Sub(first)
	}
	for {
		from := until.Add(-window)
		if !from.After(after) {
			from = after
		}
		if t := s.Next(from); !t.IsZero() && !t.After(until) {
			last := t
			for u := s.Next(t); !u.IsZero() && !u.After(until); u = s.Next(u) {
				last = u
			}
			return last, true
		}
		window *= 2
	}
}

// formatTick renders a tick in its schedule's zone, e.g. 2026-03-08T03:30:00-04:00.
func formatTick(t time.Time, loc *time.Location) string {
	if loc != nil {
		t = t.In(loc)
	}
	return t.Format(time.RFC3339)
}
