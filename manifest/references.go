package manifest

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Checks that need the whole tree: duplicates, references between objects, and
// Services against the workloads they select. Objects whose own decoding failed
// still count as defined, so one mistake is reported once.

type objKey struct{ kind, namespace, name string }

// keySet is the keys of a ConfigMap or Secret; nil means "unknown" (an ExternalSecret
// with dataFrom), which satisfies any key.
type keySet map[string]bool

type treeIndex struct {
	configMaps map[objKey]keySet
	secrets    map[objKey]keySet
	stores     map[objKey]bool
}

func checkTree(entries []*entry, o *options) {
	ix := treeIndex{configMaps: map[objKey]keySet{}, secrets: map[objKey]keySet{}, stores: map[objKey]bool{}}
	first := map[objKey]*entry{}
	secretOwner := map[objKey]*entry{}
	for _, e := range entries {
		if e.obj == nil || e.meta.Name == "" {
			continue
		}
		k := objKey{e.info.kind, e.meta.Namespace, e.meta.Name}
		if prev := first[k]; prev != nil {
			p := prev.doc.find("metadata.name")
			e.addDiag(Diagnostic{Pos: e.doc.find("metadata.name"), Severity: Error, Message: fmt.Sprintf(
				"duplicate %s %q: first defined at %s:%d:%d", k.kind, qualified(k), p.File, p.Line, p.Col)})
			continue
		}
		first[k] = e
		switch obj := e.obj.(type) {
		case *corev1.ConfigMap:
			ks := keySet{}
			for key := range obj.Data {
				ks[key] = true
			}
			for key := range obj.BinaryData {
				ks[key] = true
			}
			ix.configMaps[objKey{"", obj.Namespace, obj.Name}] = ks
		case *corev1.Secret:
			ks := keySet{}
			for key := range obj.Data {
				ks[key] = true
			}
			for key := range obj.StringData {
				ks[key] = true
			}
			sk := objKey{"", obj.Namespace, obj.Name}
			ix.secrets[sk] = ks
			secretOwner[sk] = e
		case *SecretStore:
			ix.stores[k] = true
		}
	}
	for _, e := range entries {
		es, ok := e.obj.(*ExternalSecret)
		if !ok || first[objKey{"ExternalSecret", es.Namespace, es.Name}] != e {
			continue
		}
		sk := objKey{"", es.Namespace, es.Spec.Target.Name}
		if owner := secretOwner[sk]; owner != nil {
			p := owner.doc.find("metadata.name")
			what := "Secret"
			if _, isES := owner.obj.(*ExternalSecret); isES {
				what = "ExternalSecret"
			}
			e.addDiag(Diagnostic{Pos: e.doc.find("spec.target.name"), Severity: Error, Message: fmt.Sprintf(
				"spec.target.name: Secret %q is also produced by the %s at %s:%d:%d", qualified(sk), what, p.File, p.Line, p.Col)})
			continue
		}
		secretOwner[sk] = e
		if len(es.Spec.DataFrom) > 0 {
			ix.secrets[sk] = nil
		} else {
			ks := keySet{}
			for _, d := range es.Spec.Data {
				ks[d.SecretKey] = true
			}
			ix.secrets[sk] = ks
		}
		storeKey := objKey{es.Spec.SecretStoreRef.Kind, es.Namespace, es.Spec.SecretStoreRef.Name}
		if storeKey.kind == "ClusterSecretStore" {
			storeKey.namespace = ""
		}
		if storeKey.name != "" && !ix.stores[storeKey] {
			e.addDiag(Diagnostic{Pos: e.doc.find("spec.secretStoreRef.name"), Severity: Error, Message: fmt.Sprintf(
				"spec.secretStoreRef.name: %s %q is not defined in the repository", storeKey.kind, qualified(storeKey))})
		}
	}

	var workloads []*entry
	for _, e := range entries {
		if e.obj == nil || e.info.template == nil {
			continue
		}
		workloads = append(workloads, e)
		w := e.info.template(e.obj)
		ix.podRefs(e, w)
	}
	checkServices(entries, workloads)
}

func qualified(k objKey) string {
	if k.namespace == "" {
		return k.name
	}
	return k.namespace + "/" + k.name
}

// podRefs checks that the ConfigMaps and Secrets a pod spec uses exist, with the keys
// it names, unless the reference is optional.
func (ix *treeIndex) podRefs(e *entry, w *workload) {
	ns := e.meta.Namespace
	ref := func(p *field.Path, kind, name, key string, optional *bool) {
		if name == "" || (optional != nil && *optional) {
			return
		}
		m := ix.configMaps
		if kind == "Secret" {
			m = ix.secrets
		}
		keys, ok := m[objKey{"", ns, name}]
		pos := e.doc.find(p.Child("name").String())
		if !ok {
			what := "ConfigMap"
			hint := ""
			if kind == "Secret" {
				what = "Secret"
				hint = " (define an ExternalSecret with that target name)"
			}
			e.addDiag(Diagnostic{Pos: pos, Severity: Error, Message: fmt.Sprintf(
				"%s: %s %q is not defined in the repository%s; set optional: true if that is intended", p.Child("name"), what, ns+"/"+name, hint)})
			return
		}
		if key != "" && keys != nil && !keys[key] {
			e.addDiag(Diagnostic{Pos: e.doc.find(p.Child("key").String()), Severity: Error, Message: fmt.Sprintf(
				"%s: %s %q has no key %q (keys: %s)", p.Child("key"), kind, ns+"/"+name, key, strings.Join(sortedKeys(keys), ", "))})
		}
	}
	spec := w.spec
	containers := func(list []corev1.Container, field string) {
		for i, c := range list {
			cp := w.path.Child(field).Index(i)
			for j, env := range c.Env {
				if env.ValueFrom == nil {
					continue
				}
				ep := cp.Child("env").Index(j).Child("valueFrom")
				if r := env.ValueFrom.ConfigMapKeyRef; r != nil {
					ref(ep.Child("configMapKeyRef"), "ConfigMap", r.Name, r.Key, r.Optional)
				}
				if r := env.ValueFrom.SecretKeyRef; r != nil {
					ref(ep.Child("secretKeyRef"), "Secret", r.Name, r.Key, r.Optional)
				}
			}
			for j, ef := range c.EnvFrom {
				ep := cp.Child("envFrom").Index(j)
				if r := ef.ConfigMapRef; r != nil {
					ref(ep.Child("configMapRef"), "ConfigMap", r.Name, "", r.Optional)
				}
				if r := ef.SecretRef; r != nil {
					ref(ep.Child("secretRef"), "Secret", r.Name, "", r.Optional)
				}
			}
		}
	}
	containers(spec.InitContainers, "initContainers")
	containers(spec.Containers, "containers")
	for i, vol := range spec.Volumes {
		vp := w.path.Child("volumes").Index(i)
		if cm := vol.ConfigMap; cm != nil {
			ref(vp.Child("configMap"), "ConfigMap", cm.Name, "", cm.Optional)
			for j, it := range cm.Items {
				if keys, ok := ix.configMaps[objKey{"", ns, cm.Name}]; ok && !keys[it.Key] && (cm.Optional == nil || !*cm.Optional) {
					e.addDiag(Diagnostic{Pos: e.doc.find(vp.Child("configMap", "items").Index(j).Child("key").String()), Severity: Error,
						Message: fmt.Sprintf("%s: ConfigMap %q has no key %q", vp.Child("configMap", "items").Index(j).Child("key"), ns+"/"+cm.Name, it.Key)})
				}
			}
		}
		if s := vol.Secret; s != nil && s.SecretName != "" && (s.Optional == nil || !*s.Optional) {
			sp := vp.Child("secret")
			keys, ok := ix.secrets[objKey{"", ns, s.SecretName}]
			if !ok {
				e.addDiag(Diagnostic{Pos: e.doc.find(sp.Child("secretName").String()), Severity: Error, Message: fmt.Sprintf(
					"%s: Secret %q is not defined in the repository (define an ExternalSecret with that target name); set optional: true if that is intended",
					sp.Child("secretName"), ns+"/"+s.SecretName)})
				continue
			}
			for j, it := range s.Items {
				if keys != nil && !keys[it.Key] {
					kp := sp.Child("items").Index(j).Child("key")
					e.addDiag(Diagnostic{Pos: e.doc.find(kp.String()), Severity: Error,
						Message: fmt.Sprintf("%s: Secret %q has no key %q (keys: %s)", kp, ns+"/"+s.SecretName, it.Key, strings.Join(sortedKeys(keys), ", "))})
				}
			}
		}
	}
}

func sortedKeys(ks keySet) []string {
	out := make([]string, 0, len(ks))
	for k := range ks {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkServices warns about Services that select no workload and rejects a named
// targetPort that no selected container defines. Workloads are indexed by
// (namespace, label=value) so a tree of thousands of Services stays linear.
func checkServices(entries, workloads []*entry) {
	type wl struct {
		e *entry
		w *workload
	}
	index := map[string][]wl{}
	for _, e := range workloads {
		w := e.info.template(e.obj)
		for k, v := range w.labels {
			key := e.meta.Namespace + "\x00" + k + "=" + v
			index[key] = append(index[key], wl{e, w})
		}
	}
	for _, e := range entries {
		svc, ok := e.obj.(*corev1.Service)
		if !ok || len(svc.Spec.Selector) == 0 {
			continue
		}
		var candidates []wl
		bestLen := -1
		for k, v := range svc.Spec.Selector {
			c := index[svc.Namespace+"\x00"+k+"="+v]
			if bestLen < 0 || len(c) < bestLen {
				candidates, bestLen = c, len(c)
			}
		}
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		var matched []wl
		for _, c := range candidates {
			if sel.Matches(labels.Set(c.w.labels)) {
				matched = append(matched, c)
			}
		}
		if len(matched) == 0 {
			e.addDiag(Diagnostic{Pos: e.doc.find("spec.selector"), Severity: Warning, Message: fmt.Sprintf(
				"spec.selector: %s matches no workload in namespace %q; the service will have no endpoints", sel, svc.Namespace)})
			continue
		}
		for i, port := range svc.Spec.Ports {
			if port.TargetPort.Type != intstr.String || port.TargetPort.StrVal == "" {
				continue
			}
			found := false
			for _, m := range matched {
				for _, c := range m.w.spec.Containers {
					for _, cp := range c.Ports {
						if cp.Name == port.TargetPort.StrVal && cp.Protocol == port.Protocol {
							found = true
						}
					}
				}
			}
			if !found {
				p := field.NewPath("spec", "ports").Index(i).Child("targetPort")
				e.addDiag(Diagnostic{Pos: e.doc.find(p.String()), Severity: Error, Message: fmt.Sprintf(
					"%s: no container of the selected workloads has a %s port named %q", p, port.Protocol, port.TargetPort.StrVal)})
			}
		}
	}
}
