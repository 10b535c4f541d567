package netsvc

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type podOpt func(*corev1.Pod)

func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}, {Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ips(ss ...string) podOpt {
	return func(p *corev1.Pod) {
		for _, s := range ss {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: s})
		}
		if len(ss) > 0 {
			p.Status.PodIP = ss[0]
		}
	}
}

func TestEndpoints(t *testing.T) {
	now := metav1.Now()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9090)},
			{Name: "plain", Port: 7000},
			{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
			{Name: "wrong-proto", Port: 54, TargetPort: intstr.FromString("dns")}, // TCP port named dns: none
		}},
	}
	pods := []*corev1.Pod{
		pod("b", ips("10.244.0.6", "fd00:244::6")),
		pod("a", ips("10.244.0.5"), func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "a-host", "web" }),
		pod("unready", ips("10.244.0.7"), func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }),
		pod("no-condition", ips("10.244.0.8"), func(p *corev1.Pod) { p.Status.Conditions = nil }),
		pod("terminating", ips("10.244.0.9"), func(p *corev1.Pod) { p.DeletionTimestamp = &now }),
		pod("done", ips("10.244.0.10"), func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("other-app", ips("10.244.0.11"), func(p *corev1.Pod) { p.Labels["app"] = "db" }),
		pod("other-ns", ips("10.244.0.12"), func(p *corev1.Pod) { p.Namespace = "shop" }),
		pod("no-ip"),
		pod("other-subdomain", ips("10.244.0.13"), func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = "x", "db" }),
		nil,
	}
	ports := map[string]int32{"http": 8080, "admin": 9090, "plain": 7000, "dns": 5353}
	want := []Endpoint{
		{IP: netip.MustParseAddr("10.244.0.5"), Ports: ports, Ready: true, Hostname: "a-host", PodName: "a"},
		{IP: netip.MustParseAddr("10.244.0.6"), Ports: ports, Ready: true, PodName: "b"},
		{IP: netip.MustParseAddr("10.244.0.13"), Ports: ports, Ready: true, PodName: "other-subdomain"},
		{IP: netip.MustParseAddr("fd00:244::6"), Ports: ports, Ready: true, PodName: "b"},
	}
	got := Endpoints(svc, pods)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("Endpoints (-want +got):\n%s", diff)
	}

	svc.Spec.Selector = nil
	if got := Endpoints(svc, pods); got != nil {
		t.Errorf("service without selector got endpoints %v", got)
	}
	if got := Endpoints(nil, pods); got != nil {
		t.Errorf("nil service got endpoints %v", got)
	}
}
