package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/executor"
)

// TestInitContainersInOrder: init containers run one after another, each to
// completion, before the app container starts.
func TestInitContainersInOrder(t *testing.T) {
	en := newEnv(t)
	step := func(name string) corev1.Container {
		c := batch(name)
		c.Command = []string{"/bin/sh", "-c", "sleep 0.3; date +%s%N >> /work/order; echo " + name + " >> /work/order"}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
		return c
	}
	web := echo("web")
	web.VolumeMounts = []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	pod := newPod("init", web)
	pod.Spec.InitContainers = []corev1.Container{step("first"), step("second"), step("third")}
	pod.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	en.e.Sync([]executor.Pod{{Pod: pod}})

	st := en.waitStatus(pod.UID, 60*time.Second, "app running after init", running)
	body := waitHTTP(t, podURL(st.PodIP, 8080, "/file?path=/work/order"))
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(body), "\n") {
		if !strings.HasPrefix(l, "1") {
			names = append(names, l)
		}
	}
	if got := strings.Join(names, ","); got != "first,second,third" {
		t.Fatalf("init order = %q, want first,second,third (file %q)", got, body)
	}
	for _, cs := range st.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.Reason != executor.ReasonCompleted {
			t.Errorf("init container %s state = %s, want terminated Completed", cs.Name, stateString(cs.State))
		}
	}
	var initialized bool
	for _, c := range st.Conditions {
		if c.Type == corev1.PodInitialized {
			initialized = c.Status == corev1.ConditionTrue
		}
	}
	if !initialized {
		t.Errorf("Initialized condition not true: %+v", st.Conditions)
	}
}

// TestEnvAndConfigFiles: env values, valueFrom and envFrom resolve from the pod's
// ConfigMaps and Secrets; configMap and secret volumes hold their keys with the
// expected modes.
func TestEnvAndConfigFiles(t *testing.T) {
	en := newEnv(t)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "default"},
		Data: map[string]string{"color": "blue", "app.conf": "listen=8080\n"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: "default"},
		Data: map[string][]byte{"password": []byte("s3cret")}}
	web := echo("web")
	web.Env = []corev1.EnvVar{
		{Name: "PLAIN", Value: "plain-value"},
		{Name: "COLOR", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Key: "color"}}},
		{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "password"}}},
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "GREETING", Value: "hello-$(COLOR)"},
	}
	web.EnvFrom = []corev1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
	web.VolumeMounts = []corev1.VolumeMount{{Name: "conf", MountPath: "/etc/app"}, {Name: "secret", MountPath: "/etc/secret"}}
	pod := newPod("env", web)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
		{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
	}
	p := executor.Pod{Pod: pod, ConfigMaps: map[string]*corev1.ConfigMap{"cfg": cm}, Secrets: map[string]*corev1.Secret{"creds": sec}}
	en.e.Sync([]executor.Pod{p})
	st := en.waitStatus(pod.UID, 60*time.Second, "running", running)

	envBody := waitHTTP(t, podURL(st.PodIP, 8080, "/env"))
	for _, want := range []string{"PLAIN=plain-value", "COLOR=blue", "PASSWORD=s3cret", "POD_NAME=env", "GREETING=hello-blue", "CM_color=blue"} {
		if !strings.Contains(envBody, want+"\n") {
			t.Errorf("env lacks %q:\n%s", want, envBody)
		}
	}
	if got := waitHTTP(t, podURL(st.PodIP, 8080, "/file?path=/etc/app/app.conf")); got != "listen=8080\n" {
		t.Errorf("configMap file = %q", got)
	}
	if got := waitHTTP(t, podURL(st.PodIP, 8080, "/file?path=/etc/secret/password")); got != "s3cret" {
		t.Errorf("secret file = %q", got)
	}
	// Modes, seen from inside the container (stat follows the ..data symlinks).
	var out strings.Builder
	code, err := en.e.Exec(context.Background(), "default", "env", "web", []string{"/bin/sh", "-c", "stat -L -c %a /etc/app/app.conf /etc/secret/password"}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exec stat: code %d err %v out %q", code, err, out.String())
	}
	if got := strings.Fields(out.String()); len(got) != 2 || got[0] != "644" || got[1] != "400" {
		t.Errorf("modes = %v, want configMap 644 and secret 400", got)
	}
	// Changed ConfigMap data reaches the mounted files in place, without a restart.
	cm2 := cm.DeepCopy()
	cm2.Data["app.conf"] = "listen=9090\n"
	en.e.Sync([]executor.Pod{{Pod: pod, ConfigMaps: map[string]*corev1.ConfigMap{"cfg": cm2}, Secrets: p.Secrets}})
	waitFor(t, 30*time.Second, "updated configMap file", func() bool {
		got, err := httpGet(podURL(st.PodIP, 8080, "/file?path=/etc/app/app.conf"))
		return err == nil && got == "listen=9090\n"
	}, func() string { return en.describe(pod.UID) })
	if st, _ := en.e.Status(string(pod.UID)); containerStatus(st, "web").RestartCount != 0 {
		t.Errorf("a ConfigMap change restarted the container")
	}
	// Exec passes stdin through and returns the exit code.
	var echoed strings.Builder
	code, err = en.e.Exec(context.Background(), "default", "env", "web", []string{"/bin/sh", "-c", "cat; exit 7"}, strings.NewReader("from-stdin"), &echoed, &echoed)
	if err != nil || code != 7 || echoed.String() != "from-stdin" {
		t.Errorf("exec with stdin: code %d err %v out %q, want 7 and the input back", code, err, echoed.String())
	}
}

// TestResourceLimitsInCgroup: cpu and memory requests/limits are visible in the
// container's cgroup files on the host.
func TestResourceLimitsInCgroup(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	pod := newPod("limits", web)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 60*time.Second, "running", running)

	id := string(pod.UID) + "-web-0"
	rel := filepath.Join("gantry", "pod"+string(pod.UID), id)
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(parts...))
		if err != nil {
			t.Fatalf("read cgroup file: %v", err)
		}
		return strings.TrimSpace(string(b))
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		// cgroup v2
		if got := read("/sys/fs/cgroup", rel, "memory.max"); got != "67108864" {
			t.Errorf("memory.max = %s", got)
		}
		if got := read("/sys/fs/cgroup", rel, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s", got)
		}
		return
	}
	if got := read("/sys/fs/cgroup/memory", rel, "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("memory.limit_in_bytes = %s, want 67108864", got)
	}
	if got := read("/sys/fs/cgroup/cpu", rel, "cpu.shares"); got != "256" {
		t.Errorf("cpu.shares = %s, want 256", got)
	}
	if got := read("/sys/fs/cgroup/cpu", rel, "cpu.cfs_quota_us"); got != "50000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 50000", got)
	}
	if got := read("/sys/fs/cgroup/cpu", rel, "cpu.cfs_period_us"); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %s, want 100000", got)
	}
}

// TestSecurityContext: runAsUser/runAsGroup, a read-only root filesystem and
// no_new_privs reach the container process.
func TestSecurityContext(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.SecurityContext = &corev1.SecurityContext{
		RunAsUser: ptr(int64(1234)), RunAsGroup: ptr(int64(5678)),
		ReadOnlyRootFilesystem:   ptr(true),
		AllowPrivilegeEscalation: ptr(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	pod := newPod("sec", web)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 60*time.Second, "running", running)
	var out strings.Builder
	code, err := en.e.Exec(context.Background(), "default", "sec", "web",
		[]string{"/bin/sh", "-c", "id -u; id -g; grep NoNewPrivs /proc/self/status; grep CapEff /proc/self/status; touch /x 2>&1 || echo rofs"}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("exec: code %d err %v out %q", code, err, out.String())
	}
	got := out.String()
	for _, want := range []string{"1234\n", "5678\n", "NoNewPrivs:\t1", "CapEff:\t0000000000000000", "rofs"} {
		if !strings.Contains(got, want) {
			t.Errorf("exec output lacks %q:\n%s", want, got)
		}
	}
}
