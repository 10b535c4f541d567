package diff

import "gantry.io/gantry/manifest"

// Action is what happens to one object.
type Action string

const (
	// Created: the object is in head only.
	Created Action = "created"
	// Changed: the object is in both and differs, or a ConfigMap or Secret it uses
	// changed so its pods roll (Fields is empty then and Rollout.Cause says why).
	Changed Action = "changed"
	// Deleted: the object is in base only.
	Deleted Action = "deleted"
)

// Changes is the result of Compare: every object that is created, changed or
// deleted, in a stable order (kind order of KindOrder, then namespace, then name).
// An empty Objects means the two revisions are equivalent.
type Changes struct {
	Objects []ObjectChange `json:"objects"`
}

// Empty reports whether nothing changes.
func (c Changes) Empty() bool { return len(c.Objects) == 0 }

// Count returns how many objects are created, changed and deleted.
func (c Changes) Count() (created, changed, deleted int) {
	for _, o := range c.Objects {
		switch o.Action {
		case Created:
			created++
		case Changed:
			changed++
		case Deleted:
			deleted++
		}
	}
	return created, changed, deleted
}

// ObjectChange is one object's change.
type ObjectChange struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    Action `json:"action"`
	// Source is where the object is defined: in head, or in base for a deleted one.
	Source manifest.Position `json:"source"`
	// Fields is the field-level diff of a changed object, in path order (head's
	// list order for lists matched by key). Empty for created and deleted objects.
	Fields []FieldChange `json:"fields,omitempty"`
	// Rollout is what a workload's change does to its pods; nil for other kinds.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Notes are further consequences in one line each, e.g. "rolls deployment web"
	// for a ConfigMap, "new run migrate-3f9a0c1b2d" for a Job, or the keys of a
	// created Secret.
	Notes []string `json:"notes,omitempty"`
}

// Ref is "kind namespace/name" (or "kind name" for cluster-scoped kinds), with the
// kind in lower case: "deployment default/web".
func (o ObjectChange) Ref() string { return refOf(o.Kind, o.Namespace, o.Name) }

// Op is the kind of a field change.
type Op string

const (
	// OpAdd: the field is set in head only.
	OpAdd Op = "add"
	// OpRemove: the field is set in base only.
	OpRemove Op = "remove"
	// OpChange: the field is set in both with different values.
	OpChange Op = "change"
)

// FieldChange is one changed field. Path uses dots for fields, ["key"] for map keys
// that are not plain identifiers, [name] for list elements matched by a key field
// (containers, ports, env, volumes… by name; ports without names by port number;
// volume mounts by mountPath) and [i] for other lists of the same length. Old and
// New are rendered values: scalars as they are (strings quoted only when empty or
// not on one line), objects and lists as compact JSON with sorted keys, secret
// values as "(secret sha256:…)". Old is empty for OpAdd, New for OpRemove.
type FieldChange struct {
	Path string `json:"path"`
	Op   Op     `json:"op"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// String renders the change in one line: "path: old → new", with "(unset)" for a
// missing side.
func (f FieldChange) String() string {
	oldV, newV := f.Old, f.New
	if f.Op == OpAdd {
		oldV = "(unset)"
	}
	if f.Op == OpRemove {
		newV = "(unset)"
	}
	return f.Path + ": " + oldV + " → " + newV
}

// Rollout is what a workload change does to the workload's pods.
type Rollout struct {
	// Strategy is RollingUpdate or Recreate for a Deployment, Replace for a bare
	// Pod (stopped, then started again: pods are immutable), Run for a Job and
	// Schedule for a CronJob.
	Strategy string `json:"strategy"`
	// TemplateChanged says the pod template changed, so the pod-template hash
	// (planner.TemplateHash) moves from OldHash to NewHash and the pods are
	// replaced. For a Job, the hashes are batch.SpecHash of the old and new spec.
	TemplateChanged bool   `json:"templateChanged"`
	OldHash         string `json:"oldHash,omitempty"`
	NewHash         string `json:"newHash,omitempty"`
	// Cause lists what else rolls the pods although the template did not change:
	// a ConfigMap, Secret or ExternalSecret the pods use ("configmap app-config").
	Cause []string `json:"cause,omitempty"`
	// OldReplicas and Replicas are spec.replicas of base and head (Deployments).
	OldReplicas int32 `json:"oldReplicas,omitempty"`
	Replicas    int32 `json:"replicas,omitempty"`
	// MaxSurge and MaxUnavailable are the RollingUpdate budget resolved against
	// head's replicas (surge rounds up, unavailable down, as Kubernetes does).
	MaxSurge       int32 `json:"maxSurge,omitempty"`
	MaxUnavailable int32 `json:"maxUnavailable,omitempty"`
	// Summary is the one-line description, e.g.
	// "web: 3 pods replaced, 1 at a time, surge 1" or "web: scale 2 → 5".
	Summary string `json:"summary"`
}
