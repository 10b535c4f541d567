package controlplane

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/api"
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

// benchHub is a network hub holding n services × 4 endpoints, loaded.
func benchHub(n int) *networkHub {
	services, slices, _ := benchCluster(n)
	h := newNetworkHub(nil, "cluster.local")
	for k, s := range services {
		s.ResourceVersion = "1"
		slices[k].ResourceVersion = "1"
	}
	h.services, h.slices = services, slices
	h.nodes["n1"] = netsvc.Node{Name: "n1"}
	for _, k := range []api.Kind{store.KindService, store.KindEndpointSlice, api.KindNode} {
		h.loaded[k] = true
	}
	return h
}

// BenchmarkNetworkFull10k is the network hub's first Network (or a resync's) at
// 10,000 services × 4 endpoints: every service encoded, assembled, hashed.
func BenchmarkNetworkFull10k(b *testing.B) {
	h := benchHub(10000)
	for b.Loop() {
		clear(h.parts)
		h.curRev = -1 // publish again
		h.rebuild()
	}
	b.ReportMetric(float64(len(h.curJSON))/(1<<20), "MiB/network")
}

// BenchmarkNetworkOneChange10k is the hub's work for one endpoint change at
// 10,000 services: one service encoded again, the rest reused.
func BenchmarkNetworkOneChange10k(b *testing.B) {
	h := benchHub(10000)
	h.rebuild()
	i := 0
	for b.Loop() {
		i++
		sl := h.slices["default/svc-00042"]
		sl.ResourceVersion = strconv.Itoa(i + 1)
		sl.Endpoints[0].Ready = i%2 == 0
		prev := h.curRev
		h.rebuild()
		if h.curRev == prev {
			b.Fatal("the change did not change the revision")
		}
	}
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
