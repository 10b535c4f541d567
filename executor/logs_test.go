package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/executor"
)

// TestLogCaptureAndRotation: stdout and stderr land in the pod's log files in CRI
// format, rotate at the configured size, and Logs serves the current and the previous
// run.
func TestLogCaptureAndRotation(t *testing.T) {
	en := newEnv(t, executor.WithLogRotation(4096, 3))
	c := batch("talk")
	// 400 lines of ~40 bytes on stdout, one marker on stderr, then exit 1 (a restart).
	c.Command = []string{"/bin/sh", "-c", `i=0; while [ $i -lt 400 ]; do echo "line $i padding-padding-padding"; i=$((i+1)); done; sleep 0.3; echo oops >&2; sleep 0.5; exit 1`}
	pod := newPod("logs", c)
	pod.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	en.e.Sync([]executor.Pod{{Pod: pod}})
	en.waitStatus(pod.UID, 60*time.Second, "one restart", func(s corev1.PodStatus) bool {
		return containerStatus(s, "talk").RestartCount >= 1
	})

	dir := filepath.Join(en.dataDir, "executor", "pods", string(pod.UID), "logs", "talk")
	first := filepath.Join(dir, "0.log")
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatalf("log file of the first run: %v", err)
	}
	// CRI format: time stream tag message.
	// stdout and stderr are two pipes copied independently; the sleep orders them.
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	f := strings.SplitN(lines[len(lines)-1], " ", 4)
	if len(f) != 4 || f[1] != "stderr" || f[2] != "F" || f[3] != "oops" {
		t.Errorf("last record %q, want '<time> stderr F oops'", lines[len(lines)-1])
	} else if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
		t.Errorf("record time %q: %v", f[0], err)
	}
	if _, err := os.Stat(first + ".1"); err != nil {
		t.Errorf("no rotated file %s.1: %v", first, err)
	}
	if _, err := os.Stat(first + ".3"); err == nil {
		t.Errorf("%s.3 exists: more than 3 files kept", first)
	}
	if st, _ := os.Stat(first); st != nil && st.Size() > 4096+200 {
		t.Errorf("current file is %d bytes, over the 4096 rotation size", st.Size())
	}

	// The previous run's log through Logs: the last lines, in order.
	waitFor(t, 30*time.Second, "previous log", func() bool {
		var b strings.Builder
		err := en.e.Logs(context.Background(), "default", "logs", "talk", executor.LogOptions{Previous: true, Tail: 2}, &b)
		return err == nil && b.String() == "line 399 padding-padding-padding\noops\n"
	}, func() string {
		var b strings.Builder
		err := en.e.Logs(context.Background(), "default", "logs", "talk", executor.LogOptions{Previous: true, Tail: 2}, &b)
		return b.String() + " " + errString(err)
	})
	var b strings.Builder
	if err := en.e.Logs(context.Background(), "default", "logs", "nope", executor.LogOptions{}, &b); err == nil {
		t.Errorf("logs of an unknown container: no error")
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestMetrics: the sampler reads CPU and memory of running containers from
// task.Metrics.
func TestMetrics(t *testing.T) {
	en := newEnv(t)
	pod := newPod("metrics", echo("web"))
	en.e.Sync([]executor.Pod{{Pod: pod}})
	st := en.waitStatus(pod.UID, 60*time.Second, "running", running)
	_, _ = httpGet(podURL(st.PodIP, 8080, "/burn?ms=300"))
	var usage string
	waitFor(t, 30*time.Second, "pod usage with a CPU rate", func() bool {
		_ = en.e.SampleMetrics(context.Background())
		cpu, mem, ok := en.e.Metrics().PodUsage("default", "metrics")
		usage = strings.TrimSpace(strings.Join([]string{ftoa(cpu), utoa(mem)}, " "))
		return ok && mem > 0
	}, func() string { return usage })
}
