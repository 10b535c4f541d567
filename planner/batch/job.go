package batch

import (
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobStatus is the stored status of one Job run: the Kubernetes status (what
// `gantry get jobs` and `describe` show) plus the bookkeeping that keeps Step
// level-triggered when finished pods disappear.
type JobStatus struct {
	batchv1.JobStatus `json:",inline"`
	// Counted lists, sorted, the finished pods already added to Succeeded or
	// Failed, so a pod is counted once however often Step sees it.
	Counted []string `json:"counted,omitempty"`
	// FailuresSinceSuccess is the number of failed pods since the last succeeded
	// one: it sets the back-off.
	FailuresSinceSuccess int32 `json:"failuresSinceSuccess,omitempty"`
	// LastFailureTime is when the latest counted pod failed.
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`
	// Stopped lists, sorted, the observed pods Step decided to stop. They are
	// neither active nor counted, however they end (a stopped pod often ends
	// Failed), and Step repeats their Stop while they still run.
	Stopped []string `json:"stopped,omitempty"`
}

// PodStop is one pod of the run to stop, with why.
type PodStop struct {
	Name   string
	Reason string
}

// JobDecision is what one Job run does now. The caller places Create like other
// pods, stops Stop (marking the pods for deletion: a pod with deletionTimestamp
// set is neither active nor counted), stores Status, and comes back at Wake.
type JobDecision struct {
	// Create lists full pods to place: name, namespace, labels, annotations,
	// ownerReference and spec. They share nothing with the Job.
	Create []*corev1.Pod
	// Stop lists active pods to stop.
	Stop []PodStop
	// Status is the run's new status.
	Status JobStatus
	// Delete is true when ttlSecondsAfterFinished has expired: delete the Job and
	// all its pods (with their logs).
	Delete bool
	// Events are the transitions of this step (completed, failed, suspended…).
	Events []Event
	// Wake is when Step has something to do without any pod changing: the end of
	// a back-off, the active deadline, the TTL. Zero for none. Pod changes need a
	// new Step anyway.
	Wake time.Time
}

// Finished reports whether the status has a Complete or Failed condition (True).
func (s JobStatus) Finished() (batchv1.JobConditionType, bool) {
	for _, c := range s.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.Type, true
		}
	}
	return "", false
}

// FinishTime is when the run finished: status.completionTime, else the Failed
// condition's transition time; zero if not finished.
func (s JobStatus) FinishTime() time.Time {
	if s.CompletionTime != nil {
		return s.CompletionTime.Time
	}
	for _, c := range s.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// Ref returns the JobRef of run job with status s, for History and JobRuns.
func Ref(job *batchv1.Job, s JobStatus) JobRef {
	r := JobRef{Name: job.Name}
	if v, ok := job.Annotations[AnnotationScheduledTimestamp]; ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			r.ScheduledTime = t
		}
	}
	if s.StartTime != nil {
		r.StartTime = s.StartTime.Time
	}
	switch t, _ := s.Finished(); t {
	case batchv1.JobComplete:
		r.Result = ResultSucceeded
	case batchv1.JobFailed:
		r.Result = ResultFailed
	}
	return r
}

// Step decides one Job run at now from its observed pods (every pod labelled
// with the run's job-name, with status) and its stored status. seed picks the
// pod name suffixes, so equal inputs give equal pods. The rules, as in Kubernetes:
//
//   - Pods: phase Succeeded or Failed is finished and counted once; Pending or
//     Running without deletionTimestamp is active; a pod being deleted is neither.
//   - completions (NonIndexed): Complete when Succeeded reaches completions; at
//     most min(parallelism, completions-succeeded) pods run. Without completions
//     (a work queue): no new pod once one succeeded; Complete when none is active.
//   - Indexed: indexes 0..completions-1; each pod has the job-completion-index
//     label and annotation and JOB_COMPLETION_INDEX in every container; the
//     lowest missing indexes are created; Complete when all succeeded.
//   - backoffLimit: Failed (BackoffLimitExceeded) when failed pods exceed it, or,
//     with restartPolicy OnFailure, when the container restarts of the active pods
//     reach it (any restart when it is 0). After a failure the next pod waits
//     Backoff(FailuresSinceSuccess) from the failure.
//   - activeDeadlineSeconds from status.startTime: Failed (DeadlineExceeded).
//   - Finishing stops every active pod. ttlSecondsAfterFinished: Delete once
//     finish + TTL is reached.
//   - suspend: active pods are stopped and nothing starts; resuming resets
//     startTime, so the active deadline counts from the resume.
func Step(job *batchv1.Job, pods []*corev1.Pod, st JobStatus, now time.Time, seed int64) JobDecision {
	d := step(job, pods, st, now, seed)
	d.Status.Stopped = sortUnique(d.Status.Stopped)
	return d
}

func step(job *batchv1.Job, pods []*corev1.Pod, st JobStatus, now time.Time, seed int64) JobDecision {
	d := JobDecision{Status: copyStatus(st)}
	s := &d.Status
	nowT := metav1.NewTime(now)

	var active, terminal []*corev1.Pod
	names := map[string]bool{}
	stopped := map[string]bool{}
	for _, n := range s.Stopped {
		stopped[n] = true
	}
	s.Stopped = nil
	for _, p := range pods {
		if p == nil {
			continue
		}
		names[p.Name] = true
		finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		switch {
		case stopped[p.Name]:
			if p.DeletionTimestamp == nil && !finished {
				d.stop(p.Name, "stop not done yet")
			} else {
				s.Stopped = append(s.Stopped, p.Name)
			}
		case p.DeletionTimestamp != nil:
		case finished:
			terminal = append(terminal, p)
		default:
			active = append(active, p)
		}
	}
	sortPods(active)

	if _, done := s.Finished(); done {
		d.stopAll(active, "job finished")
		s.Active = 0
		d.ttl(job, now)
		return d
	}

	indexed := job.Spec.CompletionMode != nil && *job.Spec.CompletionMode == batchv1.IndexedCompletion
	completions := -1
	if job.Spec.Completions != nil {
		completions = int(*job.Spec.Completions)
	}
	if indexed && completions < 0 {
		completions = 0 // invalid (manifest refuses it); treat as nothing to do
	}
	d.count(terminal, indexed, completions, now)

	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		d.stopAll(active, "job suspended")
		s.Active, s.Ready = 0, ptrInt32(0)
		if !hasCondition(s.Conditions, batchv1.JobSuspended, corev1.ConditionTrue) {
			setCondition(s, batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended", nowT)
			d.Events = append(d.Events, Event{EventNormal, ReasonSuspended, "Job suspended"})
		}
		return d
	}
	if hasCondition(s.Conditions, batchv1.JobSuspended, corev1.ConditionTrue) {
		setCondition(s, batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed", nowT)
		d.Events = append(d.Events, Event{EventNormal, ReasonResumed, "Job resumed"})
		s.StartTime = &nowT
	}
	if s.StartTime == nil {
		s.StartTime = &nowT
	}

	backoffLimit := int32(6)
	if job.Spec.BackoffLimit != nil {
		backoffLimit = *job.Spec.BackoffLimit
	}
	if s.Failed > backoffLimit || restartsExceeded(job, active, backoffLimit) {
		d.fail(job, active, ReasonBackoffLimitExceeded, "Job has reached the specified backoff limit", now)
		return d
	}
	if ads := job.Spec.ActiveDeadlineSeconds; ads != nil {
		deadline := s.StartTime.Add(time.Duration(*ads) * time.Second)
		if !now.Before(deadline) {
			d.fail(job, active, ReasonDeadlineExceeded, "Job was active longer than specified deadline", now)
			return d
		}
		d.wakeAt(deadline)
	}

	var done bool
	switch {
	case indexed:
		done = int(s.Succeeded) >= completions
	case completions >= 0:
		done = int(s.Succeeded) >= completions
	default:
		done = s.Succeeded > 0 && len(active) == 0
	}
	if done {
		d.stopAll(active, "job complete")
		s.Active, s.Ready = 0, ptrInt32(0)
		s.CompletionTime = &nowT
		setCondition(s, batchv1.JobComplete, corev1.ConditionTrue, "CompletionsReached", "Reached expected number of succeeded pods", nowT)
		d.Events = append(d.Events, Event{EventNormal, ReasonCompleted, "Job completed"})
		d.ttl(job, now)
		return d
	}

	parallelism := 1
	if job.Spec.Parallelism != nil {
		parallelism = int(*job.Spec.Parallelism)
	}
	var kept []*corev1.Pod
	var create []int // indexes, or -1 per NonIndexed pod
	if indexed {
		kept, create = d.scaleIndexed(active, completions, parallelism)
	} else {
		kept, create = d.scaleNonIndexed(active, completions, parallelism)
	}
	if len(create) > 0 && s.FailuresSinceSuccess > 0 && s.LastFailureTime != nil {
		ready := s.LastFailureTime.Add(Backoff(s.FailuresSinceSuccess))
		if now.Before(ready) {
			create = nil
			d.wakeAt(ready)
		}
	}
	uid := ControllerUID(job)
	n := 0
	for _, ix := range create {
		prefix := job.Name + "-"
		if ix >= 0 {
			prefix = fmt.Sprintf("%s-%d-", job.Name, ix)
		}
		name := prefix + podSuffix(seed, job.Name, n)
		for names[name] {
			n++
			name = prefix + podSuffix(seed, job.Name, n)
		}
		n++
		names[name] = true
		d.Create = append(d.Create, newPod(job, name, ix, uid))
	}
	s.Active = int32(len(kept) + len(d.Create))
	s.Ready = ptrInt32(int32(countReady(kept)))
	return d
}

// Supersede ends run job because its Job's spec changed in git: active pods are
// stopped and the run is marked Failed with reason Superseded (kept in history).
// A finished run is left as it is.
func Supersede(job *batchv1.Job, pods []*corev1.Pod, st JobStatus, now time.Time) JobDecision {
	d := JobDecision{Status: copyStatus(st)}
	if _, done := d.Status.Finished(); done {
		return d
	}
	var active []*corev1.Pod
	for _, p := range pods {
		if p != nil && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			active = append(active, p)
		}
	}
	sortPods(active)
	d.fail(job, active, ReasonSuperseded, "The Job's spec changed in git; a new run replaces this one", now)
	d.Status.Stopped = sortUnique(d.Status.Stopped)
	return d
}

// count adds the finished pods not yet counted to the status.
func (d *JobDecision) count(terminal []*corev1.Pod, indexed bool, completions int, now time.Time) {
	s := &d.Status
	counted := map[string]bool{}
	for _, n := range s.Counted {
		counted[n] = true
	}
	var fresh []*corev1.Pod
	for _, p := range terminal {
		if !counted[p.Name] {
			fresh = append(fresh, p)
		}
	}
	sort.SliceStable(fresh, func(i, j int) bool {
		a, b := finishTime(fresh[i], now), finishTime(fresh[j], now)
		if !a.Equal(b) {
			return a.Before(b)
		}
		return fresh[i].Name < fresh[j].Name
	})
	var completed map[int]bool
	if indexed {
		completed = parseIndexes(s.CompletedIndexes, completions)
	}
	for _, p := range fresh {
		s.Counted = append(s.Counted, p.Name)
		if p.Status.Phase == corev1.PodSucceeded {
			s.FailuresSinceSuccess = 0
			if !indexed {
				s.Succeeded++
			} else if ix := podIndex(p); ix >= 0 && ix < completions {
				completed[ix] = true
			}
			continue
		}
		s.Failed++
		s.FailuresSinceSuccess++
		t := metav1.NewTime(finishTime(p, now))
		if s.LastFailureTime == nil || t.After(s.LastFailureTime.Time) {
			s.LastFailureTime = &t
		}
	}
	sort.Strings(s.Counted)
	if indexed {
		s.Succeeded = int32(len(completed))
		s.CompletedIndexes = formatIndexes(sortedKeys(completed))
	}
}

// scaleNonIndexed returns the active pods kept and one -1 per pod to create.
func (d *JobDecision) scaleNonIndexed(active []*corev1.Pod, completions, parallelism int) ([]*corev1.Pod, []int) {
	s := &d.Status
	if completions < 0 && s.Succeeded > 0 {
		return active, nil // a work queue drains: no new pods, none stopped
	}
	want := parallelism
	if completions >= 0 && completions-int(s.Succeeded) < want {
		want = completions - int(s.Succeeded)
	}
	if want < 0 {
		want = 0
	}
	if len(active) > want {
		d.stopAll(active[want:], "more pods than parallelism and remaining completions need")
		return active[:want], nil
	}
	create := make([]int, want-len(active))
	for i := range create {
		create[i] = -1
	}
	return active, create
}

// scaleIndexed returns the active pods kept and the indexes to create.
func (d *JobDecision) scaleIndexed(active []*corev1.Pod, completions, parallelism int) ([]*corev1.Pod, []int) {
	completed := parseIndexes(d.Status.CompletedIndexes, completions)
	running := map[int]bool{}
	var kept []*corev1.Pod
	for _, p := range active {
		ix := podIndex(p)
		switch {
		case ix < 0 || ix >= completions:
			d.stop(p.Name, "completion index out of range")
		case completed[ix]:
			d.stop(p.Name, fmt.Sprintf("completion index %d already succeeded", ix))
		case running[ix]:
			d.stop(p.Name, fmt.Sprintf("another pod runs completion index %d", ix))
		default:
			running[ix] = true
			kept = append(kept, p)
		}
	}
	want := parallelism
	if remaining := completions - len(completed); remaining < want {
		want = remaining
	}
	if len(kept) > want {
		// Keep the lowest indexes: they are the ones a restart would create first.
		sort.SliceStable(kept, func(i, j int) bool { return podIndex(kept[i]) < podIndex(kept[j]) })
		d.stopAll(kept[want:], "more pods than parallelism")
		return kept[:want], nil
	}
	var create []int
	for ix := 0; ix < completions && len(kept)+len(create) < want; ix++ {
		if !completed[ix] && !running[ix] {
			create = append(create, ix)
		}
	}
	return kept, create
}

// fail marks the run Failed with reason and stops its active pods.
func (d *JobDecision) fail(job *batchv1.Job, active []*corev1.Pod, reason, message string, now time.Time) {
	s := &d.Status
	d.stopAll(active, message)
	s.Active, s.Ready = 0, ptrInt32(0)
	setCondition(s, batchv1.JobFailed, corev1.ConditionTrue, reason, message, metav1.NewTime(now))
	d.Events = append(d.Events, Event{EventWarning, reason, message})
	d.ttl(job, now)
}

// ttl sets Delete or Wake for a finished run.
func (d *JobDecision) ttl(job *batchv1.Job, now time.Time) {
	if job.Spec.TTLSecondsAfterFinished == nil {
		return
	}
	expire := d.Status.FinishTime().Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second)
	if now.Before(expire) {
		d.wakeAt(expire)
		return
	}
	d.Delete = true
	d.Events = append(d.Events, Event{EventNormal, ReasonTTLExpired,
		fmt.Sprintf("Job finished %s ago (ttlSecondsAfterFinished %d): deleting it and its pods", now.Sub(d.Status.FinishTime()), *job.Spec.TTLSecondsAfterFinished)})
}

func (d *JobDecision) stopAll(active []*corev1.Pod, reason string) {
	for _, p := range active {
		d.stop(p.Name, reason)
	}
}

// stop records a pod to stop, in Stop and in Status.Stopped.
func (d *JobDecision) stop(name, reason string) {
	d.Stop = append(d.Stop, PodStop{name, reason})
	d.Status.Stopped = append(d.Status.Stopped, name)
}

func (d *JobDecision) wakeAt(t time.Time) {
	if d.Wake.IsZero() || t.Before(d.Wake) {
		d.Wake = t
	}
}

// restartsExceeded applies the OnFailure rule of Kubernetes: container restarts
// of the active pods count toward backoffLimit.
func restartsExceeded(job *batchv1.Job, active []*corev1.Pod, limit int32) bool {
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var restarts int32
	for _, p := range active {
		for _, c := range p.Status.InitContainerStatuses {
			restarts += c.RestartCount
		}
		for _, c := range p.Status.ContainerStatuses {
			restarts += c.RestartCount
		}
	}
	if limit == 0 {
		return restarts > 0
	}
	return restarts >= limit
}

// finishTime is when pod p ended: the latest container termination, else now
// (the first time Step sees it finished).
func finishTime(p *corev1.Pod, now time.Time) time.Time {
	var t time.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, c := range list {
			if term := c.State.Terminated; term != nil && term.FinishedAt.After(t) {
				t = term.FinishedAt.Time
			}
		}
	}
	if t.IsZero() {
		return now
	}
	return t
}

// sortPods orders active pods so the ones to stop first come last: running
// before pending, then by name.
func sortPods(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		ri, rj := pods[i].Status.Phase == corev1.PodRunning, pods[j].Status.Phase == corev1.PodRunning
		if ri != rj {
			return ri
		}
		return pods[i].Name < pods[j].Name
	})
}

func countReady(pods []*corev1.Pod) int {
	n := 0
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}

func hasCondition(cs []batchv1.JobCondition, t batchv1.JobConditionType, status corev1.ConditionStatus) bool {
	for _, c := range cs {
		if c.Type == t && c.Status == status {
			return true
		}
	}
	return false
}

// setCondition sets condition t, keeping its transition time if unchanged.
func setCondition(s *JobStatus, t batchv1.JobConditionType, status corev1.ConditionStatus, reason, message string, now metav1.Time) {
	for i := range s.Conditions {
		c := &s.Conditions[i]
		if c.Type != t {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastProbeTime = status, reason, message, now
		return
	}
	s.Conditions = append(s.Conditions, batchv1.JobCondition{
		Type: t, Status: status, Reason: reason, Message: message, LastProbeTime: now, LastTransitionTime: now,
	})
}

func copyStatus(st JobStatus) JobStatus {
	out := JobStatus{JobStatus: *st.JobStatus.DeepCopy(), FailuresSinceSuccess: st.FailuresSinceSuccess}
	out.Counted = append([]string(nil), st.Counted...)
	out.Stopped = append([]string(nil), st.Stopped...)
	if st.LastFailureTime != nil {
		t := *st.LastFailureTime
		out.LastFailureTime = &t
	}
	return out
}

func ptrInt32(v int32) *int32 { return &v }

func sortUnique(list []string) []string {
	sort.Strings(list)
	out := list[:0]
	for i, v := range list {
		if i == 0 || v != list[i-1] {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
