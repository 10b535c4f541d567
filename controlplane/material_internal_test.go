package controlplane

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/manifest"
)

// TestWithConfigHashes: the reconcile loop's Deployments get the config-hash
// annotation, a ConfigMap change changes it (and so the template hash), and a
// Deployment without references is passed through untouched.
func TestWithConfigHashes(t *testing.T) {
	r := &Reconciler{opts: reconcileOpts{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	dep := func(name string, env []corev1.EnvVar) *appsv1.Deployment {
		d := &appsv1.Deployment{}
		d.Name, d.Namespace = name, "shop"
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: "busybox", Env: env}}
		return d
	}
	web := dep("web", []corev1.EnvVar{{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "mode"}}}})
	plain := dep("plain", nil)
	cm := &corev1.ConfigMap{Data: map[string]string{"mode": "blue"}}
	cm.Name, cm.Namespace = "cfg", "shop"
	d := &manifest.Desired{Deployments: []*appsv1.Deployment{plain, web}, ConfigMaps: []*corev1.ConfigMap{cm}}

	out := r.withConfigHashes(d)
	h1 := out.Deployments[1].Spec.Template.Annotations[AnnotationConfigHash]
	if !strings.HasPrefix(h1, "sha256:") {
		t.Fatalf("web config hash %q", h1)
	}
	if out.Deployments[0] != plain || plain.Spec.Template.Annotations != nil {
		t.Errorf("a Deployment without references was copied or changed")
	}
	if web.Spec.Template.Annotations != nil {
		t.Errorf("the input Deployment was modified")
	}
	if again := r.withConfigHashes(out); again.Deployments[1] != out.Deployments[1] {
		t.Errorf("an annotated revision is not a fixed point")
	}
	cm2 := cm.DeepCopy()
	cm2.Data["mode"] = "green"
	d2 := &manifest.Desired{Deployments: d.Deployments, ConfigMaps: []*corev1.ConfigMap{cm2}}
	if h2 := r.withConfigHashes(d2).Deployments[1].Spec.Template.Annotations[AnnotationConfigHash]; h2 == h1 || h2 == "" {
		t.Errorf("ConfigMap change: config hash %q → %q", h1, h2)
	}
	if r.withConfigHashes(nil) != nil {
		t.Errorf("nil desired")
	}
}
