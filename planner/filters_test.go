package planner

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner/plannertest"
)

var t0 = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

// TestUnplaceableReasons checks the exact reason text for named clusters.
func TestUnplaceableReasons(t *testing.T) {
	tests := []struct {
		name  string
		nodes []*corev1.Node
		dep   *appsv1.Deployment
		want  []Unplaceable
	}{
		{
			name: "memory and taint",
			nodes: []*corev1.Node{
				plannertest.Node("n1").CPU("4").Mem("2Gi").Obj(),
				plannertest.Node("n2").CPU("4").Mem("1Gi").Obj(),
				plannertest.Node("n3").CPU("4").Mem("8Gi").Taint("dedicated", "db", corev1.TaintEffectNoSchedule).Obj(),
			},
			dep:  plannertest.Deployment("web").Requests("1", "4Gi").Obj(),
			want: []Unplaceable{{App: "deployment/default/web", Pods: 1, Reason: "0/3 nodes fit: 2 insufficient memory (needs 4Gi, most free 2Gi), 1 untolerated taint dedicated=db:NoSchedule"}},
		},
		{
			name: "cpu, not ready, cordoned",
			nodes: []*corev1.Node{
				plannertest.Node("n1").CPU("500m").Mem("8Gi").Obj(),
				plannertest.Node("n2").CPU("4").Mem("8Gi").NotReady(t0).Obj(),
				plannertest.Node("n3").CPU("4").Mem("8Gi").Unschedulable().Obj(),
			},
			dep:  plannertest.Deployment("web").Replicas(2).Requests("1", "1Gi").Obj(),
			want: []Unplaceable{{App: "deployment/default/web", Pods: 2, Reason: "0/3 nodes fit: 1 insufficient cpu (needs 1, most free 500m), 1 node not ready, 1 node unschedulable"}},
		},
		{
			name:  "no nodes",
			dep:   plannertest.Deployment("web").Obj(),
			want:  []Unplaceable{{App: "deployment/default/web", Pods: 1, Reason: "0/0 nodes fit: no nodes"}},
			nodes: nil,
		},
		{
			name:  "pod slots",
			nodes: []*corev1.Node{plannertest.Node("n1").CPU("4").Mem("8Gi").Pods("0").Obj()},
			dep:   plannertest.Deployment("web").Obj(),
			want:  []Unplaceable{{App: "deployment/default/web", Pods: 1, Reason: "0/1 nodes fit: 1 too many pods (max 0)"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Compute(Input{Desired: plannertest.Desired(tt.dep), Nodes: tt.nodes, Now: t0})
			for i := range p.Unplaceable {
				p.Unplaceable[i].Revision = ""
			}
			if d := cmp.Diff(tt.want, p.Unplaceable); d != "" {
				t.Fatalf("unplaceable (-want +got):\n%s", d)
			}
			if len(p.Place) != 0 {
				t.Fatalf("placed %d pods, want none", len(p.Place))
			}
		})
	}
}

// TestPlacedPod checks the pod a placement carries: name, labels, annotations,
// owner, node and priority.
func TestPlacedPod(t *testing.T) {
	dep := plannertest.Deployment("web").Requests("100m", "64Mi").Pod(func(p *plannertest.PodSpecBuilder) { p.PriorityClass("high") }).Obj()
	dep.UID = "uid-1"
	p := Compute(Input{Desired: plannertest.Desired(dep), Nodes: []*corev1.Node{plannertest.Node("n1").CPU("1").Mem("1Gi").Obj()}, Now: t0, Seed: 3})
	if len(p.Place) != 1 {
		t.Fatalf("want 1 placement:\n%s", p)
	}
	pod := p.Place[0].Pod
	hash := TemplateHash(&dep.Spec.Template)
	ctrl := true
	prio := int32(1000)
	want := struct {
		Labels, Annotations map[string]string
		Owners              []metav1.OwnerReference
		Node                string
		Priority            *int32
		Prefix              string
	}{
		Labels:      map[string]string{"app": "web", LabelPodTemplateHash: hash},
		Annotations: map[string]string{AnnotationApp: "deployment/default/web", AnnotationRevision: "1"},
		Owners:      []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "uid-1", Controller: &ctrl}},
		Node:        "n1", Priority: &prio, Prefix: "web-" + hash + "-",
	}
	got := want
	got.Labels, got.Annotations, got.Owners, got.Node, got.Priority = pod.Labels, pod.Annotations, pod.OwnerReferences, pod.Spec.NodeName, pod.Spec.Priority
	got.Prefix = pod.Name[:len(pod.Name)-5]
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("placed pod (-want +got):\n%s", d)
	}
	if p.Place[0].Node != "n1" || pod.Namespace != "default" {
		t.Fatalf("placement on %q in %q", p.Place[0].Node, pod.Namespace)
	}
}

// TestSeedReplays: the same input and seed give the same plan; another seed
// may order nodes differently but places the same number of pods.
func TestSeedReplays(t *testing.T) {
	var nodes []*corev1.Node
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		nodes = append(nodes, plannertest.Node(n).CPU("4").Mem("8Gi").Obj())
	}
	in := Input{Desired: plannertest.Desired(plannertest.Deployment("web").Replicas(3).Requests("1", "1Gi").Obj()), Nodes: nodes, Now: t0, Seed: 42}
	a, b := Compute(in), Compute(in)
	if d := cmp.Diff(a.String(), b.String()); d != "" {
		t.Fatalf("same seed, different plans:\n%s", d)
	}
	in.Seed = 43
	if c := Compute(in); len(c.Place) != len(a.Place) {
		t.Fatalf("seed 43 placed %d, seed 42 placed %d", len(c.Place), len(a.Place))
	}
}

// TestUndefaultedInput: objects without the Kubernetes defaults (nil replicas,
// selector, strategy, resources; nodes without conditions or capacity) and nil
// entries must not crash Compute.
func TestUndefaultedInput(t *testing.T) {
	neg := int32(-3)
	in := Input{
		Desired: &manifest.Desired{
			Deployments: []*appsv1.Deployment{
				nil,
				{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: appsv1.DeploymentSpec{
					Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}}},
				{ObjectMeta: metav1.ObjectMeta{Name: "neg"}, Spec: appsv1.DeploymentSpec{Replicas: &neg,
					Strategy: appsv1.DeploymentStrategy{Type: "Bogus"}}},
			},
			Pods: []*corev1.Pod{nil, {ObjectMeta: metav1.ObjectMeta{Name: "p"}}},
		},
		Observed: []*corev1.Pod{nil, {ObjectMeta: metav1.ObjectMeta{Name: "stray", Annotations: map[string]string{AnnotationApp: "deployment/x/gone"}},
			Spec: corev1.PodSpec{NodeName: "nowhere"}}},
		Nodes: []*corev1.Node{nil, {ObjectMeta: metav1.ObjectMeta{Name: "empty"}}, plannertest.Node("ok").CPU("1").Mem("1Gi").Obj()},
		Apps:  map[string]AppState{"deployment/default/bare": {Target: "missing", Pin: &Pin{Revision: "nope"}, Failed: &FailedRollout{Revision: "x", RollbackTo: "y"}}},
		Now:   t0,
	}
	p := Compute(in)
	if len(p.Place) != 2 {
		t.Fatalf("want the bare Deployment's and the Pod's pods placed on node ok:\n%s", p)
	}
	for _, pl := range p.Place {
		if pl.Node != "ok" {
			t.Fatalf("placed on %s:\n%s", pl.Node, p)
		}
	}
	if len(p.Stop) != 1 || p.Stop[0].Pod != "stray" {
		t.Fatalf("want the stray pod of a deleted app pruned:\n%s", p)
	}
}

func TestTolerations(t *testing.T) {
	taint := corev1.Taint{Key: "k", Value: "v", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name string
		tol  corev1.Toleration
		want bool
	}{
		{"equal", corev1.Toleration{Key: "k", Value: "v", Operator: corev1.TolerationOpEqual}, true},
		{"default operator is equal", corev1.Toleration{Key: "k", Value: "v"}, true},
		{"other value", corev1.Toleration{Key: "k", Value: "w"}, false},
		{"exists", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists}, true},
		{"exists everything", corev1.Toleration{Operator: corev1.TolerationOpExists}, true},
		{"other effect", corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}, false},
		{"empty key with equal tolerates nothing", corev1.Toleration{Value: "v"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toleratesTaint(&tt.tol, &taint); got != tt.want {
				t.Fatalf("toleratesTaint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNodeSelectorOperators(t *testing.T) {
	n := &nodeInfo{name: "n1", labels: map[string]string{"zone": "a", "cores": "16"}}
	req := func(key string, op corev1.NodeSelectorOperator, vals ...string) *corev1.NodeSelectorTerm {
		return &corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	tests := []struct {
		name string
		term *corev1.NodeSelectorTerm
		want bool
	}{
		{"in", req("zone", corev1.NodeSelectorOpIn, "a", "b"), true},
		{"not in", req("zone", corev1.NodeSelectorOpNotIn, "a"), false},
		{"not in, missing label", req("disk", corev1.NodeSelectorOpNotIn, "ssd"), true},
		{"exists", req("zone", corev1.NodeSelectorOpExists), true},
		{"does not exist", req("zone", corev1.NodeSelectorOpDoesNotExist), false},
		{"gt", req("cores", corev1.NodeSelectorOpGt, "8"), true},
		{"lt", req("cores", corev1.NodeSelectorOpLt, "8"), false},
		{"gt not a number", req("zone", corev1.NodeSelectorOpGt, "8"), false},
		{"empty term", &corev1.NodeSelectorTerm{}, false},
		{"field name", &corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := matchNodeSelectorTerm(tt.term, n); got != tt.want {
				t.Fatalf("match = %v, want %v", got, tt.want)
			}
		})
	}
}
