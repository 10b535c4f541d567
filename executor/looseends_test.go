package executor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/executor"
)

// TestLogsFollowEndsWithContainer: Logs with Follow returns by itself once the
// container exits, after writing everything the container printed.
func TestLogsFollowEndsWithContainer(t *testing.T) {
	en := newEnv(t)
	c := batch("talk")
	c.Command = []string{"/bin/sh", "-c", "echo first; sleep 2; echo last"}
	pod := newPod("follow", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	en.e.Sync([]executor.Pod{{Pod: pod}})
	var b strings.Builder
	var err error
	waitFor(t, 60*time.Second, "log file", func() bool {
		b.Reset()
		err = en.e.Logs(context.Background(), "default", "follow", "talk", executor.LogOptions{Tail: 1}, &b)
		return err == nil
	}, func() string { return errString(err) })

	// The context never ends by itself within the test: only the exit can end Follow.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- en.e.Logs(ctx, "default", "follow", "talk", executor.LogOptions{Follow: true}, &out)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Logs Follow: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Logs Follow still running 60 s after the start of a 2 s container; status: %s", en.describe(pod.UID))
	}
	if got := out.String(); got != "first\nlast\n" {
		t.Errorf("followed log = %q, want %q", got, "first\nlast\n")
	}
	en.waitStatus(pod.UID, 30*time.Second, "terminated", func(s corev1.PodStatus) bool {
		return containerStatus(s, "talk").State.Terminated != nil
	})
}

// TestAdoptedProbesCountFromStart: an adopted container's probes count their initial
// delay from the container's start (its started-at label), not from the adoption.
func TestAdoptedProbesCountFromStart(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.ReadinessProbe = httpProbe("/", 1)
	web.ReadinessProbe.InitialDelaySeconds = 3600
	pod := newPod("adoptprobe", web)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 60*time.Second, "running", running)
	if st, _ := en.e.Status(string(pod.UID)); ready(st) {
		t.Fatalf("ready before the 1 h initial delay: %s", en.describe(pod.UID))
	}

	// The agent stops; the container "started" two hours ago.
	if err := en.e.Close(); err != nil {
		t.Fatalf("close executor: %v", err)
	}
	cl, err := containerd.New(en.cd.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
	ctrs, err := cl.Containers(ctx)
	if err != nil || len(ctrs) != 1 {
		t.Fatalf("containers: %v %v", ctrs, err)
	}
	long := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	if _, err := ctrs[0].SetLabels(ctx, map[string]string{executor.LabelStartedAt: long}); err != nil {
		t.Fatal(err)
	}
	en.start()
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 30*time.Second, "ready after adoption (delay long past)", ready)
}

// TestPullWhileContainerdDown: with containerd down, a new pod's container waits with
// "containerd unavailable" — not ErrImagePull, no pull back-off — and starts once
// containerd is back.
func TestPullWhileContainerdDown(t *testing.T) {
	en := newEnv(t)
	if err := en.cd.Down(); err != nil {
		t.Fatalf("stopping containerd: %v", err)
	}
	up := false
	defer func() {
		if !up {
			_ = en.cd.Up()
		}
	}()
	pod := newPod("cddown", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "waiting: containerd unavailable", func(s corev1.PodStatus) bool {
		w := containerStatus(s, "web").State.Waiting
		return w != nil && strings.Contains(w.Message, "containerd unavailable")
	})
	if w := containerStatus(st, "web").State.Waiting; w.Reason != executor.ReasonContainerCreating {
		t.Errorf("waiting reason %q, want %q", w.Reason, executor.ReasonContainerCreating)
	}
	for _, ev := range en.e.Events(string(pod.UID)) {
		if strings.Contains(ev.Message, "Failed to pull") {
			t.Errorf("event %s: %s; want no pull failure while containerd is down", ev.Reason, ev.Message)
		}
	}
	if err := en.cd.Up(); err != nil {
		t.Fatalf("starting containerd: %v", err)
	}
	up = true
	en.waitStatus(pod.UID, 60*time.Second, "running after containerd is back", running)
	if cs := containerStatus(mustStatus(t, en, pod), "web"); cs.RestartCount != 0 {
		t.Errorf("restart count %d, want 0", cs.RestartCount)
	}
}

func mustStatus(t *testing.T, en *env, pod *corev1.Pod) corev1.PodStatus {
	t.Helper()
	st, ok := en.e.Status(string(pod.UID))
	if !ok {
		t.Fatal(errors.New("pod unknown"))
	}
	return st
}
