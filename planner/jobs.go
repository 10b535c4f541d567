package planner

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/planner/batch"
)

// maxExpired bounds AppState.Expired.
const maxExpired = 10

// jobRun is one run (Job object) of a Job or CronJob app in this reconcile.
type jobRun struct {
	job     *batchv1.Job
	status  batch.JobStatus
	pods    []*podRec
	created bool          // created by this plan
	deleted bool          // deleted by this plan
	create  []*corev1.Pod // pods Step wants, placed by placeRunPods
	placed  int
}

func (r *jobRun) name() string { return r.job.Name }

func (r *jobRun) ref() batch.JobRef { return batch.Ref(r.job, r.status) }

// runAppKey is the app a stored run belongs to: its gantry.io/app annotation,
// else its gantry.io/job or gantry.io/cronjob label; "" for neither.
func runAppKey(j *batchv1.Job) string {
	ns := namespaceOf(j.Namespace)
	switch {
	case j.Annotations[AnnotationApp] != "":
		return j.Annotations[AnnotationApp]
	case j.Labels[batch.LabelJob] != "":
		return AppKey(KindJob, ns, j.Labels[batch.LabelJob])
	case j.Labels[batch.LabelCronJob] != "":
		return AppKey(KindCronJob, ns, j.Labels[batch.LabelCronJob])
	}
	return ""
}

// attachRuns gives every Job and CronJob app its stored runs, and makes an app
// for the runs of a Job or CronJob that left git, so its active runs finish and
// its history is kept within the default limits instead of being pruned.
func (c *cluster) attachRuns(in *Input, byKey map[string]*app, add func(*app)) {
	jobs := make([]*batchv1.Job, 0, len(in.Jobs))
	for _, j := range in.Jobs {
		if j != nil {
			jobs = append(jobs, j)
		}
	}
	sort.Slice(jobs, func(i, k int) bool { return jobs[i].Name < jobs[k].Name })
	seen := map[string]bool{}
	for _, j := range jobs {
		key := runAppKey(j)
		kind, ns, name, ok := splitAppKey(key)
		if !ok || (kind != KindJob && kind != KindCronJob) || ns != namespaceOf(j.Namespace) {
			continue
		}
		a := byKey[key]
		if a == nil {
			a = &app{key: key, kind: kind, ns: ns, name: name, meta: &metav1.ObjectMeta{}, template: &j.Spec.Template}
			add(a)
		}
		if a.kind != kind || seen[ns+"/"+j.Name] {
			continue
		}
		seen[ns+"/"+j.Name] = true
		a.runs = append(a.runs, &jobRun{job: j, status: a.orig.Runs[j.Name]})
	}
}

func splitAppKey(key string) (kind AppKind, ns, name string, ok bool) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return AppKind(parts[0]), parts[1], parts[2], true
}

// bindRunPods hands the app's observed pods to its runs by the job-name label.
// Pods of a run that no longer exists are stopped.
func (c *cluster) bindRunPods(a *app) {
	byName := map[string]*jobRun{}
	for _, r := range a.runs {
		byName[r.name()] = r
	}
	for _, p := range a.pods {
		if r := byName[p.pod.Labels[batch.LabelJobName]]; r != nil {
			r.pods = append(r.pods, p)
			continue
		}
		if !p.deleting {
			c.stop(p, "its Job run no longer exists")
		}
	}
}

// reconcileJob runs a Job from git (or one that left it): batch.JobRuns decides
// the run of git's spec (a changed spec is a new run, older active runs are
// superseded), then every run steps.
func (c *cluster) reconcileJob(a *app) {
	c.bindRunPods(a)
	refs := a.refs()
	var supersede, prune map[string]bool
	if a.job != nil {
		rd := batch.JobRuns(a.job, refs)
		a.current = rd.Run.Name
		supersede, prune = set(rd.Supersede), set(rd.Delete)
		if rd.Create && slices.Contains(a.state.Expired, rd.Run.Name) {
			rd.Create = false // it ran to the end and its TTL deleted it: not again
		}
		if rd.Create {
			c.createRun(a, rd.Run, time.Time{}, rd.Plan)
		}
	} else {
		prune = set(batch.Orphaned(refs))
	}
	for _, r := range a.runs {
		switch {
		case r.deleted:
		case prune[r.name()]:
			c.deleteRun(a, r, "beyond the history limits (3 succeeded, 1 failed)")
		case supersede[r.name()]:
			c.applyStep(a, r, batch.Supersede(r.job, r.podObjects(), r.status, c.now))
		default:
			c.applyStep(a, r, batch.Step(r.job, r.podObjects(), r.status, c.now, c.seed))
		}
	}
	a.saveRuns()
}

// reconcileCronJob runs a CronJob from git (or one that left it): its runs step
// first, so a run that finishes now no longer counts as active; then batch.Due
// decides the tick's run (stepped at once, so its first pods are placed in this
// plan), and batch.History (or, after the CronJob left git, batch.Orphaned)
// prunes finished runs.
func (c *cluster) reconcileCronJob(a *app) {
	c.bindRunPods(a)
	for _, r := range a.runs {
		c.applyStep(a, r, batch.Step(r.job, r.podObjects(), r.status, c.now, c.seed))
	}
	var last, since time.Time
	if a.orig.Cron != nil {
		last, since = a.orig.Cron.LastScheduleTime, a.orig.Cron.Since
	}
	if since.IsZero() {
		since = c.now
	}
	if cj := a.cron; cj != nil {
		if cj.CreationTimestamp.IsZero() {
			// Without it Due would anchor at now in every round and never run.
			cp := *cj
			cp.CreationTimestamp = metav1.NewTime(since)
			cj = &cp
		}
		st := batch.CronStatus{LastScheduleTime: last}
		for _, r := range a.liveRuns() {
			if ref := r.ref(); ref.Result == batch.ResultActive {
				st.Active = append(st.Active, ref)
			}
		}
		d := batch.Due(cj, st, c.now)
		if d.Err != nil {
			a.invalid = fmt.Sprintf("stalled: %v", d.Err)
		}
		for _, e := range d.Events {
			if e.Reason != batch.ReasonSuccessfulCreate && e.Reason != batch.ReasonSuccessfulDelete {
				c.plan.Events = append(c.plan.Events, Event{App: a.key, Reason: e.Reason, Message: e.Message})
			}
		}
		for _, name := range d.Stop {
			if r := a.run(name); r != nil {
				c.deleteRun(a, r, "concurrencyPolicy Replace: a new run replaces it")
			}
		}
		if d.Create != nil && a.run(d.Create.Name) == nil {
			line := strings.Join(batch.CronDecision{Create: d.Create, ScheduledTime: d.ScheduledTime, Missed: d.Missed}.Lines(cj.Name), "; ")
			r := c.createRun(a, d.Create, d.ScheduledTime, line)
			c.applyStep(a, r, batch.Step(r.job, nil, r.status, c.now, c.seed))
		}
		last = d.LastScheduleTime
		a.cronNext = d.Wake
		c.wake(d.Wake)
	}
	var refs []batch.JobRef
	for _, r := range a.liveRuns() {
		refs = append(refs, r.ref())
	}
	var prune []string
	if a.cron != nil {
		prune = batch.History(a.cron, refs)
	} else {
		prune = batch.Orphaned(refs)
	}
	for _, name := range prune {
		if r := a.run(name); r != nil {
			c.deleteRun(a, r, "beyond the history limits")
		}
	}
	a.saveRuns()
	if a.cron == nil && len(a.liveRuns()) == 0 {
		a.state.Cron = nil
		return
	}
	cs := &CronState{LastScheduleTime: last, Since: since}
	for _, r := range a.liveRuns() {
		if _, done := r.status.Finished(); !done {
			cs.Active = append(cs.Active, r.name())
		}
	}
	a.state.Cron = cs
}

// createRun records a new run: a JobRun for the caller to create with
// create-if-absent. The caller steps it in this same plan, so its first pods are
// placed now.
func (c *cluster) createRun(a *app, job *batchv1.Job, tick time.Time, reason string) *jobRun {
	if job.Annotations == nil {
		job.Annotations = map[string]string{}
	}
	job.Annotations[AnnotationApp] = a.key
	job.Namespace = a.ns
	job.CreationTimestamp = metav1.NewTime(c.now)
	r := &jobRun{job: job, created: true}
	a.runs = append(a.runs, r)
	sort.SliceStable(a.runs, func(i, k int) bool { return a.runs[i].name() < a.runs[k].name() })
	c.plan.JobRuns = append(c.plan.JobRuns, JobRun{App: a.key, Job: job, ScheduledTime: tick, Reason: reason})
	return r
}

// applyStep applies one batch decision to the plan: stops, new pods to place,
// the run's status, events, TTL deletion and the wake-up time.
func (c *cluster) applyStep(a *app, r *jobRun, d batch.JobDecision) {
	r.status = d.Status
	for _, s := range d.Stop {
		if p := r.pod(s.Name); p != nil && !p.deleting {
			c.stop(p, fmt.Sprintf("job %s: %s", r.name(), s.Reason))
		}
	}
	for _, e := range d.Events {
		if e.Reason != batch.ReasonTTLExpired {
			c.plan.Events = append(c.plan.Events, Event{App: a.key, Reason: e.Reason, Message: r.name() + ": " + e.Message})
		}
	}
	if d.Delete {
		c.deleteRun(a, r, "ttlSecondsAfterFinished expired")
		if a.kind == KindJob {
			a.state.Expired = append(slices.DeleteFunc(slices.Clone(a.state.Expired), func(n string) bool { return n == r.name() }), r.name())
			if len(a.state.Expired) > maxExpired {
				a.state.Expired = a.state.Expired[len(a.state.Expired)-maxExpired:]
			}
		}
		return
	}
	r.create = d.Create
	c.wake(d.Wake)
}

// deleteRun deletes a run with all its pods, finished or not (and so their logs).
func (c *cluster) deleteRun(a *app, r *jobRun, reason string) {
	if r.deleted {
		return
	}
	r.deleted, r.create = true, nil
	for _, p := range r.pods {
		if !p.deleting {
			c.stop(p, fmt.Sprintf("job %s deleted: %s", r.name(), reason))
		}
	}
	c.plan.DeleteJobs = append(c.plan.DeleteJobs, JobDelete{App: a.key, Namespace: a.ns, Name: r.name(), Reason: reason})
}

// placeRunPods places the pods each run of a wants, through the same pipeline as
// every other pod: one candidate per run (its pods differ only in name, index
// and hostname, which placement does not read).
func (c *cluster) placeRunPods(p *pipeline, a *app) {
	for _, r := range a.runs {
		if len(r.create) == 0 {
			continue
		}
		first := r.create[0]
		a.target = &Revision{Hash: r.name(), Template: &corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: first.Labels, Annotations: first.Annotations}, Spec: first.Spec}}
		a.create = int32(len(r.create))
		cd := c.newCandidate(a)
		cd.runPods = r.create
		r.placed = c.placeCandidate(p, cd, len(r.create))
	}
	a.target, a.create = nil, 0
}

// nextRunPod is newPod for a Job run: the run's next pod, bound to node, with
// gantry.io/app, its priority and creation time set.
func (c *cluster) nextRunPod(cd *candidate, node string) *corev1.Pod {
	pod := cd.runPods[0]
	cd.runPods = cd.runPods[1:]
	a := cd.app
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationApp] = a.key
	pod.Namespace = a.ns
	pod.CreationTimestamp = metav1.NewTime(c.now)
	prio := a.prio
	pod.Spec.Priority = &prio
	pod.Spec.NodeName = node
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending}
	c.names[nsName{a.ns, pod.Name}] = true
	return pod
}

// settleRuns corrects the active count of runs whose pods could not all be
// placed: a pod that was not created is not active.
func (c *cluster) settleRuns(apps []*app) {
	for _, a := range apps {
		changed := false
		for _, r := range a.runs {
			if missing := len(r.create) - r.placed; missing > 0 && !r.deleted {
				r.status.Active -= int32(missing)
				changed = true
			}
		}
		if changed {
			a.saveRuns()
		}
	}
}

func (a *app) pendingRunPods() int {
	n := 0
	for _, r := range a.runs {
		n += len(r.create)
	}
	return n
}

// saveRuns writes the runs' statuses into the app state; deleted runs are
// forgotten, and so are stored statuses of runs the store no longer holds.
func (a *app) saveRuns() {
	var runs map[string]batch.JobStatus
	for _, r := range a.runs {
		if r.deleted {
			continue
		}
		if runs == nil {
			runs = map[string]batch.JobStatus{}
		}
		runs[r.name()] = r.status
	}
	a.state.Runs = runs
}

func (a *app) refs() []batch.JobRef {
	out := make([]batch.JobRef, 0, len(a.runs))
	for _, r := range a.runs {
		out = append(out, r.ref())
	}
	return out
}

func (a *app) run(name string) *jobRun {
	for _, r := range a.runs {
		if r.name() == name {
			return r
		}
	}
	return nil
}

func (r *jobRun) pod(name string) *podRec {
	for _, p := range r.pods {
		if p.name == name {
			return p
		}
	}
	return nil
}

func (r *jobRun) podObjects() []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, p.pod)
	}
	return out
}

// wake keeps the earliest wake-up time after now.
func (c *cluster) wake(t time.Time) {
	if t.IsZero() || !t.After(c.now) {
		return
	}
	if c.plan.Wake.IsZero() || t.Before(c.plan.Wake) {
		c.plan.Wake = t
	}
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// batchStatus is the health of a Job or CronJob app:
//
//	Suspended    spec.suspend, or the object left git (its runs finish, history kept)
//	Degraded     the run of git's Job failed; the CronJob's latest finished run
//	             failed; a bad schedule; pods that fit on no node
//	Progressing  a run is active
//	Healthy      the run of git's Job completed; a CronJob with nothing failing
func (a *app) batchStatus() AppStatus {
	var s AppStatus
	active := 0
	for _, r := range a.runs {
		if _, done := r.status.Finished(); !done && !r.deleted {
			active++
		}
	}
	var problems []string
	if a.invalid != "" {
		problems = append(problems, a.invalid)
	}
	if a.unplaceable > 0 {
		problems = append(problems, fmt.Sprintf("%s unplaceable: %s", describePods(a.unplaceable), a.unplaceWhy))
	}
	switch {
	case a.job != nil:
		r := a.run(a.current)
		if r == nil || r.deleted {
			s.Progress = fmt.Sprintf("run %s finished and was deleted (ttlSecondsAfterFinished)", a.current)
			s.Health = Healthy
			break
		}
		s.Progress = "run " + runProgress(r)
		cond, done := r.status.Finished()
		switch {
		case a.job.Spec.Suspend != nil && *a.job.Spec.Suspend:
			s.Health, s.Message = Suspended, "suspended"
		case cond == batchv1.JobFailed:
			s.Health = Degraded
			problems = append([]string{failedReason(r.status)}, problems...)
		case done:
			s.Health = Healthy
		default:
			s.Health = Progressing
		}
	case a.cron != nil:
		s.Progress = cronProgress(a, active)
		latest := a.latestFinished()
		switch {
		case a.cron.Spec.Suspend != nil && *a.cron.Spec.Suspend:
			s.Health, s.Message = Suspended, "suspended"
		case latest != nil && latest.ref().Result == batch.ResultFailed:
			s.Health = Degraded
			problems = append([]string{fmt.Sprintf("last run %s failed: %s", latest.name(), failedReason(latest.status))}, problems...)
		case active > 0:
			s.Health = Progressing
		default:
			s.Health = Healthy
		}
	default:
		s.Health = Suspended
		s.Message = fmt.Sprintf("left git: no new runs; %d active, %d kept as history", active, len(a.liveRuns())-active)
	}
	if len(problems) > 0 {
		if s.Message != "" {
			problems = append([]string{s.Message}, problems...)
		}
		s.Message = strings.Join(problems, "; ")
		if s.Health != Suspended {
			s.Health = Degraded
		}
	}
	return s
}

func (a *app) liveRuns() []*jobRun {
	var out []*jobRun
	for _, r := range a.runs {
		if !r.deleted {
			out = append(out, r)
		}
	}
	return out
}

// latestFinished is the finished run with the latest tick (or start), or nil.
func (a *app) latestFinished() *jobRun {
	var best *jobRun
	var bestAt time.Time
	for _, r := range a.liveRuns() {
		ref := r.ref()
		if ref.Result == batch.ResultActive {
			continue
		}
		at := ref.ScheduledTime
		if at.IsZero() {
			at = ref.StartTime
		}
		if best == nil || at.After(bestAt) || (at.Equal(bestAt) && r.name() > best.name()) {
			best, bestAt = r, at
		}
	}
	return best
}

// runProgress is e.g. "migrate-1a2b3c4d5e: 3/5 succeeded, 2 active, 0 failed".
func runProgress(r *jobRun) string {
	st := r.status
	done := fmt.Sprint(st.Succeeded)
	if c := r.job.Spec.Completions; c != nil {
		done += fmt.Sprintf("/%d", *c)
	}
	line := fmt.Sprintf("%s: %s succeeded, %d active, %d failed", r.name(), done, st.Active, st.Failed)
	if cond, ok := st.Finished(); ok {
		line += ", " + strings.ToLower(string(cond))
	}
	return line
}

func cronProgress(a *app, active int) string {
	last := "never"
	if a.state.Cron != nil && !a.state.Cron.LastScheduleTime.IsZero() {
		last = a.state.Cron.LastScheduleTime.UTC().Format(time.RFC3339)
	}
	line := fmt.Sprintf("last schedule %s, %d active, %d runs kept", last, active, len(a.liveRuns()))
	if !a.cronNext.IsZero() {
		line += ", next " + a.cronNext.UTC().Format(time.RFC3339)
	}
	return line
}

// failedReason is "<reason>: <message>" of the Failed condition.
func failedReason(st batch.JobStatus) string {
	for _, c := range st.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return c.Reason + ": " + c.Message
		}
	}
	return "unknown"
}

// batchStateEqual compares the Job and CronJob parts of two states by their
// stored (JSON) form, which is what the caller keeps.
func batchStateEqual(s, o AppState) bool {
	if len(s.Runs) != len(o.Runs) || (s.Cron == nil) != (o.Cron == nil) || !slices.Equal(s.Expired, o.Expired) {
		return false
	}
	if len(s.Runs) == 0 && s.Cron == nil {
		return true
	}
	x, err1 := json.Marshal(struct {
		R map[string]batch.JobStatus
		C *CronState
	}{s.Runs, s.Cron})
	y, err2 := json.Marshal(struct {
		R map[string]batch.JobStatus
		C *CronState
	}{o.Runs, o.Cron})
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// batchSummary renders the Job and CronJob parts of a state in one line.
func (s AppState) batchSummary() string {
	var parts []string
	if s.Cron != nil {
		last := "never"
		if !s.Cron.LastScheduleTime.IsZero() {
			last = s.Cron.LastScheduleTime.UTC().Format("15:04:05")
		}
		parts = append(parts, fmt.Sprintf("last schedule %s, active [%s]", last, strings.Join(s.Cron.Active, " ")))
	}
	var runs []string
	for _, name := range sortedKeys(s.Runs) {
		st := s.Runs[name]
		t := fmt.Sprintf("%s %d/%d/%d", name, st.Active, st.Succeeded, st.Failed)
		if cond, ok := st.Finished(); ok {
			t += " " + string(cond)
		}
		runs = append(runs, t)
	}
	parts = append(parts, fmt.Sprintf("runs (active/succeeded/failed) [%s]", strings.Join(runs, ", ")))
	if len(s.Expired) > 0 {
		parts = append(parts, fmt.Sprintf("expired [%s]", strings.Join(s.Expired, " ")))
	}
	return strings.Join(parts, ", ")
}
