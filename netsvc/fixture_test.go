package netsvc

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// sampleState covers every rule shape: a dual-stack service with two endpoints and
// a NodePort, a ClientIP-affinity service, a service without endpoints, a UDP
// service, and a headless service (no rules).
func sampleState() State {
	return State{
		Services: []Service{
			{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{addr("10.96.0.10"), addr("fd00:10:96::a")},
				Ports: []ServicePort{{Name: "http", Protocol: "TCP", Port: 80, NodePort: 30080, TargetPort: intstr.FromString("http")}}},
			{Namespace: "default", Name: "sticky", ClusterIPs: []netip.Addr{addr("10.96.0.11")},
				SessionAffinity: AffinityClientIP, AffinityTimeout: 10 * time.Minute,
				Ports: []ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
			{Namespace: "default", Name: "empty", ClusterIPs: []netip.Addr{addr("10.96.0.12")},
				Ports: []ServicePort{{Port: 80}}},
			{Namespace: "kube-system", Name: "dns", ClusterIPs: []netip.Addr{addr("10.96.0.2")},
				Ports: []ServicePort{{Name: "dns", Protocol: "UDP", Port: 53}, {Name: "dns-tcp", Protocol: "TCP", Port: 53}}},
			{Namespace: "default", Name: "db", Headless: true, Ports: []ServicePort{{Port: 5432}}},
		},
		Endpoints: map[ServiceKey][]Endpoint{
			{"default", "web"}: {
				{IP: addr("10.244.0.5"), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "web-a"},
				{IP: addr("fd00:244::5"), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "web-a"},
				{IP: addr("10.244.0.6"), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "web-b"},
				{IP: addr("fd00:244::6"), Ports: map[string]int32{"http": 8080}, Ready: true, PodName: "web-b"},
				{IP: addr("10.244.0.7"), Ports: map[string]int32{"http": 8080}, Ready: false, PodName: "web-c"},
				{IP: addr("10.244.0.8"), Ports: map[string]int32{"http": 8080}, Ready: true, Terminating: true, PodName: "web-d"},
			},
			{"default", "sticky"}: {
				{IP: addr("10.244.0.9"), Ports: map[string]int32{"": 8080}, Ready: true},
				{IP: addr("10.244.0.10"), Ports: map[string]int32{"": 8080}, Ready: true},
			},
			{"kube-system", "dns"}: {
				{IP: addr("10.244.0.2"), Ports: map[string]int32{"dns": 5353, "dns-tcp": 5353}, Ready: true},
			},
			{"default", "db"}: {
				{IP: addr("10.244.0.20"), Ports: map[string]int32{"": 5432}, Ready: true, Hostname: "db-0", PodName: "db-0"},
			},
		},
	}
}
