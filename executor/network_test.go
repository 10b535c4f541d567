package executor_test

import (
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/executor"
)

// netView is a shell line that records, as the container's first action, what the
// process sees of its network and /etc/hosts into /work/<name>.
func netView(name string) string {
	return "cat /proc/net/dev /proc/net/if_inet6 /proc/net/fib_trie /etc/hosts > /work/" + name + ".net"
}

// TestNetworkReadyAtStart: the sandbox's CNI ADD runs while the pod's first container is
// being created, and that container's start waits for it. The first thing an init
// container and then the app container do is record their view of the network: both
// see eth0 with the pod's IPv4 and IPv6 addresses, and /etc/hosts with them. A
// container whose env needs the pod IP gets it.
func TestNetworkReadyAtStart(t *testing.T) {
	en := newEnv(t)
	work := []corev1.VolumeMount{{Name: "work", MountPath: "/work"}}
	first := batch("first")
	first.Command = []string{"/bin/sh", "-c", netView("init")}
	first.VolumeMounts = work
	web := echo("web")
	web.Command = []string{"/bin/sh", "-c", netView("app") + "; exec /echo"}
	web.VolumeMounts = work
	pod := newPod("netstart", web)
	pod.Spec.InitContainers = []corev1.Container{first}
	pod.Spec.Volumes = []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	// The first container of this pod needs the pod IP in its env: its create waits.
	withIP := echo("web")
	withIP.Env = []corev1.EnvVar{{Name: "MY_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}
	envPod := newPod("envip", withIP)
	en.e.Sync([]executor.Pod{{Pod: pod}, {Pod: envPod}})

	st := en.waitStatus(pod.UID, 60*time.Second, "app running after init", running)
	if len(st.PodIPs) != 2 {
		t.Fatalf("pod IPs %v, want one IPv4 and one IPv6", st.PodIPs)
	}
	v4, v6 := net.ParseIP(st.PodIPs[0].IP), net.ParseIP(st.PodIPs[1].IP)
	for _, name := range []string{"init", "app"} {
		view := waitHTTP(t, podURL(st.PodIP, 8080, "/file?path=/work/"+name+".net"))
		if !strings.Contains(view, "eth0") {
			t.Errorf("%s container started without eth0:\n%s", name, view)
		}
		if !strings.Contains(view, "|-- "+v4.String()+"\n") {
			t.Errorf("%s container started without %s (fib_trie):\n%s", name, v4, view)
		}
		if !strings.Contains(view, hex.EncodeToString(v6.To16())) {
			t.Errorf("%s container started without %s (if_inet6):\n%s", name, v6, view)
		}
		for _, ip := range []net.IP{v4, v6} {
			if !strings.Contains(view, ip.String()+"\tnetstart") {
				t.Errorf("%s container's /etc/hosts lacks %s:\n%s", name, ip, view)
			}
		}
	}
	est := en.waitStatus(envPod.UID, 60*time.Second, "env pod running", running)
	if env := waitHTTP(t, podURL(est.PodIP, 8080, "/env")); est.PodIP == "" || !strings.Contains(env, "MY_IP="+est.PodIP+"\n") {
		t.Errorf("env lacks MY_IP=%s:\n%s", est.PodIP, env)
	}
}
