package executor_test

import (
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/executor"
)

// TestTwoContainerPod: two containers share the pod's network namespace (localhost)
// and an emptyDir, and the host reaches the pod on its IPv4 and IPv6 addresses.
func TestTwoContainerPod(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	side := batch("side")
	side.Command = []string{"/bin/sh", "-c", "while true; do wget -q -O /shared/page.tmp http://127.0.0.1:8080/ && mv /shared/page.tmp /shared/page; sleep 0.2; done"}
	side.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	pod := newPod("two", web, side)
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	en.e.Sync([]executor.Pod{{Pod: pod}})

	st := en.waitStatus(pod.UID, 60*time.Second, "both containers running", running)
	if len(st.PodIPs) != 2 {
		t.Fatalf("pod IPs = %v, want one IPv4 and one IPv6", st.PodIPs)
	}
	v4, v6 := net.ParseIP(st.PodIPs[0].IP), net.ParseIP(st.PodIPs[1].IP)
	if v4 == nil || v4.To4() == nil || v6 == nil || v6.To4() != nil {
		t.Fatalf("pod IPs = %v, want IPv4 then IPv6", st.PodIPs)
	}
	for _, ip := range []string{st.PodIPs[0].IP, st.PodIPs[1].IP} {
		body := waitHTTP(t, podURL(ip, 8080, "/"))
		if !strings.Contains(body, "hostname=two") {
			t.Errorf("GET / on %s = %q, want the pod's hostname", ip, body)
		}
	}
	// The sidecar fetched from localhost into the emptyDir; the web container serves it.
	body := waitHTTP(t, podURL(st.PodIPs[0].IP, 8080, "/file?path=/shared/page"))
	if !strings.Contains(body, "version=v1") {
		t.Errorf("shared file = %q, want the web container's answer fetched over localhost", body)
	}
	if !ready(st) {
		t.Errorf("pod without readiness probes is not Ready: %+v", st.Conditions)
	}
}

// TestSpecChangeReplacesPod: a pod whose spec changes (same UID) is replaced: the old
// containers stop and the new spec runs.
func TestSpecChangeReplacesPod(t *testing.T) {
	en := newEnv(t)
	pod := newPod("change", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "v1 running", running)
	if body := waitHTTP(t, podURL(st.PodIP, 8080, "/")); !strings.Contains(body, "version=v1") {
		t.Fatalf("GET / = %q, want v1", body)
	}
	changed := pod.DeepCopy()
	changed.Spec.Containers[0].Image = "gantry.test/echo:v2"
	en.e.Sync([]executor.Pod{{Pod: changed}})
	st2 := en.waitStatus(pod.UID, 60*time.Second, "v2 running", func(s corev1.PodStatus) bool {
		return running(s) && containerStatus(s, "web").Image == "gantry.test/echo:v2"
	})
	if body := waitHTTP(t, podURL(st2.PodIP, 8080, "/")); !strings.Contains(body, "version=v2") {
		t.Errorf("GET / after the change = %q, want v2", body)
	}
	if pids := en.taskPIDs(); len(pids) != 1 {
		t.Errorf("tasks after replacement = %v, want only the new one", pids)
	}
}
