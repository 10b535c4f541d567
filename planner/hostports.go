package planner

import (
	corev1 "k8s.io/api/core/v1"
)

// hostPortFilter rejects nodes where one of the pod's hostPorts is taken. A port
// bound on 0.0.0.0 (or no hostIP) conflicts with the same port on any IP.
type hostPortFilter struct{}

func (hostPortFilter) check(c *candidate, n *nodeInfo) rejection {
	if len(c.ports) == 0 || len(n.ports) == 0 {
		return rejection{}
	}
	for _, p := range c.ports {
		if n.ports[p] {
			return rejection{code: rejPort, port: p}
		}
		if p.ip == "" {
			for q := range n.ports {
				if q.port == p.port && q.proto == p.proto {
					return rejection{code: rejPort, port: p}
				}
			}
		} else if n.ports[portKey{proto: p.proto, port: p.port}] {
			return rejection{code: rejPort, port: p}
		}
	}
	return rejection{}
}

// hostPorts lists the host ports a pod spec binds. Protocol defaults to TCP;
// 0.0.0.0 is stored as "" (any address).
func hostPorts(spec *corev1.PodSpec) []portKey {
	var out []portKey
	for i := range spec.Containers {
		for _, p := range spec.Containers[i].Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := string(p.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			ip := p.HostIP
			if ip == "0.0.0.0" || ip == "::" {
				ip = ""
			}
			out = append(out, portKey{proto: proto, ip: ip, port: p.HostPort})
		}
	}
	return out
}

var _ filter = hostPortFilter{}
