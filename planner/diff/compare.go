package diff

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// KindOrder is the order objects are listed in: what others depend on first.
// Kinds not listed follow, alphabetically.
var KindOrder = []string{
	"Namespace", "ConfigMap", "Secret", "SecretStore", "ClusterSecretStore", "ExternalSecret",
	"Service", "Deployment", "Pod", "Job", "CronJob",
}

type objKey struct{ kind, namespace, name string }

func index(d *manifest.Desired) map[objKey]manifest.Object {
	out := map[objKey]manifest.Object{}
	if d == nil {
		return out
	}
	for _, o := range d.Objects {
		k := objKey{o.Kind, o.Namespace, o.Name}
		if _, dup := out[k]; !dup {
			out[k] = o
		}
	}
	return out
}

func kindRank(kind string) int {
	for i, k := range KindOrder {
		if k == kind {
			return i
		}
	}
	return len(KindOrder)
}

func refOf(kind, namespace, name string) string {
	if namespace == "" {
		return strings.ToLower(kind) + " " + name
	}
	return strings.ToLower(kind) + " " + namespace + "/" + name
}

// Compare returns what changes from base to head, per object identified by
// (kind, namespace, name). Either side may be nil (an empty repository). Objects
// that are equal after decoding and defaulting are left out, so reformatting YAML
// or spelling out a default changes nothing. For workloads it adds the rollout:
// a Deployment's pod-template hash and pods replaced (RollingUpdate budget or
// Recreate), scale changes, a bare Pod's replacement, a Job's new run, a CronJob's
// next runs. A ConfigMap or Secret whose content changes rolls the Deployments and
// Pods that use it; they are listed as changed with the source in Rollout.Cause,
// and the source's Notes name them. Secret values never appear (see redact).
func Compare(base, head *manifest.Desired) Changes {
	b, h := index(base), index(head)
	keys := make([]objKey, 0, len(b)+len(h))
	for k := range b {
		keys = append(keys, k)
	}
	for k := range h {
		if _, ok := b[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		if rx, ry := kindRank(x.kind), kindRank(y.kind); rx != ry {
			return rx < ry
		}
		if x.kind != y.kind {
			return x.kind < y.kind
		}
		if x.namespace != y.namespace {
			return x.namespace < y.namespace
		}
		return x.name < y.name
	})

	changedCfg := changedConfig(configSources(base), configSources(head))
	rolledBy := map[configKey][]string{}
	changes := Changes{Objects: []ObjectChange{}}
	for _, k := range keys {
		bo, inB := b[k]
		ho, inH := h[k]
		oc := ObjectChange{Kind: k.kind, Namespace: k.namespace, Name: k.name}
		switch {
		case !inB:
			oc.Action, oc.Source = Created, ho.Source
		case !inH:
			oc.Action, oc.Source = Deleted, bo.Source
		default:
			oc.Source = ho.Source
			oc.Fields = diffObjects(k.kind, bo.Typed, ho.Typed)
			if len(oc.Fields) > 0 {
				oc.Action = Changed
			}
		}
		var causes []string
		if inB && inH {
			if spec := podSpecOf(ho.Typed); spec != nil {
				for _, ref := range podConfigRefs(k.namespace, spec) {
					if _, ok := changedCfg[ref]; ok {
						causes = append(causes, ref.String())
						rolledBy[ref] = append(rolledBy[ref], oc.Ref())
					}
				}
			}
		}
		if inB && inH && len(oc.Fields) == 0 && len(causes) == 0 {
			continue
		}
		oc.Rollout, oc.Notes = effects(bo.Typed, ho.Typed, causes)
		if oc.Action == "" {
			if oc.Rollout == nil {
				continue
			}
			oc.Action = Changed
		}
		changes.Objects = append(changes.Objects, oc)
	}
	for i := range changes.Objects {
		oc := &changes.Objects[i]
		if oc.Action == Created {
			oc.Notes = append(oc.Notes, createdNotes(h[objKey{oc.Kind, oc.Namespace, oc.Name}].Typed)...)
		}
		ck, ok := configKeyOf(oc.Kind, oc.Namespace, oc.Name, b, h)
		if !ok {
			continue
		}
		if src, ok := changedCfg[ck]; ok && contains(src.defined, oc.Ref()) {
			if users := rolledBy[ck]; len(users) > 0 {
				oc.Notes = append(oc.Notes, "rolls "+strings.Join(users, ", "))
			} else if oc.Action == Changed {
				oc.Notes = append(oc.Notes, "used by no Deployment or Pod: no pod restarts")
			}
		} else if oc.Kind == "ExternalSecret" && oc.Action == Changed {
			if e, ok := h[objKey{oc.Kind, oc.Namespace, oc.Name}].Typed.(*manifest.ExternalSecret); ok &&
				e.Annotations[api.AnnotationRestartOnChange] == "false" {
				oc.Notes = append(oc.Notes, fmt.Sprintf("pods using %s are not restarted (%s: \"false\"): secret files are updated in place",
					ck, api.AnnotationRestartOnChange))
			}
		}
	}
	return changes
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// configKeyOf is the configuration source an object defines, if any.
func configKeyOf(kind, namespace, name string, b, h map[objKey]manifest.Object) (configKey, bool) {
	switch kind {
	case "ConfigMap":
		return configKey{"configmap", namespace, name}, true
	case "Secret":
		return configKey{"secret", namespace, name}, true
	case "ExternalSecret":
		o, ok := h[objKey{kind, namespace, name}]
		if !ok {
			o = b[objKey{kind, namespace, name}]
		}
		if e, ok := o.Typed.(*manifest.ExternalSecret); ok {
			target := e.Spec.Target.Name
			if target == "" {
				target = e.Name
			}
			return configKey{"secret", namespace, target}, true
		}
	}
	return configKey{}, false
}

// diffObjects is the field diff of two versions of one object, secrets redacted.
func diffObjects(kind string, base, head any) []FieldChange {
	bg, err := generic(base)
	if err != nil {
		return []FieldChange{{Path: "(object)", Op: OpChange, Old: "(cannot encode)", New: "(cannot encode)"}}
	}
	hg, err := generic(head)
	if err != nil {
		return []FieldChange{{Path: "(object)", Op: OpChange, Old: "(cannot encode)", New: "(cannot encode)"}}
	}
	redact(kind, bg)
	redact(kind, hg)
	var out []FieldChange
	diffValues("", bg, hg, &out)
	return out
}

func podSpecOf(obj any) *corev1.PodSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec
	case *corev1.Pod:
		return &o.Spec
	}
	return nil
}

// effects is the rollout of a workload change and other consequences; base or
// head is nil when the object is created or deleted.
func effects(base, head any, causes []string) (*Rollout, []string) {
	switch h := head.(type) {
	case *appsv1.Deployment:
		b, _ := base.(*appsv1.Deployment)
		return deploymentRollout(b, h, causes), nil
	case *corev1.Pod:
		b, _ := base.(*corev1.Pod)
		return podRollout(b, h, causes), nil
	case *batchv1.Job:
		b, _ := base.(*batchv1.Job)
		return jobRollout(b, h), nil
	case *batchv1.CronJob:
		b, _ := base.(*batchv1.CronJob)
		return cronJobRollout(b, h), nil
	case nil:
		switch b := base.(type) {
		case *appsv1.Deployment:
			return deploymentRollout(b, nil, nil), nil
		case *corev1.Pod:
			return podRollout(b, nil, nil), nil
		case *batchv1.Job:
			return jobRollout(b, nil), nil
		case *batchv1.CronJob:
			return cronJobRollout(b, nil), nil
		}
	}
	return nil, nil
}

// createdNotes summarises a created object in a line or two: the keys of a
// ConfigMap, Secret (never values) or ExternalSecret, the images of a workload.
func createdNotes(obj any) []string {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		keys := append(sortedKeys(o.Data), sortedKeys(o.BinaryData)...)
		sort.Strings(keys)
		return []string{"keys: " + orNone(keys)}
	case *corev1.Secret:
		keys := map[string]bool{}
		for k := range o.Data {
			keys[k] = true
		}
		for k := range o.StringData {
			keys[k] = true
		}
		return []string{"keys: " + orNone(sortedKeys(keys)) + " (values not shown)"}
	case *manifest.ExternalSecret:
		var keys []string
		for _, d := range o.Spec.Data {
			keys = append(keys, fmt.Sprintf("%s ← %s", d.SecretKey, remote(d.RemoteRef)))
		}
		for _, d := range o.Spec.DataFrom {
			if d.Extract != nil {
				keys = append(keys, "every property of "+remote(*d.Extract))
			}
		}
		return []string{fmt.Sprintf("keys from %s %s: %s", strings.ToLower(orDefault(o.Spec.SecretStoreRef.Kind, "SecretStore")),
			o.Spec.SecretStoreRef.Name, orNone(keys))}
	case *appsv1.Deployment:
		return []string{"images: " + images(&o.Spec.Template.Spec)}
	case *corev1.Pod:
		return []string{"images: " + images(&o.Spec)}
	case *batchv1.Job:
		return []string{"images: " + images(&o.Spec.Template.Spec)}
	case *batchv1.CronJob:
		return []string{"images: " + images(&o.Spec.JobTemplate.Spec.Template.Spec)}
	}
	return nil
}

func remote(r manifest.RemoteReference) string {
	s := r.Key
	if r.Property != "" {
		s += "#" + r.Property
	}
	if r.Version != "" {
		s += "@" + r.Version
	}
	return s
}

func images(spec *corev1.PodSpec) string {
	var out []string
	for _, c := range spec.InitContainers {
		out = append(out, c.Name+"="+c.Image+" (init)")
	}
	for _, c := range spec.Containers {
		out = append(out, c.Name+"="+c.Image)
	}
	return orNone(out)
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "(none)"
	}
	return strings.Join(list, ", ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
