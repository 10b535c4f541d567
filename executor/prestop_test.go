package executor_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/executor"
)

// TestPreStopHooks: removing a pod runs each container's preStop hook before its
// SIGTERM — an exec hook runs its command in the container (it writes into the
// shared emptyDir), a sleep hook keeps the container serving for its seconds (the
// web container still answers a second after the removal began, and shows the exec
// hook's file).
func TestPreStopHooks(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
	web.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	hook := batch("hook")
	hook.Command = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"}
	hook.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"/bin/sh", "-c", "echo exec-hook-ran > /shared/hook"}}}}
	hook.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod := newPod("prestop", web, hook)
	pod.Spec.TerminationGracePeriodSeconds = ptr(int64(10))
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "both containers running", running)
	url := podURL(st.PodIP, 8080, "/file?path=/shared/hook")
	waitHTTP(t, podURL(st.PodIP, 8080, "/"))

	en.e.Sync(nil) // the pod is removed: its containers stop, hooks first
	time.Sleep(time.Second)
	body, err := httpGet(url)
	if err != nil {
		t.Fatalf("web 1 s into its 5 s preStop sleep: %v (SIGTERM came before the sleep hook ended)", err)
	}
	if !strings.Contains(body, "exec-hook-ran") {
		t.Errorf("shared file after removal = %q, want the exec hook's output", body)
	}
	waitFor(t, 30*time.Second, "the pod gone", func() bool {
		_, ok := en.e.Status(string(pod.UID))
		return !ok
	}, func() string { return en.describe(pod.UID) })
}
