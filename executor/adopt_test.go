package executor_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor"
)

// taskPIDs returns container ID → task PID for the executor's namespace.
func (en *env) taskPIDs() map[string]uint32 {
	en.t.Helper()
	cl, err := containerd.New(en.cd.Address(), containerd.WithDefaultNamespace(en.e.Namespace()))
	if err != nil {
		en.t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
	ctrs, err := cl.Containers(ctx)
	if err != nil {
		en.t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, c := range ctrs {
		if task, err := c.Task(ctx, nil); err == nil {
			out[c.ID()] = task.Pid()
		}
	}
	return out
}

// TestAgentRestartAdopts: a new executor on the same containerd and data dir adopts
// running containers without restarting them (task PIDs unchanged) and keeps serving
// their logs.
func TestAgentRestartAdopts(t *testing.T) {
	en := newEnv(t)
	side := batch("side")
	side.Command = []string{"/bin/sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"}
	pod := newPod("adopt", echo("web"), side)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "running", running)
	before := en.taskPIDs()
	if len(before) != 2 {
		t.Fatalf("tasks before restart = %v, want 2", before)
	}

	en.restart()
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st2 := en.waitStatus(pod.UID, 30*time.Second, "running after restart", running)
	after := en.taskPIDs()
	for id, pid := range before {
		if after[id] != pid {
			t.Errorf("container %s: pid %d before the agent restart, %d after", id, pid, after[id])
		}
	}
	if st2.PodIP != st.PodIP {
		t.Errorf("pod IP changed: %s → %s", st.PodIP, st2.PodIP)
	}
	for _, cs := range st2.ContainerStatuses {
		if cs.RestartCount != 0 {
			t.Errorf("%s restart count %d after adoption", cs.Name, cs.RestartCount)
		}
	}
	waitHTTP(t, podURL(st2.PodIP, 8080, "/"))
	// Log capture goes on after adoption.
	waitFor(t, 10*time.Second, "new log lines after adoption", func() bool {
		var b strings.Builder
		if err := en.e.Logs(context.Background(), "default", "adopt", "side", executor.LogOptions{Tail: 1}, &b); err != nil {
			return false
		}
		return strings.Contains(b.String(), "tick")
	}, func() string { return "no log" })
}

// TestContainerdRestart: containerd restarted under the executor: it reconnects,
// the pod keeps running (same PIDs) and exits are still seen.
func TestContainerdRestart(t *testing.T) {
	en := newEnv(t)
	pod := newPod("ctrdrestart", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "running", running)
	before := en.taskPIDs()
	if err := en.cd.Restart(); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	after := en.taskPIDs()
	for id, pid := range before {
		if after[id] != pid {
			t.Errorf("container %s: pid %d → %d", id, pid, after[id])
		}
	}
	// An exit after the restart is still noticed: crash it and see the restart.
	_, _ = httpGet(podURL(st.PodIP, 8080, "/crash"))
	en.waitStatus(pod.UID, 60*time.Second, "restarted after crash", func(s corev1.PodStatus) bool {
		return running(s) && containerStatus(s, "web").RestartCount >= 1
	})
}

// TestGarbageCollectsOrphans: a container labelled for a pod nobody wants, and a
// sandbox without a pod, are removed.
func TestGarbageCollectsOrphans(t *testing.T) {
	en := newEnv(t)
	keep := newPod("keep", echo("web"))
	orphan := newPod("orphan", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: keep}, {Pod: orphan}})
	en.waitStatus(keep.UID, 60*time.Second, "keep running", running)
	en.waitStatus(orphan.UID, 60*time.Second, "orphan running", running)

	// The agent goes away; while it is away the orphan pod leaves the desired set.
	en.restart()
	// Plus a container gantry never knew: labelled as a pod's but no worker claims it.
	makeLabelledContainer(t, en, "stray-uid")
	en.e.Sync([]executor.Pod{{Pod: keep}})
	en.e.CollectGarbage(context.Background())

	pids := en.taskPIDs()
	for id := range pids {
		if strings.HasPrefix(id, string(orphan.UID)) || strings.HasPrefix(id, "stray") {
			t.Errorf("orphan container %s still has a task", id)
		}
	}
	uids, err := en.sb.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range uids {
		if u == string(orphan.UID) {
			t.Errorf("orphan sandbox %s not removed", u)
		}
	}
	if _, err := os.Stat(en.dataDir + "/sandbox/netns/" + string(orphan.UID)); !os.IsNotExist(err) {
		t.Errorf("orphan netns still there: %v", err)
	}
	if _, ok := en.e.Status(string(keep.UID)); !ok {
		t.Errorf("the kept pod is gone")
	}
	en.waitStatus(keep.UID, 10*time.Second, "keep still running", running)
}

func makeLabelledContainer(t *testing.T, en *env, uid string) {
	t.Helper()
	cl := en.e.Client()
	ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
	img, err := cl.GetImage(ctx, "gantry.test/batch:v1")
	if err != nil {
		t.Fatal(err)
	}
	id := "stray-" + uid
	ctr, err := cl.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithSnapshotter("overlayfs"),
		containerd.WithNewSnapshot(id, img), containerd.WithNewSpec(oci.WithImageConfigArgs(img, []string{"--sleep", "1h"})),
		containerd.WithContainerLabels(map[string]string{executor.LabelPodUID: uid, executor.LabelContainer: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPullFromRegistry: an image pushed to the local registry (plain HTTP on
// 127.0.0.1) is pulled with imagePullPolicy Always and runs.
func TestPullFromRegistry(t *testing.T) {
	en := newEnv(t)
	reg := startRegistry(t)
	ref := reg.Push(t, en.images.EchoV2.Archive, "gantry/echo:v2")
	c := echo("web")
	c.Image = ref
	c.ImagePullPolicy = corev1.PullAlways
	pod := newPod("pull", c)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 120*time.Second, "running", running)
	if body := waitHTTP(t, podURL(st.PodIP, 8080, "/")); !strings.Contains(body, "version=v2") {
		t.Errorf("GET / = %q, want version=v2", body)
	}
	if _, err := en.e.Client().GetImage(namespaces.WithNamespace(context.Background(), en.e.Namespace()), ref); err != nil {
		t.Errorf("pulled image %s not in the image store: %v", ref, err)
	}
}

// TestPullWithCredentials: a registry with basic auth is pulled with the configured
// credentials; without them the pull fails with the registry's refusal.
func TestPullWithCredentials(t *testing.T) {
	testenv.Integration(t, testenv.RegistryBinary)
	reg := testenv.StartRegistry(t, testenv.WithBasicAuth("puller", "pw-123"))
	en := newEnv(t, executor.WithRegistryConfig(executor.RegistryConfig{
		Credentials: map[string]executor.Credential{reg.Addr(): {Username: "puller", Password: "pw-123"}},
	}))
	ref := reg.Push(t, en.images.EchoV1.Archive, "private/echo:v1")
	c := echo("web")
	c.Image = ref
	pod := newPod("auth", c)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 120*time.Second, "running", running)
}

func startRegistry(t *testing.T) *testenv.Registry {
	t.Helper()
	testenv.Integration(t, testenv.RegistryBinary)
	return testenv.StartRegistry(t)
}
