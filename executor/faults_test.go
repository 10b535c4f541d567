package executor_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/sandbox"
)

// TestImageDoesNotExist: a pull from the local registry of a tag it lacks gives
// ErrImagePull, then ImagePullBackOff, both carrying the registry's message.
func TestImageDoesNotExist(t *testing.T) {
	en := newEnv(t)
	reg := startRegistry(t)
	c := echo("web")
	c.Image = reg.Ref("nothing/here:v9")
	pod := newPod("noimage", c)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	waitFor(t, 60*time.Second, "ErrImagePull then ImagePullBackOff", func() bool {
		return en.sawUpdate(func(u executor.PodStatusUpdate) bool {
			return waitingReason(u.Status, "web") == executor.ReasonErrImagePull
		}) &&
			en.sawUpdate(func(u executor.PodStatusUpdate) bool {
				return waitingReason(u.Status, "web") == executor.ReasonImagePullBackOff
			})
	}, func() string { return en.describe(pod.UID) })
	// Both reasons carry the registry's answer (404 → "not found").
	for _, reason := range []string{executor.ReasonErrImagePull, executor.ReasonImagePullBackOff} {
		if !en.sawUpdate(func(u executor.PodStatusUpdate) bool {
			cs := containerStatus(u.Status, "web")
			return cs.State.Waiting != nil && cs.State.Waiting.Reason == reason && strings.Contains(cs.State.Waiting.Message, "not found")
		}) {
			t.Errorf("no %s status carrying the registry's \"not found\": %s", reason, en.describe(pod.UID))
		}
	}
	st, _ := en.e.Status(string(pod.UID))
	if st.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", st.Phase)
	}
}

func waitingReason(st corev1.PodStatus, name string) string {
	cs := containerStatus(st, name)
	if cs.State.Waiting == nil {
		return ""
	}
	return cs.State.Waiting.Reason
}

// TestCommandDoesNotExist: a command missing from the image ends as ContainerCannotRun
// with runc's message.
func TestCommandDoesNotExist(t *testing.T) {
	en := newEnv(t)
	c := batch("app")
	c.Command = []string{"/no/such/binary"}
	pod := newPod("nocmd", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "ContainerCannotRun", func(st corev1.PodStatus) bool {
		term := containerStatus(st, "app").State.Terminated
		return term != nil && term.Reason == executor.ReasonContainerCannotRun
	})
	term := containerStatus(st, "app").State.Terminated
	if !strings.Contains(term.Message, "/no/such/binary") || !strings.Contains(term.Message, "no such file") {
		t.Errorf("message %q does not carry the runtime's error", term.Message)
	}
	if st.Phase != corev1.PodFailed {
		t.Errorf("phase = %s, want Failed (restartPolicy Never)", st.Phase)
	}
}

// TestOOMKilled: a container that allocates past its memory limit is OOMKilled.
func TestOOMKilled(t *testing.T) {
	en := newEnv(t)
	c := batch("hog")
	// busybox: fill a tmpfs-free pipe buffer is not memory; a shell variable is.
	c.Command = []string{"/bin/sh", "-c", "x=a; while true; do x=$x$x; done"}
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("16Mi")}
	pod := newPod("oom", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "terminated", func(st corev1.PodStatus) bool {
		return containerStatus(st, "hog").State.Terminated != nil
	})
	term := containerStatus(st, "hog").State.Terminated
	if term.Reason != executor.ReasonOOMKilled || term.ExitCode != 137 {
		t.Fatalf("terminated %s exit %d, want OOMKilled 137", term.Reason, term.ExitCode)
	}
}

// TestCNIFailure: when the CNI plugin fails the pod stays Pending with the plugin's
// error, and no veth or IP lease is left behind.
func TestCNIFailure(t *testing.T) {
	bad := sandbox.New(
		sandbox.WithCNIBinDir(t.TempDir()), // no plugins at all
		sandbox.WithNetwork("gtest-exe-bad", testBridge),
		sandbox.WithSubnets(testSubnet4, testSubnet6),
	)
	en := newEnv(t, executor.WithSandbox(bad))
	pod := newPod("nocni", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 30*time.Second, "sandbox failure in status", func(st corev1.PodStatus) bool {
		return st.Reason == "FailedCreatePodSandBox"
	})
	if st.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", st.Phase)
	}
	if !strings.Contains(st.Message, "loopback") && !strings.Contains(st.Message, "bridge") {
		t.Errorf("message %q does not name the failing plugin", st.Message)
	}
	out, _ := exec.Command("ip", "-o", "link", "show", "master", testBridge).CombinedOutput()
	if strings.Contains(string(out), "veth") {
		t.Errorf("veth left on %s: %s", testBridge, out)
	}
}
