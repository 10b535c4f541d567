package executor

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
)

func TestResolveEnv(t *testing.T) {
	opt := true
	p := &Pod{
		Pod:        &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}}},
		ConfigMaps: map[string]*corev1.ConfigMap{"cm": {Data: map[string]string{"a": "1", "b": "2"}}},
		Secrets:    map[string]*corev1.Secret{"s": {Data: map[string][]byte{"k": []byte("v")}}},
	}
	c := &corev1.Container{
		Name:    "c",
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}}},
		Env: []corev1.EnvVar{
			{Name: "a", Value: "override"},
			{Name: "X", Value: "$(a)-$(b)-$$(a)-$(none)"},
			{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
			{Name: "GONE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Key: "x", Optional: &opt}}},
			{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		},
	}
	got, err := resolveEnv(p, c, "node1", []string{"10.0.0.2", "fd00::2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a=override", "b=2", "X=override-2-$(a)-$(none)", "S=v", "NS=ns", "APP=web", "IP=10.0.0.2"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}

	c.Env = []corev1.EnvVar{{Name: "M", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "missing"}}}}
	if _, err := resolveEnv(p, c, "", nil); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("missing key: err = %v, want ErrNotFound naming the key", err)
	}
}

func TestPullPolicy(t *testing.T) {
	for img, want := range map[string]corev1.PullPolicy{
		"busybox":             corev1.PullAlways,
		"busybox:latest":      corev1.PullAlways,
		"gantry.test/echo:v1": corev1.PullIfNotPresent,
		"127.0.0.1:5000/a/b@sha256:" + strings.Repeat("a", 64): corev1.PullIfNotPresent,
	} {
		if got := pullPolicy(&corev1.Container{Image: img}); got != want {
			t.Errorf("pullPolicy(%s) = %s, want %s", img, got, want)
		}
	}
	if got := pullPolicy(&corev1.Container{Image: "x:latest", ImagePullPolicy: corev1.PullNever}); got != corev1.PullNever {
		t.Errorf("explicit policy not kept: %s", got)
	}
}

func TestPlainHTTP(t *testing.T) {
	rc := RegistryConfig{Insecure: []string{"registry.internal:5000"}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "localhost:5000": true, "127.0.0.9": true,
		"registry.internal:5000": true, "registry.internal": false, "example.invalid:443": false,
	} {
		if got, _ := rc.plainHTTP(host); got != want {
			t.Errorf("plainHTTP(%s) = %v, want %v", host, got, want)
		}
	}
}

func TestRegistryMessageStripsSecrets(t *testing.T) {
	msg := registryMessage(errors.New(`failed to do request: Head "https://user:pw@reg.invalid/v2/a/manifests/v1?token=abc": 401`))
	if strings.Contains(msg, "pw") || strings.Contains(msg, "token=abc") {
		t.Errorf("message leaks credentials: %s", msg)
	}
	if !strings.Contains(msg, "reg.invalid/v2/a/manifests/v1") {
		t.Errorf("message lost the URL: %s", msg)
	}
}

func TestSpecHash(t *testing.T) {
	a := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}}}
	b := a.DeepCopy()
	b.Labels = map[string]string{"x": "y"}
	if SpecHash(a) != SpecHash(b) {
		t.Errorf("metadata changed the spec hash")
	}
	b.Spec.Containers[0].Image = "i:2"
	if SpecHash(a) == SpecHash(b) {
		t.Errorf("an image change did not change the spec hash")
	}
}

func TestResourceShares(t *testing.T) {
	for _, tc := range []struct {
		milli int64
		want  uint64
	}{{250, 256}, {1000, 1024}, {1, 2}, {0, 2}} {
		if got := milliToShares(tc.milli); got != tc.want {
			t.Errorf("milliToShares(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
	c := &corev1.Container{Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}
	if n := len(resourceOpts(c)); n != 2 {
		t.Errorf("cpu limit only: %d spec options, want shares and quota", n)
	}
}

func TestQOSClass(t *testing.T) {
	rl := func(cpu, mem string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	pod := func(r corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: r}}}}
	}
	if q := qosClass(pod(corev1.ResourceRequirements{})); q != corev1.PodQOSBestEffort {
		t.Errorf("no resources: %s", q)
	}
	if q := qosClass(pod(corev1.ResourceRequirements{Limits: rl("1", "1Gi"), Requests: rl("1", "1Gi")})); q != corev1.PodQOSGuaranteed {
		t.Errorf("requests = limits: %s", q)
	}
	if q := qosClass(pod(corev1.ResourceRequirements{Requests: rl("1", "1Gi")})); q != corev1.PodQOSBurstable {
		t.Errorf("requests only: %s", q)
	}
}

func TestContainerdConfigKeepsItsOwnPaths(t *testing.T) {
	cfg := ContainerdConfig("/r", "/s", "/s/c.sock")
	for _, want := range []string{`root = "/r"`, `state = "/s"`, `address = "/s/c.sock"`, `"io.containerd.grpc.v1.cri"`, `path = "/r/opt"`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %s:\n%s", want, cfg)
		}
	}
}
