package batch

import (
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
)

// Keys set on the Jobs a CronJob creates.
const (
	// LabelCronJob names the CronJob that created a Job (gantry's label, so
	// `gantry get jobs` can group runs; Kubernetes relies on ownerReferences only).
	LabelCronJob = api.Domain + "/cronjob"
	// AnnotationScheduledTimestamp is the tick a Job belongs to, RFC 3339 in the
	// schedule's zone — the annotation Kubernetes sets.
	AnnotationScheduledTimestamp = "batch.kubernetes.io/cronjob-scheduled-timestamp"
	// AnnotationInstantiate is "manual" on a Job made by `gantry create job --from
	// cronjob/X`, as kubectl marks it.
	AnnotationInstantiate = "cronjob.kubernetes.io/instantiate"
)

// JobName is the name of the run of CronJob cronJob for the tick at scheduled:
// "<cronjob>-<minutes since the Unix epoch>", as Kubernetes names it. One tick,
// one name: creating it with create-if-absent runs the tick at most once.
func JobName(cronJob string, scheduled time.Time) string {
	return cronJob + "-" + strconv.FormatInt(scheduled.Unix()/60, 10)
}

// FromCronJob builds the Job of `gantry create job name --from cronjob/X` (run
// now): the Job of JobFor, named name, without the scheduled-time annotation and
// with AnnotationInstantiate "manual". It is owned by the CronJob, so it counts
// as an active run for concurrencyPolicy and as history, as in Kubernetes; it does
// not change lastScheduleTime.
func FromCronJob(cj *batchv1.CronJob, name string) *batchv1.Job {
	j := JobFor(cj, time.Time{}, time.UTC)
	j.Name = name
	delete(j.Annotations, AnnotationScheduledTimestamp)
	j.Annotations[AnnotationInstantiate] = "manual"
	return j
}

// JobFor builds the Job that CronJob cj runs for the tick at scheduled, from
// spec.jobTemplate (deep-copied): named JobName(cj.Name, scheduled), in cj's
// namespace, with the template's labels plus LabelCronJob, the template's
// annotations plus AnnotationScheduledTimestamp (in loc; UTC when loc is nil), and
// a controller ownerReference to the CronJob. The returned Job shares nothing with cj.
func JobFor(cj *batchv1.CronJob, scheduled time.Time, loc *time.Location) *batchv1.Job {
	if loc == nil {
		loc = time.UTC
	}
	tmpl := cj.Spec.JobTemplate.DeepCopy()
	labels := map[string]string{}
	for k, v := range tmpl.Labels {
		labels[k] = v
	}
	labels[LabelCronJob] = cj.Name
	annotations := map[string]string{}
	for k, v := range tmpl.Annotations {
		annotations[k] = v
	}
	annotations[AnnotationScheduledTimestamp] = scheduled.In(loc).Format(time.RFC3339)
	yes := true
	return &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        JobName(cj.Name, scheduled),
			Namespace:   cj.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         "batch/v1",
				Kind:               "CronJob",
				Name:               cj.Name,
				UID:                cj.UID,
				Controller:         &yes,
				BlockOwnerDeletion: &yes,
			}},
		},
		Spec: tmpl.Spec,
	}
}
