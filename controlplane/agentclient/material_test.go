package agentclient_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane/agentclient"
)

func ptr[T any](v T) *T { return &v }

func TestPodReferences(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-cfg"}}}}}},
		Containers: []corev1.Container{{Name: "app",
			EnvFrom: []corev1.EnvFromSource{{Prefix: "DB_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Optional: ptr(true)}}},
			Env: []corev1.EnvVar{
				{Name: "A", Value: "plain"},
				{Name: "B", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "b", Optional: ptr(true)}}},
				{Name: "C", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "c"}}},
				{Name: "D", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			}}},
		Volumes: []corev1.Volume{
			{Name: "v1", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Optional: ptr(true)}}},
			{Name: "v2", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls", Optional: ptr(true)}}},
			{Name: "v3", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cfg"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-sec"}}},
			}}}},
			{Name: "v4", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}}
	cms, secs := agentclient.PodReferences(pod)
	wantCMs := []agentclient.Reference{{Name: "cfg", Optional: true}, {Name: "init-cfg"}, {Name: "proj-cfg"}}
	// db is optional in envFrom but required by secretKeyRef C: required wins.
	wantSecs := []agentclient.Reference{{Name: "db"}, {Name: "proj-sec"}, {Name: "tls", Optional: true}}
	if diff := cmp.Diff(wantCMs, cms); diff != "" {
		t.Errorf("configMaps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSecs, secs); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if cms, secs := agentclient.PodReferences(&corev1.Pod{}); cms != nil || secs != nil {
		t.Errorf("empty pod references %v %v", cms, secs)
	}
	if cms, secs := agentclient.PodReferences(nil); cms != nil || secs != nil {
		t.Errorf("nil pod references %v %v", cms, secs)
	}
}

func TestMaterialStringHasNoValues(t *testing.T) {
	m := agentclient.Material{Secrets: map[string]*corev1.Secret{"db": {Data: map[string][]byte{"password": []byte("hunter2-value")}}}, Hash: "sha256:ab"}
	for _, s := range []string{m.String(), fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m)} {
		if want := "material{configMaps:[] secrets:[db] hash:sha256:ab}"; s != want {
			t.Errorf("printed %q, want %q", s, want)
		}
	}
}

// fakeFetcher serves material per pod name; a name in fail answers ErrUnavailable.
type fakeFetcher struct {
	mu    sync.Mutex
	m     map[string]*agentclient.Material
	fail  map[string]bool
	calls map[string]int
}

func (f *fakeFetcher) FetchMaterial(_ context.Context, pod *corev1.Pod) (*agentclient.Material, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[pod.Name]++
	if f.fail[pod.Name] {
		return nil, fmt.Errorf(`secret store "shop/vault": vault path "secret/data/%s" unavailable: dial: connection refused: %w`, pod.Name, api.ErrUnavailable)
	}
	m, ok := f.m[pod.Name]
	if !ok {
		return nil, fmt.Errorf("pod %s: %w", pod.Name, api.ErrNotFound)
	}
	return m, nil
}

func (f *fakeFetcher) set(name string, m *agentclient.Material, fail bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m != nil {
		f.m[name] = m
	}
	f.fail[name] = fail
}

func (f *fakeFetcher) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

type deliveries struct {
	mu   sync.Mutex
	last map[string]agentclient.ReadyPod
	n    int
}

func (d *deliveries) deliver(pods []agentclient.ReadyPod) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n++
	d.last = map[string]agentclient.ReadyPod{}
	for _, p := range pods {
		d.last[p.Pod.Name] = p
	}
}

func (d *deliveries) get(name string) (agentclient.ReadyPod, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.last[name]
	return p, ok
}

type statuses struct {
	mu sync.Mutex
	m  map[string]corev1.PodStatus
}

func (s *statuses) report(_, name string, _ types.UID, st corev1.PodStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = st
}

func (s *statuses) get(name string) (corev1.PodStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[name]
	return st, ok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func secretPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}}}}
}

func material(v, hash string) *agentclient.Material {
	return &agentclient.Material{Secrets: map[string]*corev1.Secret{"s": {Data: map[string][]byte{"k": []byte(v)}}}, Hash: hash}
}

// TestMaterializer: held back with SecretUnavailable, released, a changed hash is
// delivered, a failed refetch leaves a delivered pod as it is, a pod without
// references needs no fetch.
func TestMaterializer(t *testing.T) {
	f := &fakeFetcher{m: map[string]*agentclient.Material{}, fail: map[string]bool{}, calls: map[string]int{}}
	d := &deliveries{}
	st := &statuses{m: map[string]corev1.PodStatus{}}
	m := agentclient.NewMaterializer(f, d.deliver, agentclient.WithMaterialPoll(10*time.Millisecond),
		agentclient.WithMaterialBackoff(time.Millisecond, 10*time.Millisecond), agentclient.WithMaterialStatus(st.report), agentclient.WithMaterialLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "plain", UID: "uid-plain"}}
	f.set("web", nil, true)
	m.Pods([]*corev1.Pod{plain, secretPod("web")})

	waitFor(t, "SecretUnavailable reported for web", func() bool { _, ok := st.get("web"); return ok })
	s, _ := st.get("web")
	if s.Phase != corev1.PodPending || len(s.Conditions) != 1 || s.Conditions[0].Type != "SecretUnavailable" ||
		s.Conditions[0].Status != corev1.ConditionTrue || s.Conditions[0].Message == "" {
		t.Errorf("held status: %+v", s)
	}
	waitFor(t, "plain delivered", func() bool { _, ok := d.get("plain"); return ok })
	waitFor(t, "a retry of web", func() bool { return f.count("web") >= 3 })
	if _, ok := d.get("web"); ok {
		t.Fatal("web delivered while its material is unavailable")
	}
	if f.count("plain") != 0 {
		t.Errorf("a pod without references was fetched %d times", f.count("plain"))
	}

	// Released when the material arrives.
	f.set("web", material("v1", "h1"), false)
	waitFor(t, "web delivered", func() bool { p, ok := d.get("web"); return ok && p.Hash == "h1" })
	if p, _ := d.get("web"); string(p.Secrets["s"].Data["k"]) != "v1" {
		t.Errorf("web delivered with %q", p.Secrets["s"].Data["k"])
	}
	if len(m.Held()) != 0 {
		t.Errorf("Held() = %v after release", m.Held())
	}

	// A changed hash is delivered on the next poll.
	f.set("web", material("v2", "h2"), false)
	waitFor(t, "web redelivered with h2", func() bool { p, ok := d.get("web"); return ok && p.Hash == "h2" })

	// The server fails: web stays delivered with its last material.
	f.set("web", nil, true)
	n := f.count("web")
	waitFor(t, "failed refetches", func() bool { return f.count("web") >= n+3 })
	if p, ok := d.get("web"); !ok || p.Hash != "h2" || string(p.Secrets["s"].Data["k"]) != "v2" {
		t.Errorf("web after failed refetches: delivered=%v hash=%q", ok, p.Hash)
	}
	if s, _ := st.get("web"); s.Conditions[0].LastTransitionTime.IsZero() {
		t.Errorf("condition without transition time")
	}

	// A new pod (new UID) for the same name starts from scratch: held while failing.
	m.Pods([]*corev1.Pod{plain})
	waitFor(t, "web removed", func() bool { _, ok := d.get("web"); return !ok })
	replaced := secretPod("web")
	replaced.UID = "uid-web-2"
	m.Pods([]*corev1.Pod{plain, replaced})
	waitFor(t, "the new web held", func() bool { return m.Held()["shop/web"] != "" })
	if _, ok := d.get("web"); ok {
		t.Errorf("a new pod was delivered with an old pod's material")
	}
}
