package diff

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// configKey names a source of a pod's configuration: a ConfigMap or a Secret (a
// plain Secret, or the target of an ExternalSecret) in a namespace.
type configKey struct {
	kind      string // "configmap" or "secret"
	namespace string
	name      string
}

func (k configKey) String() string { return k.kind + " " + k.name }

// configSource is what a pod revision sees of one source (its content hash) and
// which objects of the repository define it.
type configSource struct {
	hash string
	// noRestart: an ExternalSecret with gantry.io/restart-on-change "false" updates
	// files in place rather than rolling the pods.
	noRestart bool
	// defined lists the objects defining the source ("configmap default/app-config").
	defined []string
}

// configSources fingerprints every ConfigMap and Secret a pod could use: issue #6
// makes a hash of the resolved configuration part of the pod revision, so a change
// of that content rolls the workloads that use it.
func configSources(d *manifest.Desired) map[configKey]configSource {
	out := map[configKey]configSource{}
	if d == nil {
		return out
	}
	add := func(k configKey, v any, noRestart bool, def string) {
		b, err := json.Marshal(v)
		if err != nil {
			b = nil
		}
		sum := sha256.Sum256(b)
		s := out[k]
		s.hash += hex.EncodeToString(sum[:8])
		s.noRestart = s.noRestart || noRestart
		s.defined = append(s.defined, def)
		out[k] = s
	}
	for _, c := range d.ConfigMaps {
		add(configKey{"configmap", c.Namespace, c.Name}, []any{c.Data, c.BinaryData}, false,
			refOf("ConfigMap", c.Namespace, c.Name))
	}
	for _, s := range d.Secrets {
		add(configKey{"secret", s.Namespace, s.Name}, []any{s.Data, s.StringData}, false,
			refOf("Secret", s.Namespace, s.Name))
	}
	for _, e := range d.ExternalSecrets {
		target := e.Spec.Target.Name
		if target == "" {
			target = e.Name
		}
		add(configKey{"secret", e.Namespace, target}, e.Spec, e.Annotations[api.AnnotationRestartOnChange] == "false",
			refOf("ExternalSecret", e.Namespace, e.Name))
	}
	return out
}

// podConfigRefs lists the ConfigMaps and Secrets a pod spec in namespace uses:
// env valueFrom, envFrom, configMap and secret volumes, projected volumes.
func podConfigRefs(namespace string, spec *corev1.PodSpec) []configKey {
	seen := map[configKey]bool{}
	var out []configKey
	add := func(kind, name string) {
		k := configKey{kind, namespace, name}
		if name == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, k)
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				add("configmap", r.Name)
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				add("secret", r.Name)
			}
		}
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add("configmap", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				add("secret", e.SecretRef.Name)
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add("configmap", v.ConfigMap.Name)
		}
		if v.Secret != nil {
			add("secret", v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add("configmap", s.ConfigMap.Name)
				}
				if s.Secret != nil {
					add("secret", s.Secret.Name)
				}
			}
		}
	}
	return out
}

// changedConfig returns the sources whose content differs between base and head
// (a source absent on one side counts as changed), leaving out the ones whose
// head definition asks not to restart pods.
func changedConfig(base, head map[configKey]configSource) map[configKey]configSource {
	out := map[configKey]configSource{}
	for k, h := range head {
		if b, ok := base[k]; (!ok || b.hash != h.hash) && !h.noRestart {
			out[k] = h
		}
	}
	for k, b := range base {
		if _, ok := head[k]; !ok {
			out[k] = b
		}
	}
	return out
}
