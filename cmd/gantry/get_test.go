package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files of the CLI output tests")

var goldenNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(goldenNow.Add(-d)) }

func raw(t *testing.T, objs ...any) []json.RawMessage {
	var out []json.RawMessage
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func goldenNodes() []any {
	ready := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", CreationTimestamp: ago(3*time.Hour + 10*time.Minute),
			Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}},
		Spec: corev1.NodeSpec{PodCIDRs: []string{"10.244.0.0/24", "fd00:10:244::/64"}},
		Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: api.ReasonAgentReady, LastHeartbeatTime: ago(3 * time.Second)}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.1.10"}},
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("24Gi")},
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: "gantry", OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.1.0-18-amd64", ContainerRuntimeVersion: "containerd", Architecture: "amd64"},
		},
	}
	lost := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-with-a-long-name-2", CreationTimestamp: ago(5 * time.Minute)},
		Spec:       corev1.NodeSpec{Unschedulable: true},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown,
			Reason: api.ReasonHeartbeatMissing, Message: "no heartbeat", LastHeartbeatTime: ago(40 * time.Second)}}},
	}
	return []any{ready, lost}
}

func goldenPods() []any {
	running := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1", CreationTimestamp: ago(45 * time.Second), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "echo:1"}, {Name: "sidecar", Image: "busybox"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00:10:244::5"}},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: "app", Ready: true, RestartCount: 2, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(30 * time.Second)}}},
				{Name: "sidecar", Ready: false, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}},
			},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady"}}},
	}
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "job-abc", CreationTimestamp: ago(26 * time.Hour)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "batch"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodPending},
	}
	lost := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db-0", CreationTimestamp: ago(9 * 24 * time.Hour)},
		Spec:       corev1.PodSpec{NodeName: "node-with-a-long-name-2", Containers: []corev1.Container{{Name: "db", Image: "db"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.9",
			Conditions: []corev1.PodCondition{{Type: api.PodConditionNodeLost, Status: corev1.ConditionTrue, Reason: api.ReasonHeartbeatMissing}}},
	}
	return []any{running, pending, lost}
}

func goldenEvents() []any {
	return []any{
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1.a"}, Type: "Normal", Reason: "Started",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1"}, Message: "Started container app", LastTimestamp: ago(20 * time.Second)},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1.b"}, Type: "Warning", Reason: "BackOff",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1"}, Message: "Back-off restarting failed container sidecar", LastTimestamp: ago(5 * time.Second)},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-1.0"}, Type: "Normal", Reason: "Pulled",
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1"}, Message: "image echo:1", FirstTimestamp: ago(2*time.Minute + 5*time.Second)},
	}
}

// TestGetOutputGolden renders nodes, pods and events in every human format and
// compares with testdata/get-*.golden (go test ./cmd/gantry -run Golden -rewrite
// regenerates them; review the diff).
func TestGetOutputGolden(t *testing.T) {
	tests := []struct {
		name   string
		kind   api.Kind
		format string
		allNS  bool
		objs   []any
	}{
		{"nodes", api.KindNode, "", false, goldenNodes()},
		{"nodes-wide", api.KindNode, "wide", false, goldenNodes()},
		{"pods", api.KindPod, "", false, goldenPods()},
		{"pods-all-namespaces-wide", api.KindPod, "wide", true, goldenPods()},
		{"pods-name", api.KindPod, "name", false, goldenPods()},
		{"events", api.KindEvent, "", false, goldenEvents()},
		{"events-all-namespaces", api.KindEvent, "", true, goldenEvents()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printObjects(&out, tt.kind, tt.format, tt.allNS, goldenNow, raw(t, tt.objs...), true); err != nil {
				t.Fatal(err)
			}
			cliGolden(t, "get-"+tt.name+".golden", out.Bytes())
		})
	}
}

func TestDescribeGolden(t *testing.T) {
	var out bytes.Buffer
	pods := goldenPods()
	events := []corev1.Event{}
	for _, e := range goldenEvents() {
		events = append(events, *e.(*corev1.Event))
	}
	if err := describePod(&out, goldenNow, pods[0].(*corev1.Pod), events); err != nil {
		t.Fatal(err)
	}
	cliGolden(t, "describe-pod.golden", out.Bytes())
	out.Reset()
	if err := describeNode(&out, goldenNow, goldenNodes()[0].(*corev1.Node), []corev1.Pod{*pods[0].(*corev1.Pod)}, nil); err != nil {
		t.Fatal(err)
	}
	cliGolden(t, "describe-node.golden", out.Bytes())
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		5 * time.Second: "5s", 90 * time.Second: "90s", 5 * time.Minute: "5m", 5*time.Minute + 30*time.Second: "5m30s",
		3 * time.Hour: "3h", 3*time.Hour + 20*time.Minute: "3h20m", 50 * time.Hour: "2d2h", 30 * 24 * time.Hour: "30d",
		-time.Minute: "0s",
	} {
		if got := age(goldenNow, goldenNow.Add(-d)); got != want {
			t.Errorf("age(%v) = %q, want %q", d, got, want)
		}
	}
	if age(goldenNow, time.Time{}) != "<unknown>" {
		t.Errorf("zero time")
	}
}

func TestReadPods(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	two := write("two.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n---\n# second\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: c, image: i}]}\n")
	pods, err := readPods(two, nil)
	if err != nil || len(pods) != 2 || pods[1].Name != "b" {
		t.Fatalf("two pods: %v %v", pods, err)
	}
	for name, doc := range map[string]string{
		"deployment": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n",
		"unknown":    "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containerz: []}\n",
		"noname":     "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, image: i}]}\n",
		"empty":      "",
	} {
		if _, err := readPods(write(name+".yaml", doc), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func cliGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *rewrite {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}
