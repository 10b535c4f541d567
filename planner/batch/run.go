package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"

	"gantry.io/gantry/api"
)

// Keys set on the runs of a plain Job (NewRun).
const (
	// LabelJob names the Job in git that a run belongs to.
	LabelJob = api.Domain + "/job"
	// AnnotationSpecHash is the run's SpecHash.
	AnnotationSpecHash = api.Domain + "/spec-hash"
)

// SpecHash is the identity of a Job's spec: the first 10 hex digits of the SHA-256
// of its JSON encoding, leaving out the fields Kubernetes lets a running Job change
// (suspend, parallelism, activeDeadlineSeconds, ttlSecondsAfterFinished) and the
// generated selector. Equal specs give equal hashes; a change of anything else in
// the spec (template, completions, completionMode, backoffLimit…) gives a new one.
func SpecHash(job *batchv1.Job) string {
	s := job.Spec.DeepCopy()
	s.Suspend, s.Parallelism, s.ActiveDeadlineSeconds, s.TTLSecondsAfterFinished = nil, nil, nil, nil
	s.Selector, s.ManualSelector = nil, nil
	b, err := json.Marshal(s)
	if err != nil {
		// A JobSpec always marshals; hash nothing rather than panic.
		b = nil
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10]
}

// RunName is the name of the run of the Job in git: "<job>-<SpecHash>", the job
// part cut to 52 characters so the whole is a valid label value (63).
func RunName(job *batchv1.Job) string {
	name := job.Name
	if len(name) > 52 {
		name = name[:52]
	}
	return name + "-" + SpecHash(job)
}

// NewRun returns the run of the Job in git: a deep copy named RunName(job), with
// label LabelJob naming the Job and annotation AnnotationSpecHash. Step takes it.
func NewRun(job *batchv1.Job) *batchv1.Job {
	run := job.DeepCopy()
	hash := SpecHash(job)
	run.Name = RunName(job)
	if run.Labels == nil {
		run.Labels = map[string]string{}
	}
	run.Labels[LabelJob] = job.Name
	if run.Annotations == nil {
		run.Annotations = map[string]string{}
	}
	run.Annotations[AnnotationSpecHash] = hash
	run.ResourceVersion, run.UID = "", ""
	return run
}

// RunsDecision is what a Job in git does to its runs.
type RunsDecision struct {
	// Run is NewRun(desired): the run that should exist.
	Run *batchv1.Job
	// Create is true when no observed run has Run's name; the caller creates Run
	// with create-if-absent.
	Create bool
	// Supersede lists older runs still active: the caller applies Supersede to each
	// (stops their pods, marks them Failed with reason Superseded; history kept).
	Supersede []string
	// Delete lists finished older runs beyond the default history limits (3
	// succeeded, 1 failed), oldest first: delete them with their pods.
	Delete []string
	// Plan is the line `gantry plan` prints, or "" when nothing changes, e.g.
	// "job migrate: spec changed → new run migrate-1a2b3c4d5e (stops active run migrate-0f0f0f0f0f)".
	Plan string
}

// JobRuns decides the runs of the Job desired (from git) given its observed runs
// (every stored Job labelled LabelJob=desired.Name in its namespace). A Job is
// immutable, so a changed spec is a new run: the run named RunName(desired) is
// created if absent, older active runs are superseded and older finished runs
// are kept within the default history limits. A spec that goes back to an
// earlier run's hash reuses that run (it does not run again) while that run is
// still in history.
func JobRuns(desired *batchv1.Job, observed []JobRef) RunsDecision {
	d := RunsDecision{Run: NewRun(desired)}
	name := d.Run.Name
	var older []JobRef
	exists := false
	for _, r := range observed {
		if r.Name == name {
			exists = true
			continue
		}
		older = append(older, r)
		if r.Result == ResultActive {
			d.Supersede = append(d.Supersede, r.Name)
		}
	}
	d.Create = !exists
	d.Delete = PruneHistory(older, DefaultSuccessfulJobsHistoryLimit, DefaultFailedJobsHistoryLimit)
	switch {
	case d.Create && len(older) == 0:
		d.Plan = fmt.Sprintf("job %s: new run %s", desired.Name, name)
	case d.Create:
		d.Plan = fmt.Sprintf("job %s: spec changed → new run %s", desired.Name, name)
	case len(d.Supersede) > 0:
		d.Plan = fmt.Sprintf("job %s: spec matches earlier run %s, which is kept (no new run)", desired.Name, name)
	}
	if len(d.Supersede) > 0 {
		d.Plan += fmt.Sprintf(" (stops active run %s)", joinNames(d.Supersede))
	}
	return d
}

// Orphaned returns the runs to delete of a Job or CronJob removed from git: no
// new run starts, active runs finish, and finished runs are kept within the
// default history limits (3 succeeded, 1 failed), since the removed spec's own
// limits are gone.
func Orphaned(runs []JobRef) []string {
	return PruneHistory(runs, DefaultSuccessfulJobsHistoryLimit, DefaultFailedJobsHistoryLimit)
}

func joinNames(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
