package controlplane

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestCopyPodStatusKeepsTerminalPhase(t *testing.T) {
	for _, tc := range []struct {
		cur, in, want corev1.PodPhase
	}{
		{corev1.PodRunning, corev1.PodSucceeded, corev1.PodSucceeded},
		{corev1.PodPending, corev1.PodRunning, corev1.PodRunning},
		{corev1.PodSucceeded, corev1.PodPending, corev1.PodSucceeded},
		{corev1.PodFailed, corev1.PodRunning, corev1.PodFailed},
		{corev1.PodSucceeded, corev1.PodSucceeded, corev1.PodSucceeded},
	} {
		dst := &corev1.Pod{Status: corev1.PodStatus{Phase: tc.cur}}
		copyPodStatus(dst, &corev1.Pod{Status: corev1.PodStatus{Phase: tc.in, Message: "new"}})
		if dst.Status.Phase != tc.want {
			t.Errorf("%s ← %s: phase %s, want %s", tc.cur, tc.in, dst.Status.Phase, tc.want)
		}
	}
}

func TestEventNameAggregates(t *testing.T) {
	a := eventName("CronJob", "default", "tick", "JobAlreadyActive", "m1")
	if a != eventName("CronJob", "default", "tick", "JobAlreadyActive", "m1") {
		t.Fatal("the same event has two names")
	}
	for _, other := range []string{
		eventName("CronJob", "default", "tick", "JobAlreadyActive", "m2"),
		eventName("Job", "default", "tick", "JobAlreadyActive", "m1"),
		eventName("CronJob", "other", "tick", "JobAlreadyActive", "m1"),
		eventName("CronJob", "default", "tick", "MissSchedule", "m1"),
	} {
		if other == a {
			t.Fatalf("different events share the name %s", a)
		}
	}
}
