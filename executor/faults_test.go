package executor_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/backoff"
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

// TestCNIFailure: when the CNI plugins fail — here host-local has no address left,
// after bridge already made the veth — the pod stays Pending with the plugin's error,
// and no veth or IP lease of it is left behind; the pod that holds the only address
// keeps running.
func TestCNIFailure(t *testing.T) {
	const bridge = tinyBridge
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	// An owned dir (not t.TempDir): a rerun after this test was killed finds it stale.
	top, err := testenv.OwnedTempDir(dataDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(top) })
	sbDir := filepath.Join(top, "sandbox")
	// A /30 has one pod address (.249 is the gateway).
	tiny := sandbox.New(
		sandbox.WithDataDir(sbDir),
		sandbox.WithNetwork("gtest-exe-tiny", bridge),
		sandbox.WithSubnets("10.244.210.248/30", "fd00:10:244:d2:ffff::/120"),
		sandbox.WithMasqueradeTable(tinyNATTable),
	)
	t.Cleanup(func() {
		if err := tiny.RemoveMasquerade(); err != nil {
			t.Errorf("cleanup: RemoveMasquerade: %v", err)
		}
	})
	// A long back-off: no second attempt runs while the test looks for leftovers.
	en := newEnv(t, executor.WithSandbox(tiny), executor.WithBackoff(backoff.Policy{Initial: time.Hour, Max: time.Hour, ResetAfter: time.Hour}))
	first := newPod("first", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: first}})
	en.waitStatus(first.UID, 60*time.Second, "first pod running", running)
	veths := func() int {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", bridge).CombinedOutput()
		return strings.Count(string(out), "veth")
	}
	leases := func() []string {
		var files []string
		_ = filepath.WalkDir(filepath.Join(sbDir, "ipam"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), "last_reserved_ip") && d.Name() != "lock" {
				files = append(files, filepath.Base(p))
			}
			return nil
		})
		return files
	}
	vBefore, lBefore := veths(), leases()

	second := newPod("second", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: first}, {Pod: second}})
	st := en.waitStatus(second.UID, 30*time.Second, "sandbox failure in status", func(st corev1.PodStatus) bool {
		return st.Reason == "FailedCreatePodSandBox"
	})
	if st.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", st.Phase)
	}
	if !strings.Contains(st.Message, "no IP addresses available") {
		t.Errorf("message %q does not carry host-local's error", st.Message)
	}
	if v := veths(); v != vBefore {
		t.Errorf("veths on %s: %d before the failed pod, %d after", bridge, vBefore, v)
	}
	if l := leases(); len(l) != len(lBefore) {
		t.Errorf("IP leases: %v before the failed pod, %v after", lBefore, l)
	}
	if _, err := os.Stat(filepath.Join(sbDir, "netns", string(second.UID))); !os.IsNotExist(err) {
		t.Errorf("netns pin of the failed pod exists: %v", err)
	}
	// The container created while the ADD ran is gone with it.
	ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
	if ctrs, err := en.e.Client().Containers(ctx, `labels."`+executor.LabelPodUID+`"==`+string(second.UID)); err != nil || len(ctrs) != 0 {
		t.Errorf("containers of the failed pod left: %d (%v)", len(ctrs), err)
	}
	en.waitStatus(first.UID, 10*time.Second, "first pod still running", running)
}
