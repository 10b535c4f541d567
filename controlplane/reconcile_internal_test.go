package controlplane

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/planner"
)

func TestWaitReasons(t *testing.T) {
	pod := func(name, app string, st corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{planner.AnnotationApp: app}}, Status: st}
	}
	ready := corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	held := corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, Message: "bound"},
		{Type: "SecretUnavailable", Status: corev1.ConditionTrue, Message: "no secret cache"}}}
	pull := corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "not found"}}}}}
	creating := corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}
	mount := corev1.PodStatus{Phase: corev1.PodPending, Reason: "FailedMount", Message: "configMap x not found"}
	got := waitReasons([]*corev1.Pod{
		pod("a-1", "deployment/default/a", ready),
		pod("b-1", "deployment/default/b", held),
		pod("c-1", "deployment/default/c", pull),
		pod("d-1", "deployment/default/d", creating),
		pod("e-1", "deployment/default/e", mount),
		pod("x", "", held), // not an app's pod
	})
	want := map[string]string{
		"deployment/default/b": "waiting: pod b-1: SecretUnavailable: no secret cache",
		"deployment/default/c": "waiting: pod c-1: ImagePullBackOff: not found",
		"deployment/default/e": "waiting: pod e-1: FailedMount: configMap x not found",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("waitReasons (-want +got):\n%s", d)
	}
}

func TestHistoryTrimsToLimit(t *testing.T) {
	st := planner.AppState{Target: "h12"}
	for i := 1; i <= 12; i++ {
		h := "h" + strconv.Itoa(i)
		st.Revisions = append(st.Revisions, planner.Revision{Number: int64(i), Hash: h,
			Template: &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: "img:" + strconv.Itoa(i)}}}}})
	}
	good := &goodRevision{revision: "c0ffee", gitHash: map[string]string{"deployment/default/web": "h12"}, historyLimit: map[string]int{}}
	h := history(st, nil, good, "deployment/default/web")
	if len(h) != DefaultRevisionHistoryLimit || h[0].Number != 3 || !h[len(h)-1].Current || h[len(h)-1].GitRevision != "c0ffee" || h[len(h)-1].Images[0] != "img:12" {
		t.Fatalf("default limit: %+v", h)
	}
	good.historyLimit["deployment/default/web"] = 2
	if h := history(st, h, good, "deployment/default/web"); len(h) != 2 || h[0].Number != 11 {
		t.Fatalf("revisionHistoryLimit 2: %+v", h)
	}
}
