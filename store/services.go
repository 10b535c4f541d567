package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"gantry.io/gantry/api"
	"gantry.io/gantry/netsvc/ipalloc"
)

// Kinds this file adds. Both are namespaced and written only by the control
// plane's services controller.
const (
	// KindService holds the Services of the applied git revision with what the
	// server allocated filled in: spec.clusterIP(s), spec.ipFamilies and
	// spec.ports[].nodePort.
	KindService api.Kind = "services"
	// KindEndpointSlice holds one EndpointSlice per Service, of the same name.
	KindEndpointSlice api.Kind = "endpointslices"
)

// ServiceConditionAllocated is the condition type on a stored Service
// (status.conditions) that says whether its VIPs and NodePorts were allocated:
// False with the allocator's error (a requested clusterIP taken, a range
// exhausted) otherwise.
const ServiceConditionAllocated = "Allocated"

// EndpointSlice is the endpoints of one Service: every pod its selector matches
// that has an IP and has not finished, ready or not. Agents program only the
// serving ones (Ready and not Terminating).
type EndpointSlice struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	// Endpoints are sorted by IP, then pod name. A dual-stack pod appears once
	// per address.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one pod address behind a Service.
type Endpoint struct {
	IP netip.Addr `json:"ip"`
	// Ports maps a service port's name ("" for a single unnamed port) to the
	// container port serving it; a service port missing here is not served by
	// this pod (a named targetPort its containers do not define).
	Ports map[string]int32 `json:"ports,omitempty"`
	// Ready is the pod's Ready condition (false while its node is lost).
	Ready bool `json:"ready"`
	// Terminating: the pod is being deleted (metadata.deletionTimestamp).
	Terminating bool   `json:"terminating,omitempty"`
	Hostname    string `json:"hostname,omitempty"`
	PodName     string `json:"podName"`
	NodeName    string `json:"nodeName,omitempty"`
}

// Serving reports whether the endpoint gets new connections.
func (e *Endpoint) Serving() bool { return e.Ready && !e.Terminating }

// DeepCopyObject implements runtime.Object (a JSON round trip: plain data).
func (e *EndpointSlice) DeepCopyObject() runtime.Object {
	if e == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("store.EndpointSlice is plain data: %v", err)) // cannot happen
	}
	out := &EndpointSlice{}
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("store.EndpointSlice is plain data: %v", err)) // cannot happen
	}
	return out
}

// Services is the typed access to the allocated Services.
func (s *Store) Services() *Resource[corev1.Service, *corev1.Service] {
	return NewResource[corev1.Service](s, KindService)
}

// EndpointSlices is the typed access to the Services' endpoints.
func (s *Store) EndpointSlices() *Resource[EndpointSlice, *EndpointSlice] {
	return NewResource[EndpointSlice](s, KindEndpointSlice)
}

// serviceAllocationsKey is the one key holding the VIP and NodePort allocator's
// state (ipalloc.State as JSON).
func (s *Store) serviceAllocationsKey() string { return s.prefix + "allocations/services" }

// ServiceAllocations returns the stored VIP and NodePort allocations and the
// revision to pass to SaveServiceAllocations; an empty State and revision 0 when
// nothing was stored yet.
func (s *Store) ServiceAllocations(ctx context.Context) (ipalloc.State, int64, error) {
	resp, err := s.cli.Get(ctx, s.serviceAllocationsKey())
	if err != nil {
		return ipalloc.State{}, 0, unavailable("get service allocations", err)
	}
	if len(resp.Kvs) == 0 {
		return ipalloc.State{}, 0, nil
	}
	var st ipalloc.State
	if err := decode("allocations", resp.Kvs[0].Value, &st); err != nil {
		return ipalloc.State{}, 0, fmt.Errorf("service allocations: %w", err)
	}
	return st, resp.Kvs[0].ModRevision, nil
}

// SaveServiceAllocations stores st if the allocations are still at revision rev
// (0: none stored yet): compare-and-swap, so two servers never hand out one VIP
// twice. Returns the new revision, or an error wrapping api.ErrConflict if the
// allocations changed since rev.
func (s *Store) SaveServiceAllocations(ctx context.Context, st ipalloc.State, rev int64) (int64, error) {
	val, err := encode("allocations", st)
	if err != nil {
		return 0, err
	}
	key := s.serviceAllocationsKey()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return 0, unavailable("save service allocations", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("service allocations changed since revision %d: %w", rev, api.ErrConflict)
	}
	return resp.Header.Revision, nil
}
