package executor_test

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/backoff"
)

func httpProbe(path string, period int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
		PeriodSeconds:    period,
		FailureThreshold: 1,
		TimeoutSeconds:   1,
	}
}

// TestLivenessRestart: a failing liveness probe restarts the container (restart count
// goes up, the pod keeps its IP).
func TestLivenessRestart(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.LivenessProbe = httpProbe("/healthz", 1)
	pod := newPod("live", web)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "running", running)
	// Turn the health toggle on: /healthz answers 500 from now on.
	_, _ = httpGet(podURL(st.PodIP, 8080, "/healthz?fail=1"))
	st2 := en.waitStatus(pod.UID, 60*time.Second, "restarted and running", func(s corev1.PodStatus) bool {
		return running(s) && containerStatus(s, "web").RestartCount >= 1
	})
	if st2.PodIP != st.PodIP {
		t.Errorf("pod IP changed across a container restart: %s → %s", st.PodIP, st2.PodIP)
	}
	// The new instance is healthy again.
	if body := waitHTTP(t, podURL(st.PodIP, 8080, "/healthz")); body == "" {
		t.Errorf("empty healthz body")
	}
	last := containerStatus(st2, "web").LastTerminationState.Terminated
	if last == nil {
		t.Errorf("no last termination state after a liveness restart")
	}
}

// TestReadinessFlips: the Ready condition follows the readiness probe both ways.
func TestReadinessFlips(t *testing.T) {
	en := newEnv(t)
	web := echo("web")
	web.ReadinessProbe = httpProbe("/ready", 1)
	pod := newPod("ready", web)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "ready", ready)
	post := func(state string) {
		resp, err := http.Post(podURL(st.PodIP, 8080, "/ready?state="+state), "text/plain", nil)
		if err != nil {
			t.Fatalf("POST /ready: %v", err)
		}
		resp.Body.Close()
	}
	post("off")
	en.waitStatus(pod.UID, 30*time.Second, "not ready", func(s corev1.PodStatus) bool { return !ready(s) && running(s) })
	post("on")
	en.waitStatus(pod.UID, 30*time.Second, "ready again", ready)
	if n := containerStatus(st, "web").RestartCount; n != 0 {
		t.Errorf("readiness changes restarted the container (%d)", n)
	}
}

// TestCrashLoopBackOff: a container that keeps failing is restarted with a growing
// back-off and shows CrashLoopBackOff while it waits; with OnFailure a success ends it.
func TestCrashLoopBackOff(t *testing.T) {
	// Waits long enough to be seen even on a loaded machine: 0, 1 s, 2 s, ….
	en := newEnv(t, executor.WithBackoff(backoff.Policy{Initial: time.Second, Max: 8 * time.Second, ResetAfter: time.Minute}))
	c := batch("crash", "--exit", "3")
	pod := newPod("crash", c)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "three restarts", func(s corev1.PodStatus) bool {
		return containerStatus(s, "crash").RestartCount >= 3
	})
	if !en.sawUpdate(func(u executor.PodStatusUpdate) bool {
		return waitingReason(u.Status, "crash") == executor.ReasonCrashLoopBackOff
	}) {
		t.Errorf("never reported CrashLoopBackOff: %s", en.describe(pod.UID))
	}
	last := containerStatus(st, "crash").LastTerminationState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != executor.ReasonError {
		t.Errorf("last termination = %+v, want Error exit 3", last)
	}
	// The back-off grows: the CrashLoopBackOff messages name 1s, then 2s, ….
	var waits []time.Duration
	en.mu.Lock()
	for _, tu := range en.updates {
		w := containerStatus(tu.u.Status, "crash").State.Waiting
		if w == nil || w.Reason != executor.ReasonCrashLoopBackOff {
			continue
		}
		f := strings.Fields(w.Message)
		if len(f) < 2 {
			continue
		}
		d, err := time.ParseDuration(f[1])
		if err == nil && (len(waits) == 0 || waits[len(waits)-1] != d) {
			waits = append(waits, d)
		}
	}
	en.mu.Unlock()
	if len(waits) < 2 || waits[1] <= waits[0] {
		t.Errorf("back-off waits %v, want a growing sequence", waits)
	}
}

// TestRestartPolicyNever: with Never a completed container stays terminated and the
// pod Succeeds.
func TestRestartPolicyNever(t *testing.T) {
	en := newEnv(t)
	pod := newPod("once", batch("job", "--exit", "0"))
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "Succeeded", func(s corev1.PodStatus) bool { return s.Phase == corev1.PodSucceeded })
	cs := containerStatus(st, "job")
	if cs.RestartCount != 0 || cs.State.Terminated == nil || cs.State.Terminated.Reason != executor.ReasonCompleted {
		t.Errorf("container = restarts %d state %s, want Completed without restarts", cs.RestartCount, stateString(cs.State))
	}
}

// TestDeadSandboxRecreated: a crash-looping pod whose network namespace file was
// removed behind the agent's back gets a new sandbox, and its container runs again
// (instead of failing for ever to join a namespace that is gone).
func TestDeadSandboxRecreated(t *testing.T) {
	en := newEnv(t, executor.WithBackoff(backoff.Policy{Initial: time.Second, Max: 2 * time.Second, ResetAfter: time.Minute}))
	c := batch("crash", "--exit", "3")
	pod := newPod("deadns", c)
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 60*time.Second, "a first restart", func(s corev1.PodStatus) bool {
		return containerStatus(s, "crash").RestartCount >= 1
	})
	netns := ""
	en.mu.Lock()
	for _, tu := range en.updates {
		for _, ev := range tu.u.Events {
			if ev.Reason == "SandboxReady" {
				if f := strings.Fields(ev.Message); len(f) > 3 {
					netns = strings.TrimSuffix(f[2], ",")
				}
			}
		}
	}
	en.mu.Unlock()
	if netns == "" || !strings.HasPrefix(netns, "/") {
		t.Fatalf("no netns path in the SandboxReady event: %s", en.describe(pod.UID))
	}
	_ = exec.Command("umount", netns).Run()
	if err := os.Remove(netns); err != nil {
		t.Fatalf("remove %s: %v", netns, err)
	}
	before := containerStatus(statusOf(en, pod.UID), "crash").RestartCount
	waitFor(t, 60*time.Second, "a new sandbox and a restart after it", func() bool {
		recreated := en.sawUpdate(func(u executor.PodStatusUpdate) bool {
			for _, ev := range u.Events {
				if ev.Reason == "SandboxChanged" {
					return true
				}
			}
			return false
		})
		return recreated && containerStatus(statusOf(en, pod.UID), "crash").RestartCount >= before+2
	}, func() string { return en.describe(pod.UID) })
	if _, err := os.Stat(netns); err != nil {
		t.Errorf("the re-created sandbox has no netns at %s: %v", netns, err)
	}
}

// statusOf is the executor's current status of a pod (zero when it has none).
func statusOf(en *env, uid types.UID) corev1.PodStatus {
	st, _ := en.e.Status(string(uid))
	return st
}
