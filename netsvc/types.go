package netsvc

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Session affinities of a Service (the values of Kubernetes' spec.sessionAffinity).
const (
	AffinityNone     = "None"
	AffinityClientIP = "ClientIP"
)

// DefaultAffinityTimeout is the ClientIP affinity timeout when a Service sets none
// (Kubernetes' default, 3 hours).
const DefaultAffinityTimeout = 10800 * time.Second

// ServiceKey names a Service.
type ServiceKey struct {
	Namespace, Name string
}

// String returns "namespace/name".
func (k ServiceKey) String() string { return k.Namespace + "/" + k.Name }

// Service is what the data plane and DNS need of a Service: plain data, copied from
// the control plane's view.
type Service struct {
	Namespace, Name string
	// ClusterIPs are the allocated VIPs, at most one per family. Empty for headless
	// services.
	ClusterIPs []netip.Addr
	// Headless is clusterIP: None: no VIP; DNS answers with the ready pods' IPs.
	Headless bool
	Ports    []ServicePort
	// SessionAffinity is AffinityNone (also for "") or AffinityClientIP.
	SessionAffinity string
	// AffinityTimeout bounds ClientIP affinity; zero means DefaultAffinityTimeout.
	AffinityTimeout time.Duration
}

// Key returns the service's key.
func (s *Service) Key() ServiceKey { return ServiceKey{s.Namespace, s.Name} }

// ServicePort is one port of a Service.
type ServicePort struct {
	// Name is the port's name; "" is allowed only for a service's single port.
	Name string
	// Protocol is "TCP" (also for ""), "UDP" or "SCTP".
	Protocol string
	// Port is the port on the VIPs.
	Port int32
	// NodePort, when non-zero, is also served on every local address of the node.
	NodePort int32
	// TargetPort is the container port by number or name; resolved per pod by
	// Endpoints into Endpoint.Ports.
	TargetPort intstr.IntOrString
}

// Endpoint is one ready address behind a Service. A dual-stack pod gives one
// Endpoint per IP family.
type Endpoint struct {
	IP netip.Addr
	// Ports maps the service port's name to the container port serving it. A
	// service port without an entry is not served by this endpoint.
	Ports       map[string]int32
	Ready       bool
	Terminating bool
	// Hostname is the pod's spec.hostname when its spec.subdomain names the
	// service (the <hostname>.<svc>.<ns>.svc.<domain> DNS name); otherwise "".
	Hostname string
	PodName  string
}

// Serving reports whether the endpoint should receive new connections: ready and
// not terminating.
func (e *Endpoint) Serving() bool { return e.Ready && !e.Terminating }

// State is the whole input of a Sync or DNS Update: every service and its
// endpoints. Endpoints that are not Serving are ignored.
type State struct {
	Services  []Service
	Endpoints map[ServiceKey][]Endpoint
}

// protocol returns the lower-case protocol name of p ("tcp" for "").
func (p *ServicePort) protocol() string {
	switch p.Protocol {
	case "UDP", "udp":
		return "udp"
	case "SCTP", "sctp":
		return "sctp"
	default:
		return "tcp"
	}
}
