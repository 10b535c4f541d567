package netsvc

import (
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Endpoints selects the endpoints of svc among pods: pods of the service's
// namespace whose labels match spec.selector, that are Ready (condition Ready=True),
// not terminating (no deletionTimestamp), not finished (phase Succeeded/Failed) and
// have an IP. Each pod IP (status.podIPs, or status.podIP) gives one Endpoint whose
// Ports resolve every service port's targetPort: a number is used as is (0 or unset
// means the service port), a name is looked up among the pod's containers' ports
// with the same protocol; a name no container defines leaves that port out for this
// pod. A service without a selector has no endpoints here. The result is sorted by
// IP and pod name; nil svc gives nil.
func Endpoints(svc *corev1.Service, pods []*corev1.Pod) []Endpoint {
	if svc == nil || len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var out []Endpoint
	for _, pod := range pods {
		if pod == nil || pod.Namespace != svc.Namespace || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if pod.DeletionTimestamp != nil || !podReady(pod) ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		ports := map[string]int32{}
		for _, sp := range svc.Spec.Ports {
			if p, ok := resolveTargetPort(&sp, pod); ok {
				ports[sp.Name] = p
			}
		}
		hostname := ""
		if pod.Spec.Subdomain == svc.Name {
			hostname = pod.Spec.Hostname
		}
		for _, ip := range podIPs(pod) {
			out = append(out, Endpoint{IP: ip, Ports: ports, Ready: true, Hostname: hostname, PodName: pod.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].IP.Compare(out[j].IP); c != 0 {
			return c < 0
		}
		return out[i].PodName < out[j].PodName
	})
	return out
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podIPs(pod *corev1.Pod) []netip.Addr {
	var raw []string
	for _, ip := range pod.Status.PodIPs {
		raw = append(raw, ip.IP)
	}
	if len(raw) == 0 && pod.Status.PodIP != "" {
		raw = append(raw, pod.Status.PodIP)
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, s := range raw {
		a, err := netip.ParseAddr(s)
		if err != nil || seen[a.Unmap()] {
			continue // a malformed IP is not routable; the pod is skipped for it
		}
		seen[a.Unmap()] = true
		out = append(out, a.Unmap())
	}
	return out
}

func resolveTargetPort(sp *corev1.ServicePort, pod *corev1.Pod) (int32, bool) {
	tp := sp.TargetPort
	if tp.Type == 0 { // intstr.Int
		if tp.IntVal == 0 {
			return sp.Port, true
		}
		return tp.IntVal, true
	}
	if tp.StrVal == "" {
		return sp.Port, true
	}
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			cpProto := cp.Protocol
			if cpProto == "" {
				cpProto = corev1.ProtocolTCP
			}
			if cp.Name == tp.StrVal && cpProto == proto {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}
