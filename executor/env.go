package executor

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// ReasonCreateConfigError is the waiting reason of a container whose env or volumes
// refer to a ConfigMap, Secret or key that is not there (Kubernetes'
// CreateContainerConfigError).
const ReasonCreateConfigError = "CreateContainerConfigError"

// resolveEnv computes a container's environment in Kubernetes order: envFrom sources
// first (later sources win), then env entries, with $(VAR) references to earlier
// variables expanded. ConfigMaps and Secrets come from p; a missing non-optional
// source or key is an ErrNotFound error naming it.
func resolveEnv(p *Pod, c *corev1.Container, nodeName string, podIPs []string) ([]string, error) {
	pod := p.Pod
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm := p.ConfigMaps[from.ConfigMapRef.Name]
			if cm == nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("container %q envFrom: configmap %q: %w", c.Name, from.ConfigMapRef.Name, api.ErrNotFound)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s := p.Secrets[from.SecretRef.Name]
			if s == nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, fmt.Errorf("container %q envFrom: secret %q: %w", c.Name, from.SecretRef.Name, api.ErrNotFound)
			}
			data = secretStrings(s)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, ev := range c.Env {
		if ev.ValueFrom == nil {
			set(ev.Name, expandVars(ev.Value, vals))
			continue
		}
		v, skip, err := envSource(p, c, ev, nodeName, podIPs)
		if err != nil {
			return nil, err
		}
		if !skip {
			set(ev.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	_ = pod
	return out, nil
}

func envSource(p *Pod, c *corev1.Container, ev corev1.EnvVar, nodeName string, podIPs []string) (string, bool, error) {
	vf := ev.ValueFrom
	switch {
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm := p.ConfigMaps[ref.Name]
		if cm == nil {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("container %q env %s: configmap %q: %w", c.Name, ev.Name, ref.Name, api.ErrNotFound)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("container %q env %s: key %q in configmap %q: %w", c.Name, ev.Name, ref.Key, ref.Name, api.ErrNotFound)
		}
		return v, false, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s := p.Secrets[ref.Name]
		if s == nil {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("container %q env %s: secret %q: %w", c.Name, ev.Name, ref.Name, api.ErrNotFound)
		}
		v, ok := secretStrings(s)[ref.Key]
		if !ok {
			if optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("container %q env %s: key %q in secret %q: %w", c.Name, ev.Name, ref.Key, ref.Name, api.ErrNotFound)
		}
		return v, false, nil
	case vf.FieldRef != nil:
		pod := p.Pod
		switch vf.FieldRef.FieldPath {
		case "metadata.name":
			return pod.Name, false, nil
		case "metadata.namespace":
			return pod.Namespace, false, nil
		case "metadata.uid":
			return string(pod.UID), false, nil
		case "spec.nodeName":
			return nodeName, false, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, false, nil
		case "status.podIP":
			if len(podIPs) > 0 {
				return podIPs[0], false, nil
			}
			return "", false, nil
		case "status.podIPs":
			return strings.Join(podIPs, ","), false, nil
		}
		if k, ok := strings.CutPrefix(vf.FieldRef.FieldPath, "metadata.labels['"); ok {
			return pod.Labels[strings.TrimSuffix(k, "']")], false, nil
		}
		if k, ok := strings.CutPrefix(vf.FieldRef.FieldPath, "metadata.annotations['"); ok {
			return pod.Annotations[strings.TrimSuffix(k, "']")], false, nil
		}
		return "", false, fmt.Errorf("container %q env %s: fieldRef %q: %w", c.Name, ev.Name, vf.FieldRef.FieldPath, api.ErrInvalidArgument)
	case vf.ResourceFieldRef != nil:
		return resourceField(c, vf.ResourceFieldRef)
	}
	return "", false, fmt.Errorf("container %q env %s: empty valueFrom: %w", c.Name, ev.Name, api.ErrInvalidArgument)
}

func resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, bool, error) {
	var q = c.Resources.Limits
	name := ref.Resource
	if n, ok := strings.CutPrefix(name, "requests."); ok {
		q, name = c.Resources.Requests, n
	} else {
		name = strings.TrimPrefix(name, "limits.")
	}
	v, ok := q[corev1.ResourceName(name)]
	if !ok {
		return "0", false, nil
	}
	if name == "cpu" {
		return fmt.Sprint(v.MilliValue() / 1000), false, nil
	}
	return fmt.Sprint(v.Value()), false, nil
}

func secretStrings(s *corev1.Secret) map[string]string {
	out := make(map[string]string, len(s.Data)+len(s.StringData))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// expandVars replaces $(NAME) with the value of an earlier variable; $$(NAME) stays
// literal as $(NAME), and unknown references are left as written (Kubernetes rules).
func expandVars(s string, vals map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vals[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
