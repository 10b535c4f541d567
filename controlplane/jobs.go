package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"gantry.io/gantry/api"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/batch"
	"gantry.io/gantry/store"
)

// AnnotationNextScheduleTime is set on the CronJobs the API returns: the next
// tick (RFC 3339, UTC); absent when suspended or the schedule is invalid.
const AnnotationNextScheduleTime = api.Domain + "/next-schedule-time"

// AnnotationScheduleError is set on a CronJob whose schedule does not parse.
const AnnotationScheduleError = api.Domain + "/schedule-error"

// runStatus is the planner's status of the stored run j: from this plan's new
// app states, else from the stored state (unchanged apps are not in plan.Apps).
func runStatus(plan planner.Plan, states map[string]planner.AppState, j *batchv1.Job) (batchv1.JobStatus, bool) {
	key := j.Annotations[planner.AnnotationApp]
	st, ok := plan.Apps[key]
	if !ok {
		if st, ok = states[key]; !ok {
			return batchv1.JobStatus{}, false
		}
	}
	rs, ok := st.Runs[j.Name]
	return rs.JobStatus, ok
}

// withRunStatus sets a run about to be created to the status the plan gave it,
// so `gantry get jobs` shows its first pods at once.
func withRunStatus(plan planner.Plan, j *batchv1.Job) *batchv1.Job {
	if st, ok := runStatus(plan, nil, j); ok {
		j = j.DeepCopy()
		j.Status = st
	}
	return j
}

// maxRunCreates bounds the Job creates in flight: 1,000 CronJobs due on the same
// minute are 1,000 creates, and etcd commits concurrent ones in shared batches.
const maxRunCreates = 32

// createRuns creates the plan's runs (with their first status), each with
// create-if-absent — an existing run is a replayed plan, which is success — up
// to maxRunCreates at once. Returns the first error.
func (r *Reconciler) createRuns(ctx context.Context, plan planner.Plan) error {
	if len(plan.JobRuns) == 0 {
		return nil
	}
	sem := make(chan struct{}, maxRunCreates)
	errs := make([]error, len(plan.JobRuns))
	var wg sync.WaitGroup
	for i, j := range plan.JobRuns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := r.st.Jobs().Create(ctx, withRunStatus(plan, j.Job)); err != nil && !errors.Is(err, api.ErrAlreadyExists) {
				errs[i] = fmt.Errorf("create job %s/%s: %w", j.Job.Namespace, j.Job.Name, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// writeJobStatuses copies the planner's per-run status (AppState.Runs) into the
// stored Job objects whose status differs, with compare-and-swap on each Job.
// Runs this plan deletes are skipped. A conflict is returned (wrapping
// api.ErrConflict): the caller recomputes.
func (r *Reconciler) writeJobStatuses(ctx context.Context, jobs []*batchv1.Job, plan planner.Plan, states map[string]planner.AppState) error {
	deleted := map[string]bool{}
	for _, d := range plan.DeleteJobs {
		deleted[d.Namespace+"/"+d.Name] = true
	}
	for _, j := range jobs {
		if deleted[j.Namespace+"/"+j.Name] {
			continue
		}
		st, ok := runStatus(plan, states, j)
		if !ok || sameRunStatus(j.Status, st) {
			continue
		}
		next := j.DeepCopy()
		next.Status = st
		if _, err := r.st.Jobs().Update(ctx, next); err != nil {
			if errors.Is(err, api.ErrNotFound) {
				continue
			}
			return fmt.Errorf("write status of job %s/%s: %w", j.Namespace, j.Name, err)
		}
	}
	return nil
}

func sameRunStatus(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// eventName is the store name of the event (object, reason, message): the same
// event for the same object is one stored Event whose count grows, as the
// Kubernetes event recorder aggregates them.
func eventName(kind, ns, name, reason, message string) string {
	h := fnv.New64a()
	for _, s := range []string{kind, ns, name, reason, message} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	base := name
	if len(base) > 200 {
		base = base[:200]
	}
	return fmt.Sprintf("%s.%016x", base, h.Sum64())
}

// warningReasons are the event reasons shown as Warning besides those that
// contain "Fail" or "RolledBack".
var warningReasons = map[string]bool{
	batch.ReasonBackoffLimitExceeded: true, batch.ReasonDeadlineExceeded: true, batch.ReasonMissSchedule: true,
	batch.ReasonTooManyMissedTimes: true, batch.ReasonUnparseableSchedule: true,
}

// recordDeduped stores e, or, when the same event (same name, see eventName) is
// stored already, raises its count and lastTimestamp. Errors are logged.
func (r *Reconciler) recordDeduped(ctx context.Context, e *corev1.Event, now time.Time) {
	_, err := r.st.Events().Create(ctx, e)
	if errors.Is(err, api.ErrAlreadyExists) {
		_, err = r.st.Events().GuaranteedUpdate(ctx, e.Namespace, e.Name, func(old *corev1.Event) error {
			old.Count++
			old.LastTimestamp = metav1.NewTime(now)
			return nil
		})
	}
	if err != nil {
		r.opts.logger.Warn("record event", "object", e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name, "reason", e.Reason, "err", err)
	}
}

// desiredCronJobs returns the CronJobs of the applied git revision in ns ("" for
// all), sorted by namespace and name. They are shared: do not modify.
func (r *Reconciler) desiredCronJobs(ns string) []*batchv1.CronJob {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.good == nil {
		return nil
	}
	var out []*batchv1.CronJob
	for _, cj := range r.good.desired.CronJobs {
		if ns == "" || nsOr(cj.Namespace) == ns {
			out = append(out, cj)
		}
	}
	sort.Slice(out, func(i, k int) bool {
		if a, b := nsOr(out[i].Namespace), nsOr(out[k].Namespace); a != b {
			return a < b
		}
		return out[i].Name < out[k].Name
	})
	return out
}

// CronJobs returns the CronJobs of the applied git revision in ns ("" for all
// namespaces), each with its status as Kubernetes shows it (active runs,
// lastScheduleTime, lastSuccessfulTime) and the annotation
// AnnotationNextScheduleTime. Before the first valid revision the list is empty.
func (r *Reconciler) CronJobs(ctx context.Context, ns string) ([]*batchv1.CronJob, error) {
	list := r.desiredCronJobs(ns)
	if len(list) == 0 {
		return nil, nil
	}
	apps, err := r.st.Apps().List(ctx, ns, store.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	states := map[string]planner.AppState{}
	for _, a := range apps.Items {
		states[a.Key] = a.State
	}
	now := r.opts.now()
	out := make([]*batchv1.CronJob, 0, len(list))
	for _, cj := range list {
		out = append(out, cronJobView(cj, states[planner.AppKey(planner.KindCronJob, nsOr(cj.Namespace), cj.Name)], now))
	}
	return out, nil
}

// CronJob returns one CronJob of the applied git revision with its status (see
// CronJobs). Returns api.ErrNotFound if git has no such CronJob.
func (r *Reconciler) CronJob(ctx context.Context, ns, name string) (*batchv1.CronJob, error) {
	ns = nsOr(ns)
	for _, cj := range r.desiredCronJobs(ns) {
		if cj.Name != name {
			continue
		}
		var st planner.AppState
		a, err := r.st.Apps().Get(ctx, ns, store.AppObjectName(planner.KindCronJob, name))
		switch {
		case err == nil:
			st = a.State
		case !errors.Is(err, api.ErrNotFound):
			return nil, fmt.Errorf("cronjob %s/%s: %w", ns, name, err)
		}
		return cronJobView(cj, st, r.opts.now()), nil
	}
	return nil, fmt.Errorf("cronjob %q in namespace %q is not in the applied git revision: %w", name, ns, api.ErrNotFound)
}

// cronJobView is a copy of cj with the status the planner keeps for it.
func cronJobView(cj *batchv1.CronJob, st planner.AppState, now time.Time) *batchv1.CronJob {
	out := cj.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}
	out.Namespace = nsOr(out.Namespace)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	if c := st.Cron; c != nil {
		if !c.LastScheduleTime.IsZero() {
			t := metav1.NewTime(c.LastScheduleTime)
			out.Status.LastScheduleTime = &t
		}
		for _, name := range c.Active {
			out.Status.Active = append(out.Status.Active, corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job", Namespace: out.Namespace, Name: name})
		}
	}
	for _, rs := range st.Runs {
		if cond, ok := rs.Finished(); ok && cond == batchv1.JobComplete && rs.CompletionTime != nil {
			if out.Status.LastSuccessfulTime == nil || rs.CompletionTime.After(out.Status.LastSuccessfulTime.Time) {
				t := *rs.CompletionTime
				out.Status.LastSuccessfulTime = &t
			}
		}
	}
	sched, err := batch.ParseSchedule(cj)
	switch {
	case err != nil:
		out.Annotations[AnnotationScheduleError] = err.Error()
	case cj.Spec.Suspend == nil || !*cj.Spec.Suspend:
		if next := sched.Next(now.In(sched.Location)); !next.IsZero() {
			out.Annotations[AnnotationNextScheduleTime] = next.UTC().Format(time.RFC3339)
		}
	}
	return out
}

// RunCronJob makes a Job named name from CronJob cronJob's jobTemplate now (`gantry
// create job NAME --from cronjob/X`), as kubectl does: annotated
// cronjob.kubernetes.io/instantiate=manual and owned by the CronJob, so it counts
// as an active run for concurrencyPolicy and as history, and does not change
// lastScheduleTime. It is created with create-if-absent. Returns
// api.ErrNotFound if git has no such CronJob, api.ErrAlreadyExists if a Job named
// name exists, api.ErrInvalidArgument for a bad name.
func (r *Reconciler) RunCronJob(ctx context.Context, ns, cronJob, name string) (*batchv1.Job, error) {
	ns = nsOr(ns)
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return nil, fmt.Errorf("job name %q: %s: %w", name, strings.Join(errs, "; "), api.ErrInvalidArgument)
	}
	var cj *batchv1.CronJob
	for _, c := range r.desiredCronJobs(ns) {
		if c.Name == cronJob {
			cj = c
		}
	}
	if cj == nil {
		return nil, fmt.Errorf("cronjob %q in namespace %q is not in the applied git revision: %w", cronJob, ns, api.ErrNotFound)
	}
	j := batch.FromCronJob(cj, name)
	j.Namespace = ns
	j.Annotations[planner.AnnotationApp] = planner.AppKey(planner.KindCronJob, ns, cj.Name)
	j.CreationTimestamp = metav1.NewTime(r.opts.now())
	out, err := r.st.Jobs().Create(ctx, j)
	if errors.Is(err, api.ErrAlreadyExists) {
		return nil, fmt.Errorf("job %q already exists in namespace %q: choose another name: %w", name, ns, api.ErrAlreadyExists)
	}
	if err != nil {
		return nil, fmt.Errorf("create job %s/%s from cronjob %s: %w", ns, name, cronJob, err)
	}
	r.Kick()
	out.TypeMeta = metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"}
	return out, nil
}
