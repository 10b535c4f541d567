package controlplane_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
)

func testPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func generated(p *corev1.Pod) *corev1.Pod {
	p.GenerateName = "p-"
	return p
}

func testNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// TestAuthenticationAndAuthorization runs every kind of caller against every kind of
// request over the server's real HTTPS listener and checks 2xx / 401 / 403.
func TestAuthenticationAndAuthorization(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	admin := e.admin(t)

	credsA, credsB := e.join(t, "node-a"), e.join(t, "node-b")
	callers := map[string]*apiclient.Client{
		"none":     e.client(t, ""),
		"garbage":  e.client(t, "not-a-token"),
		"unknown":  e.client(t, "abcdef.0123456789abcdef"),
		"wrong":    e.client(t, e.srv.AdminToken().ID+".0123456789abcdef"),
		"expired":  e.client(t, e.token(t, api.RoleReadOnly, time.Minute)),
		"admin":    admin,
		"readonly": e.client(t, e.token(t, api.RoleReadOnly, 0)),
		"join":     e.client(t, e.srv.JoinToken().Token.String()),
		"node-a":   e.nodeClient(t, credsA),
		"node-b":   e.nodeClient(t, credsB),
	}
	e.clock.advance(2 * time.Minute) // expires the "expired" token (and drops the cache)
	e.clock.advance(time.Minute)

	for _, n := range []string{"node-a", "node-b"} {
		if err := callers[n].Do(ctx, http.MethodPost, "/api/v1/nodes", testNode(n), nil); err != nil {
			t.Fatalf("%s registers itself: %v", n, err)
		}
	}
	for _, p := range []*corev1.Pod{testPod("default", "pa", "node-a"), testPod("default", "pb", "node-b")} {
		if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", p, nil); err != nil {
			t.Fatal(err)
		}
	}
	podA := testPod("default", "pa", "node-a")
	podA.Status.Phase = corev1.PodRunning
	csr := func() api.JoinRequest { return api.JoinRequest{NodeName: "node-c", CSR: "garbage"} }

	type call struct {
		name         string
		method, path string
		body         any
	}
	calls := map[string]call{
		"list pods":          {"list pods", http.MethodGet, "/api/v1/pods", nil},
		"list own pods":      {"list own pods", http.MethodGet, "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a", nil},
		"get pod of a":       {"get pod of a", http.MethodGet, "/api/v1/namespaces/default/pods/pa", nil},
		"create pod":         {"create pod", http.MethodPost, "/api/v1/namespaces/default/pods", generated(testPod("default", "", "node-a"))},
		"status of pod a":    {"status of pod a", http.MethodPut, "/api/v1/namespaces/default/pods/pa/status", podA},
		"update pod a":       {"update pod a", http.MethodPut, "/api/v1/namespaces/default/pods/pa", podA},
		"get node a":         {"get node a", http.MethodGet, "/api/v1/nodes/node-a", nil},
		"status of node a":   {"status of node a", http.MethodPut, "/api/v1/nodes/node-a/status", testNode("node-a")},
		"list nodes":         {"list nodes", http.MethodGet, "/api/v1/nodes", nil},
		"create event":       {"create event", http.MethodPost, "/api/v1/namespaces/default/events", &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "e."}, Reason: "Test"}},
		"list events":        {"list events", http.MethodGet, "/api/v1/events", nil},
		"join":               {"join", http.MethodPost, "/api/v1/join", csr()},
		"create token":       {"create token", http.MethodPost, "/api/v1/tokens", api.TokenRequest{Role: api.RoleReadOnly}},
		"metrics":            {"metrics", http.MethodGet, "/metrics", nil},
		"exec":               {"exec", http.MethodPost, "/api/v1/namespaces/default/pods/pa/exec?command=true", nil},
		"delete missing pod": {"delete missing pod", http.MethodDelete, "/api/v1/namespaces/default/pods/nothing", nil},
	}
	// 0 = allowed (2xx, or for "join" with a garbage CSR a 400 that proves it got
	// past authorization; for exec a 503 because no agent endpoint exists).
	var (
		ok     error
		unauth = api.ErrUnauthenticated
		denied = api.ErrPermissionDenied
		bad    = api.ErrInvalidArgument
		noNode = api.ErrUnavailable
		gone   = api.ErrNotFound
	)
	table := []struct {
		caller string
		want   map[string]error
	}{
		{"none", map[string]error{"list pods": unauth, "get node a": unauth, "join": unauth, "metrics": unauth, "create pod": unauth}},
		{"garbage", map[string]error{"list pods": unauth, "join": unauth}},
		{"unknown", map[string]error{"list pods": unauth}},
		{"wrong", map[string]error{"list pods": unauth}},
		{"expired", map[string]error{"list pods": unauth}},
		{"admin", map[string]error{"list pods": ok, "get pod of a": ok, "create pod": ok, "status of pod a": ok,
			"update pod a": ok, "list nodes": ok, "list events": ok, "create token": ok, "metrics": ok, "join": bad,
			"exec": noNode, "delete missing pod": gone}},
		{"readonly", map[string]error{"list pods": ok, "get pod of a": ok, "list nodes": ok, "list events": ok,
			"get node a": ok, "metrics": ok, "create pod": denied, "status of pod a": denied, "update pod a": denied,
			"create event": denied, "join": denied, "create token": denied, "exec": denied, "delete missing pod": denied}},
		{"join", map[string]error{"join": bad, "list pods": denied, "get node a": denied, "create token": denied, "metrics": denied}},
		{"node-a", map[string]error{"list own pods": ok, "get pod of a": ok, "status of pod a": ok, "get node a": ok,
			"status of node a": ok, "create event": ok, "list pods": denied, "update pod a": denied, "create pod": denied,
			"list nodes": denied, "list events": denied, "join": denied, "create token": denied, "metrics": denied, "exec": denied,
			"delete missing pod": denied}},
		{"node-b", map[string]error{"list own pods": denied, "get pod of a": denied, "status of pod a": denied,
			"get node a": denied, "status of node a": denied, "list pods": denied}},
	}
	for _, row := range table {
		for callName, want := range row.want {
			c := calls[callName]
			t.Run(row.caller+"/"+callName, func(t *testing.T) {
				err := callers[row.caller].Do(ctx, c.method, c.path, c.body, nil)
				if want == nil {
					if err != nil {
						t.Fatalf("%s %s: %v, want success", c.method, c.path, err)
					}
					return
				}
				if !errors.Is(err, want) {
					t.Fatalf("%s %s: got %v, want %v", c.method, c.path, err, want)
				}
			})
		}
	}

	// A node certificate signed by another CA does not even complete the handshake.
	other := startServer(t)
	foreign := other.join(t, "node-a")
	cert, _ := foreign.TLSCertificate()
	fc, _ := apiclient.New(apiclient.Config{Server: e.srv.URL(), CertificateAuthority: string(e.srv.CA().CertPEM)}, apiclient.WithCertificate(cert))
	defer fc.Close()
	if err := fc.Do(ctx, http.MethodGet, "/api/v1/nodes/node-a", nil, nil); err == nil {
		t.Fatalf("foreign CA certificate was accepted: %v", err)
	}
	// And the client refuses a server whose certificate another CA signed.
	wrongCA, _ := apiclient.New(apiclient.Config{Server: e.srv.URL(), CertificateAuthority: string(other.srv.CA().CertPEM), Token: e.srv.AdminToken().String()})
	defer wrongCA.Close()
	if err := wrongCA.Do(ctx, http.MethodGet, "/api/v1/pods", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client trusted a server of another CA: %v", err)
	}
	// The server's TLS is what it claims: the CA in the chain, TLS ≥ 1.2.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(e.srv.URL(), "https://"), &tls.Config{RootCAs: e.srv.CA().Pool(), MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatalf("server accepted TLS 1.1")
	}
}

// TestAuthorizeNode covers the node rules of the pure Authorize without a server.
func TestAuthorizeNode(t *testing.T) {
	a := controlplane.Identity{Name: "a", Role: api.RoleNode}
	tests := []struct {
		name string
		req  controlplane.Request
		ok   bool
	}{
		{"own pod status", controlplane.Request{Verb: controlplane.VerbUpdate, Kind: api.KindPod, Subresource: "status", ObjectNode: []string{"a"}}, true},
		{"moving a pod to itself", controlplane.Request{Verb: controlplane.VerbUpdate, Kind: api.KindPod, Subresource: "status", ObjectNode: []string{"b", "a"}}, false},
		{"unbound pod", controlplane.Request{Verb: controlplane.VerbGet, Kind: api.KindPod, ObjectNode: []string{""}}, false},
		{"missing pod", controlplane.Request{Verb: controlplane.VerbGet, Kind: api.KindPod}, false},
		{"watch own pods", controlplane.Request{Verb: controlplane.VerbWatch, Kind: api.KindPod, FieldNode: "a"}, true},
		{"watch all pods", controlplane.Request{Verb: controlplane.VerbWatch, Kind: api.KindPod}, false},
		{"create own node", controlplane.Request{Verb: controlplane.VerbCreate, Kind: api.KindNode, Name: "a"}, true},
		{"delete own node", controlplane.Request{Verb: controlplane.VerbDelete, Kind: api.KindNode, Name: "a"}, false},
		{"logs", controlplane.Request{Verb: controlplane.VerbLogs, Kind: api.KindPod, ObjectNode: []string{"a"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := controlplane.Authorize(a, tt.req)
			if tt.ok != (err == nil) {
				t.Fatalf("Authorize = %v, want allowed=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, api.ErrPermissionDenied) {
				t.Fatalf("denial %v is not ErrPermissionDenied", err)
			}
		})
	}
}
