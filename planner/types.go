package planner

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner/batch"
)

// Input is everything one reconcile decides from. The planner never mutates it.
type Input struct {
	// Desired is the decoded, defaulted desired state of one git revision. Nil means
	// an empty repository: every pod the planner owns is pruned.
	Desired *manifest.Desired
	// Observed are the pods the store holds, with spec.nodeName and status (phase,
	// Ready condition with its lastTransitionTime, container restart counts).
	Observed []*corev1.Pod
	// Nodes are the cluster's nodes: allocatable (or capacity), labels, taints, the
	// Ready condition and spec.unschedulable.
	Nodes []*corev1.Node
	// Apps is the per-app memory kept by the caller between reconciles, keyed by
	// AppKey ("deployment/<ns>/<name>", "pod/<ns>/<name>"). Missing entries are
	// treated as new apps.
	Apps map[string]AppState
	// Now is the logical time of this reconcile. The planner never reads the clock.
	Now time.Time
	// Seed drives the node shuffle and the random pod name suffixes; the same Input
	// with the same Seed gives the same Plan.
	Seed int64
	// Config tunes the planner; the zero value means the documented defaults.
	Config Config
	// ReplicaOverrides replace spec.replicas of the named apps (AppKey → replicas).
	// It is the room for HorizontalPodAutoscaler, which overrides its target's
	// replicas (DESIGN.md); nil means git's replicas everywhere.
	ReplicaOverrides map[string]int32
	// Jobs are the Job runs the store holds: every Job created from an earlier
	// Plan.JobRuns (and manual runs made from a CronJob), as created. A run belongs
	// to the app named by its gantry.io/app annotation, else by its gantry.io/job
	// or gantry.io/cronjob label; runs of neither are ignored. Their status is
	// AppState.Runs of that app.
	Jobs []*batchv1.Job
}

// Scoring selects the resource score of the placement pipeline.
type Scoring string

const (
	// MostAllocated packs pods onto the fullest nodes that fit (bin packing). Default.
	MostAllocated Scoring = "MostAllocated"
	// LeastAllocated spreads load onto the emptiest nodes.
	LeastAllocated Scoring = "LeastAllocated"
)

// Config tunes the planner. Zero fields take the defaults given on each field.
type Config struct {
	// MaxStartsPerNodePerRound caps the pods one plan starts on one node, so a big
	// rollout or a node coming back does not start everything at once. Default 10;
	// negative means no cap.
	MaxStartsPerNodePerRound int
	// Scoring is the resource score. Default MostAllocated.
	Scoring Scoring
	// CrashLoopRestarts is the restart count at which a pod of a rolling-out
	// revision counts as crash-looping and fails the rollout. Default 5.
	CrashLoopRestarts int32
	// NodeLostGrace is how long a node may be NotReady (or Unknown) before its pods
	// are replaced elsewhere. Default 5m (Kubernetes' default eviction toleration).
	NodeLostGrace time.Duration
	// NodesToScore bounds how many feasible nodes are scored per placement, as
	// kube-scheduler's percentageOfNodesToScore does. 0 means adaptive: every node
	// up to 100 nodes, then max(100, 2% of the nodes).
	NodesToScore int
	// PriorityClasses adds to or overrides the built-in priority table
	// (BuiltinPriorities); it is where PriorityClass objects land later.
	PriorityClasses map[string]int32
}

// AppState is what the planner remembers about one app across reconciles. It is
// plain data: the caller stores it (etcd) and passes it back in Input.Apps; Compute
// returns the new value in Plan.Apps whenever it changes.
type AppState struct {
	// Revisions is the revision history, oldest first (trimmed to
	// revisionHistoryLimit, keeping revisions that still have pods).
	Revisions []Revision `json:"revisions,omitempty"`
	// Target is the hash of the revision the app converges to.
	Target string `json:"target,omitempty"`
	// Progress is the last observed progress of the rollout of Target.
	Progress Progress `json:"progress"`
	// Failed is set after a rollout failed and was rolled back (or could not be);
	// the failed revision is not retried until git's template changes.
	Failed *FailedRollout `json:"failed,omitempty"`
	// Pin is a manual rollback (`gantry rollback X --to-revision N`), written by the
	// control plane; it holds until git's template changes or it is removed.
	Pin *Pin `json:"pin,omitempty"`
	// Message is the sticky status line, e.g.
	// "rolled back from 3 to 2: progress deadline exceeded".
	Message string `json:"message,omitempty"`
	// NoPrune records gantry.io/prune: "false" from the last object seen in git, so
	// pods stay running after the object left git.
	NoPrune bool `json:"noPrune,omitempty"`
	// Runs is the status of each run (Job object) of a Job or CronJob app, by run
	// name: the Kubernetes Job status plus the bookkeeping that keeps it
	// level-triggered. The caller copies Runs[name].JobStatus into the stored Job's
	// status for display.
	Runs map[string]batch.JobStatus `json:"runs,omitempty"`
	// Cron is the schedule state of a CronJob app; nil for other kinds.
	Cron *CronState `json:"cron,omitempty"`
	// Expired lists, oldest first, the runs of a Job app deleted by
	// ttlSecondsAfterFinished (at most 10), so an unchanged Job in git is not run
	// again once its finished run is gone.
	Expired []string `json:"expired,omitempty"`
}

// CronState is a CronJob's status as Kubernetes shows it.
type CronState struct {
	// LastScheduleTime is the last tick a run was created for; zero if none.
	LastScheduleTime time.Time `json:"lastScheduleTime"`
	// Active lists, sorted, the CronJob's runs that have not finished.
	Active []string `json:"active,omitempty"`
	// Since is when the planner first saw the CronJob: the anchor of its first
	// tick when it has no lastScheduleTime and its manifest no
	// creationTimestamp (a CronJob from git has none).
	Since time.Time `json:"since,omitempty"`
}

// Revision is one pod template an app has run, keyed by its pod-template hash.
type Revision struct {
	Number int64  `json:"number"`
	Hash   string `json:"hash"`
	// Template is the pod template of the revision, kept so a rollback can recreate
	// its pods after git moved on.
	Template *corev1.PodTemplateSpec `json:"template,omitempty"`
	// Created is when the planner first saw the revision.
	Created time.Time `json:"created"`
	// Available is when the revision first ran fully available (all replicas
	// available, no other revision left); zero if never. Rollbacks go to the newest
	// revision with Available set.
	Available time.Time `json:"available"`
}

// Progress is what the progress deadline measures: the counts of the target
// revision and when they last changed.
type Progress struct {
	Revision  string    `json:"revision,omitempty"`
	Updated   int32     `json:"updated"`
	Available int32     `json:"available"`
	Since     time.Time `json:"since"`
}

// FailedRollout records a rollout that failed.
type FailedRollout struct {
	// Revision is the hash of the revision that failed.
	Revision string `json:"revision"`
	// RollbackTo is the hash the app went back to; empty if there was none.
	RollbackTo string `json:"rollbackTo,omitempty"`
	// Reason is why, e.g. "progress deadline exceeded (600s)".
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Pin holds an app on an earlier revision until git's template moves away from
// GitRevision (the template hash in git when the pin was made).
type Pin struct {
	Revision    string `json:"revision"`
	GitRevision string `json:"gitRevision"`
}

// Plan is the result of Compute: plain data, rendered as text by String. The caller
// applies Preempt and Stop before Place, merges Apps into its store and deletes
// ForgetApps.
type Plan struct {
	// Place lists the pods to create, each with its node.
	Place []Placement
	// Stop lists the pods to stop and delete.
	Stop []Stop
	// Preempt lists lower-priority pods evicted to make room for a pending pod;
	// the pending pod is placed on the nominated node in a later round, once the
	// victims are gone.
	Preempt []Eviction
	// Adopt lists orphan pods that match a workload and become its pods.
	Adopt []Adoption
	// Unplaceable lists pods that fit on no node, with reason counts.
	Unplaceable []Unplaceable
	// Deferred lists pods that fit but wait for a later round (start cap).
	Deferred []Deferred
	// Apps holds the new state of every app whose state changed.
	Apps map[string]AppState
	// ForgetApps lists apps whose state the caller should delete.
	ForgetApps []string
	// Status is the status of every app, changed or not.
	Status map[string]AppStatus
	// Events are the transitions of this reconcile (rollout started, rolled back…).
	Events []Event
	// JobRuns lists the Job objects to create, each with create-if-absent: a run's
	// name derives from the Job's spec hash or the CronJob's tick, so an existing
	// name means the run exists already (a replayed plan) and is success.
	JobRuns []JobRun
	// DeleteJobs lists Job runs to delete (TTL, history limits, concurrencyPolicy
	// Replace). Their pods, finished or not, are in Stop.
	DeleteJobs []JobDelete
	// Wake is when the plan changes without any input changing: the next
	// CronJob tick, the end of a Job back-off, an active deadline, a TTL. The
	// reconcile loop comes back then. Zero for none.
	Wake time.Time
}

// Placement is one pod to create on one node.
type Placement struct {
	App string
	// Pod is the full pod: name, labels (incl. pod-template-hash), owner,
	// spec.nodeName. Pods of one revision share read-only sub-objects (maps,
	// slices): deep-copy a pod before changing it.
	Pod  *corev1.Pod
	Node string
	// Score is the total score of the chosen node; Reason explains the choice.
	Score  int64
	Reason string
}

// Stop is one pod to stop.
type Stop struct {
	App       string
	Namespace string
	Pod       string
	Node      string
	Reason    string
}

// Eviction is one pod preempted for a higher-priority pod.
type Eviction struct {
	Namespace string
	Pod       string
	Node      string
	Priority  int32
	// For names the pending pod's app and its priority.
	For         string
	ForPriority int32
	Reason      string
}

// Adoption is an orphan pod taken over by a workload.
type Adoption struct {
	App       string
	Namespace string
	Pod       string
	// Revision is the hash the pod counts as; its pod-template-hash label when it
	// names a known revision, else empty (an old pod the rollout replaces).
	Revision string
	Reason   string
}

// Unplaceable is a group of identical pods of one app that fit nowhere.
type Unplaceable struct {
	App      string
	Revision string
	Pods     int // how many replicas could not be placed
	// Reason has the shape
	// "0/3 nodes fit: 2 insufficient memory (needs 4Gi, most free 2Gi), 1 untolerated taint dedicated=db:NoSchedule".
	Reason string
}

// Deferred is a group of pods of one app that fit but wait for the next round.
type Deferred struct {
	App    string
	Pods   int
	Reason string
}

// Health is the one-word state of an app.
type Health string

const (
	Healthy     Health = "Healthy"
	Progressing Health = "Progressing"
	Degraded    Health = "Degraded"
	Suspended   Health = "Suspended"
)

// AppStatus is an app's status after this plan's decisions.
type AppStatus struct {
	Health Health
	// Revision is the number of the target revision (0 if none).
	Revision int64
	// Progress is a one-line rollout progress, e.g.
	// "revision 2: 3/3 updated, 2/3 available, 1 old".
	Progress string
	// Message explains Degraded/Suspended, or a rollback.
	Message string
}

// Event is one transition worth telling a user about.
type Event struct {
	App     string
	Reason  string // RolloutStarted, RolloutComplete, RolledBack, RolloutFailed, GitMoved, Pruned, …
	Message string
}

// JobRun is one Job object to create: the run of a Job in git (named
// <job>-<spec hash>) or of a CronJob's tick (named <cronjob>-<unix minutes>).
// Its first pods are in Plan.Place of the same plan.
type JobRun struct {
	App string
	Job *batchv1.Job
	// ScheduledTime is the CronJob tick the run belongs to; zero for a plain Job.
	ScheduledTime time.Time
	Reason        string
}

// JobDelete is one Job run to delete, with its pods and their logs.
type JobDelete struct {
	App       string
	Namespace string
	Name      string
	Reason    string
}

// AppKind is the workload kind of an app. DaemonSet is room for a later issue;
// Compute handles Deployment, Pod, Job and CronJob.
type AppKind string

const (
	KindDeployment AppKind = "deployment"
	KindPod        AppKind = "pod"
	KindJob        AppKind = "job"
	KindCronJob    AppKind = "cronjob"
	KindDaemonSet  AppKind = "daemonset"
)

// AppKey is the key of an app in Input.Apps, Plan.Apps and pod annotations:
// "<kind>/<namespace>/<name>".
func AppKey(kind AppKind, namespace, name string) string {
	return string(kind) + "/" + namespace + "/" + name
}
