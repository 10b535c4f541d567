package controlplane

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/netsvc"
	"gantry.io/gantry/store"
)

// benchCluster is n services of 4 endpoints each, as the network hub holds them.
func benchCluster(n int) (map[string]*corev1.Service, map[string]*store.EndpointSlice, []*corev1.Pod) {
	services := map[string]*corev1.Service{}
	slices := map[string]*store.EndpointSlice{}
	var pods []*corev1.Pod
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		services["default/"+name] = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, ClusterIP: fmt.Sprintf("10.96.%d.%d", i/250, i%250+1),
				ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
				Ports:      []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}}}}
		sl := &store.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
		for j := range 4 {
			ip := netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(i%250*4/4 + j)})
			sl.Endpoints = append(sl.Endpoints, store.Endpoint{IP: ip, Ports: map[string]int32{"": 8080}, Ready: true, PodName: fmt.Sprintf("%s-%d", name, j)})
			pods = append(pods, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("%s-%d", name, j), Labels: map[string]string{"app": name}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip.String(), Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}})
		}
		slices["default/"+name] = sl
	}
	return services, slices, pods
}

// BenchmarkNetworkBuild10k is the network hub's work per change at 10,000
// services × 4 endpoints: build the Network and encode it once for every stream.
func BenchmarkNetworkBuild10k(b *testing.B) {
	services, slices, _ := benchCluster(10000)
	nodes := map[string]netsvc.Node{"n1": {Name: "n1"}}
	b.ResetTimer()
	var size int
	for b.Loop() {
		n := buildNetwork(services, slices, nodes, "cluster.local")
		out, _, err := encodeNetwork(n)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB/network")
}

// BenchmarkEndpoints10k is the services controller's endpoint selection per
// round at 10,000 services × 4 pods (one namespace).
func BenchmarkEndpoints10k(b *testing.B) {
	services, _, pods := benchCluster(10000)
	b.ResetTimer()
	for b.Loop() {
		idx := candidatePods(pods)
		for _, s := range services {
			_ = endpointsFor(s, idx.forService(s))
		}
	}
}
