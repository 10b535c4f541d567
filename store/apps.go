package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"gantry.io/gantry/api"
	"gantry.io/gantry/planner"
)

// Kinds this file adds. Both are namespaced.
const (
	// KindApp is one app from git (a Deployment, bare Pod, Job or CronJob): the
	// planner's memory of it and its status.
	KindApp api.Kind = "apps"
	// KindJob is one run of a Job or CronJob app (planner.Plan.JobRuns).
	KindJob api.Kind = "jobs"
)

// Health values an app shows beyond the planner's (planner.Healthy, Progressing,
// Degraded, Suspended).
const (
	// Stalled: the newest git revision is invalid and was not applied; the user
	// must fix the manifests. The last good revision keeps running.
	Stalled planner.Health = "Stalled"
	// Waiting: the git source cannot be reached; it is retried with back-off and
	// running apps are untouched.
	Waiting planner.Health = "Waiting"
)

// App is the stored record of one app. Its store name is AppObjectName(kind, name)
// in the app's namespace, so two kinds may share a name.
type App struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// Key is the planner's app key, "<kind>/<namespace>/<name>".
	Key string `json:"key"`
	// State is the planner's memory (planner.AppState), written only by the
	// reconcile loop and by a rollback (Pin).
	State planner.AppState `json:"state"`
	// Status is what `gantry get apps` and `describe app` show.
	Status AppStatus `json:"status"`
}

// AppStatus is an app's status as users see it.
type AppStatus struct {
	// SyncedRevision is the git commit whose desired state the app was last
	// reconciled against.
	SyncedRevision string `json:"syncedRevision,omitempty"`
	// Health is Healthy, Progressing, Degraded, Suspended, Stalled or Waiting.
	Health planner.Health `json:"health,omitempty"`
	// WorkloadHealth is the planner's health of the running workload, whatever
	// the source's state (Health shows Stalled or Waiting over it).
	WorkloadHealth planner.Health `json:"workloadHealth,omitempty"`
	// Revision is the number of the app's target revision (0 if none).
	Revision int64 `json:"revision,omitempty"`
	// Progress is the one-line rollout progress, e.g.
	// "revision 2: 3/3 updated, 2/3 available, 1 old".
	Progress string `json:"progress,omitempty"`
	// Message explains the health (a rollback, a pin, what the app waits for).
	Message string `json:"message,omitempty"`
	// LastError is the last reconcile or source error, with every file:line
	// diagnostic when git's newest revision is invalid; empty when none.
	LastError string `json:"lastError,omitempty"`
	// Diagnostics are the file:line errors of an invalid revision.
	Diagnostics []string `json:"diagnostics,omitempty"`
	// History lists the app's revisions, oldest first, at most
	// revisionHistoryLimit (default 10) plus revisions that still run pods.
	History []AppRevision `json:"history,omitempty"`
	// Updated is when the status last changed.
	Updated metav1.Time `json:"updated,omitempty"`
}

// AppRevision is one entry of an app's history.
type AppRevision struct {
	Number int64  `json:"number"`
	Hash   string `json:"hash"`
	// Images are the container images of the revision, in order.
	Images []string `json:"images,omitempty"`
	// GitRevision is the git commit the revision was first seen in.
	GitRevision string    `json:"gitRevision,omitempty"`
	Created     time.Time `json:"created"`
	Available   time.Time `json:"available,omitempty"`
	// Current marks the app's target revision.
	Current bool `json:"current,omitempty"`
}

// DeepCopyObject implements runtime.Object (a JSON round trip: App is plain data).
func (a *App) DeepCopyObject() runtime.Object {
	if a == nil {
		return nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("store.App is plain data: %v", err)) // cannot happen
	}
	out := &App{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("store.App is plain data: %v", err)) // cannot happen
	}
	return out
}

// AppObjectName is the store name of app name of kind ("deployment", "pod", …):
// "<kind>.<name>", so `deployment.web` and `pod.web` do not collide. Kinds hold
// no dot, so the first dot splits it again (ParseAppObjectName).
func AppObjectName(kind planner.AppKind, name string) string { return string(kind) + "." + name }

// ParseAppObjectName splits a store name made by AppObjectName.
func ParseAppObjectName(obj string) (planner.AppKind, string, bool) {
	k, n, ok := strings.Cut(obj, ".")
	return planner.AppKind(k), n, ok && n != ""
}

// ParseAppKey splits a planner app key "<kind>/<namespace>/<name>".
func ParseAppKey(key string) (kind planner.AppKind, ns, name string, err error) {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("app key %q is not <kind>/<namespace>/<name>: %w", key, api.ErrInvalidArgument)
	}
	return planner.AppKind(parts[0]), parts[1], parts[2], nil
}

// Apps is the typed access to App records.
func (s *Store) Apps() *Resource[App, *App] { return NewResource[App](s, KindApp) }

// Jobs is the typed access to the Job runs of Job and CronJob apps.
func (s *Store) Jobs() *Resource[batchv1.Job, *batchv1.Job] {
	return NewResource[batchv1.Job](s, KindJob)
}
