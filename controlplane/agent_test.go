package controlplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/controlplane/apiclient"
)

func TestJoinFlow(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	jt := e.srv.JoinToken()
	if !strings.HasPrefix(jt.String(), "K10"+e.srv.CA().Hash()+"::") {
		t.Fatalf("join token %q does not pin the CA hash", jt)
	}
	parsed, err := api.ParseJoinToken(jt.String())
	if err != nil || parsed != jt {
		t.Fatalf("join token does not round-trip: %v %v", parsed, err)
	}

	// A join token pinning another CA is refused before the token is sent.
	wrongPin := jt
	wrongPin.CAHash = strings.Repeat("0", 64)
	if _, err := agentclient.Join(ctx, e.srv.URL(), wrongPin, "n1"); !errors.Is(err, api.ErrPermissionDenied) {
		t.Fatalf("join with a wrong CA pin: got %v, want ErrPermissionDenied", err)
	}
	wrongSecret := jt
	wrongSecret.Token.Secret = strings.Repeat("x", 16)
	if _, err := agentclient.Join(ctx, e.srv.URL(), wrongSecret, "n1"); !errors.Is(err, api.ErrUnauthenticated) {
		t.Fatalf("join with a wrong secret: got %v, want ErrUnauthenticated", err)
	}
	if _, err := agentclient.Join(ctx, e.srv.URL(), jt, "Not_A_Name"); err == nil {
		t.Fatalf("join with an invalid node name succeeded")
	}

	// token → CSR → certificate → mTLS call.
	c1 := e.join(t, "n1")
	c2 := e.join(t, "n2")
	if diff := cmp.Diff([]string{"10.244.0.0/24", "fd00:10:244::/64"}, c1.PodCIDRs); diff != "" {
		t.Errorf("n1 pod CIDRs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10.244.1.0/24", "fd00:10:244:1::/64"}, c2.PodCIDRs); diff != "" {
		t.Errorf("n2 pod CIDRs (-want +got):\n%s", diff)
	}
	again := e.join(t, "n1")
	if diff := cmp.Diff(c1.PodCIDRs, again.PodCIDRs); diff != "" {
		t.Errorf("rejoining n1 changed its pod CIDRs:\n%s", diff)
	}
	dir := t.TempDir()
	if err := c1.Save(dir); err != nil {
		t.Fatal(err)
	}
	loaded, err := agentclient.LoadCredentials(dir)
	if err != nil || loaded.NodeName != "n1" {
		t.Fatalf("load credentials: %v %v", loaded, err)
	}
	if fi, err := os.Stat(dir + "/node.key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node key mode: %v %v", fi, err)
	}
	nc := e.nodeClient(t, loaded)
	if err := nc.Do(ctx, http.MethodPost, "/api/v1/nodes", testNode("n1"), nil); err != nil {
		t.Fatalf("mTLS register: %v", err)
	}
	var got corev1.Node
	if err := nc.Do(ctx, http.MethodGet, "/api/v1/nodes/n1", nil, &got); err != nil {
		t.Fatalf("mTLS get own node: %v", err)
	}
	if diff := cmp.Diff(c1.PodCIDRs, got.Spec.PodCIDRs); diff != "" {
		t.Errorf("node object pod CIDRs differ from the join's:\n%s", diff)
	}
	// The join token is no bearer token for the API.
	if err := e.client(t, jt.Token.String()).Do(ctx, http.MethodGet, "/api/v1/nodes/n1", nil, nil); !errors.Is(err, api.ErrPermissionDenied) {
		t.Fatalf("join token used on the API: got %v, want ErrPermissionDenied", err)
	}
	// A new join token from the API works the same way.
	var tr api.TokenResponse
	if err := e.admin(t).Do(ctx, http.MethodPost, "/api/v1/tokens", api.TokenRequest{Role: api.RoleJoin, TTLSeconds: 3600}, &tr); err != nil {
		t.Fatal(err)
	}
	jt2, err := api.ParseJoinToken(tr.JoinToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agentclient.Join(ctx, e.srv.URL(), jt2, "n3"); err != nil {
		t.Fatalf("join with an API-made token: %v", err)
	}
}

// fakeRuntime is the executor's side of logs and exec, recorded so the test can see
// what the proxy chain delivered.
type fakeRuntime struct {
	mu   sync.Mutex
	seen []string
}

func (f *fakeRuntime) Logs(ctx context.Context, pod *corev1.Pod, o agentclient.LogOptions, w io.Writer) error {
	f.mu.Lock()
	f.seen = append(f.seen, fmt.Sprintf("logs %s/%s c=%s follow=%v tail=%d prev=%v", pod.Namespace, pod.Name, o.Container, o.Follow, o.TailLines, o.Previous))
	f.mu.Unlock()
	if o.Container == "missing" {
		return fmt.Errorf("container missing: %w", api.ErrNotFound)
	}
	_, err := io.WriteString(w, "line 1\nline 2\n")
	return err
}

func (f *fakeRuntime) Exec(ctx context.Context, pod *corev1.Pod, o agentclient.ExecOptions) (int, error) {
	fmt.Fprintf(o.Stdout, "ran %s in %s", strings.Join(o.Command, " "), o.Container)
	if o.Stdin != nil {
		b, _ := io.ReadAll(o.Stdin)
		fmt.Fprintf(o.Stderr, "stdin=%s", b)
	}
	return 3, nil
}

// startAgent runs a real agent (its endpoint on 127.0.0.1) for creds.
func startAgent(t *testing.T, e *env, creds *agentclient.Credentials, rt agentclient.Runtime, onPods func([]*corev1.Pod)) *agentclient.Agent {
	t.Helper()
	a := agentclient.New(e.srv.URL(), creds,
		agentclient.WithListen("127.0.0.1:0"),
		agentclient.WithHeartbeat(200*time.Millisecond),
		agentclient.WithStatusInterval(50*time.Millisecond),
		agentclient.WithRuntime(rt),
		agentclient.WithPodsHandler(onPods),
		agentclient.WithLogger(quiet))
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	select {
	case <-a.Registered():
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not register")
	}
	return a
}

// eventually polls f until it returns nil or 20 s pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// podSets records the sets the agent hands to its executor.
type podSets struct {
	mu   sync.Mutex
	last []string
	n    int
}

func (p *podSets) handle(pods []*corev1.Pod) {
	var names []string
	for _, x := range pods {
		names = append(names, x.Namespace+"/"+x.Name)
	}
	p.mu.Lock()
	p.last, p.n = names, p.n+1
	p.mu.Unlock()
}

func (p *podSets) is(want ...string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return errors.New("no set delivered yet")
	}
	if diff := cmp.Diff(want, p.last, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") })); diff != "" {
		return fmt.Errorf("pods handed over (-want +got):\n%s", diff)
	}
	return nil
}

func nodeReadyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func nodeLost(p *corev1.Pod) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == api.PodConditionNodeLost {
			return c.Status
		}
	}
	return ""
}

func TestAgentRegistersWatchesReportsAndLifecycle(t *testing.T) {
	e := startServer(t, controlplane.WithNodeGracePeriod(time.Second))
	ctx := context.Background()
	admin := e.admin(t)
	creds := e.join(t, "worker")
	sets := &podSets{}
	agent := startAgent(t, e, creds, &fakeRuntime{}, sets.handle)

	var node corev1.Node
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/nodes/worker", nil, &node); err != nil {
		t.Fatal(err)
	}
	host, _ := agentclient.HostCapacity()
	if !node.Status.Capacity.Cpu().Equal(*host.Cpu()) || !node.Status.Capacity.Memory().Equal(*host.Memory()) || host.Memory().Value() < 1<<20 {
		t.Errorf("node capacity %v, want the host's %v", node.Status.Capacity, host)
	}
	if nodeReadyStatus(&node) != corev1.ConditionTrue || node.Status.DaemonEndpoints.KubeletEndpoint.Port == 0 {
		t.Errorf("node not Ready with an endpoint: %+v", node.Status)
	}
	eventually(t, "empty set handed over", func() error { return sets.is() })

	// A pod applied without a node is bound by first fit to the only Ready node,
	// whose agent hands it over.
	p := testPod("default", "web", "")
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	var created corev1.Pod
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", p, &created); err != nil {
		t.Fatal(err)
	}
	if created.Spec.NodeName != "worker" {
		t.Fatalf("first fit bound the pod to %q, want worker", created.Spec.NodeName)
	}
	big := testPod("default", "too-big", "")
	big.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("100Ti")}
	var unbound corev1.Pod
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", big, &unbound); err != nil {
		t.Fatal(err)
	}
	if unbound.Spec.NodeName != "" || len(unbound.Status.Conditions) == 0 || !strings.Contains(unbound.Status.Conditions[0].Message, "insufficient memory") {
		t.Fatalf("a pod that fits nowhere: node %q, conditions %+v", unbound.Spec.NodeName, unbound.Status.Conditions)
	}
	eventually(t, "pod handed over", func() error { return sets.is("default/web") })

	// Status is reported, and an unchanged report writes nothing.
	running := corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00:10:244::5"}}}
	agent.ReportStatus("default", "web", created.UID, running)
	var got corev1.Pod
	eventually(t, "status reported", func() error {
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web", nil, &got); err != nil {
			return err
		}
		if got.Status.Phase != corev1.PodRunning || len(got.Status.PodIPs) != 2 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	agent.ReportStatus("default", "web", created.UID, running)
	time.Sleep(300 * time.Millisecond) // several status intervals
	var again corev1.Pod
	_ = admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web", nil, &again)
	if again.ResourceVersion != got.ResourceVersion {
		t.Fatalf("an unchanged status was written again (rv %s → %s): %s", got.ResourceVersion, again.ResourceVersion, cmp.Diff(got, again))
	}

	// Logs and exec go server → agent over mTLS.
	cfg := apiclient.Config{Server: e.srv.URL(), CertificateAuthority: string(e.srv.CA().CertPEM), Token: e.srv.AdminToken().String()}
	cl, _ := apiclient.New(cfg)
	defer cl.Close()
	resp, err := cl.Stream(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web/log?container=c&tailLines=5&previous=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(logs) != "line 1\nline 2\n" {
		t.Fatalf("logs = %q", logs)
	}
	if _, err := cl.Stream(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web/log?container=missing", nil); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("logs of a missing container: got %v, want ErrNotFound", err)
	}
	resp, err = cl.Stream(ctx, http.MethodPost, "/api/v1/namespaces/default/pods/web/exec?container=c&command=echo&command=hi&stdin=true", strings.NewReader("input"))
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code, err := apiclient.ReadFrames(resp.Body, &stdout, &stderr)
	resp.Body.Close()
	if err != nil || code != 3 || stdout.String() != "ran echo hi in c" || stderr.String() != "stdin=input" {
		t.Fatalf("exec: code %d err %v stdout %q stderr %q", code, err, stdout.String(), stderr.String())
	}

	// The agent endpoint accepts only the server: another node's certificate is 403.
	other := e.join(t, "intruder")
	oc, _ := other.TLSCertificate()
	ac, _ := apiclient.New(apiclient.Config{Server: "https://" + agent.Endpoint(), CertificateAuthority: string(other.CAPEM)}, apiclient.WithCertificate(oc))
	defer ac.Close()
	if _, err := ac.Stream(ctx, http.MethodGet, "/pods/default/web/log", nil); !errors.Is(err, api.ErrPermissionDenied) {
		t.Fatalf("node certificate on the agent endpoint: got %v, want ErrPermissionDenied", err)
	}

	// The agent stops: after the grace period the node is NotReady and its pod NodeLost.
	agent.Close()
	eventually(t, "node NotReady", func() error {
		var n corev1.Node
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/nodes/worker", nil, &n); err != nil {
			return err
		}
		if s := nodeReadyStatus(&n); s == corev1.ConditionTrue {
			return fmt.Errorf("Ready=%s", s)
		}
		return nil
	})
	eventually(t, "pod NodeLost", func() error {
		var p corev1.Pod
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/namespaces/default/pods/web", nil, &p); err != nil {
			return err
		}
		if nodeLost(&p) != corev1.ConditionTrue {
			return fmt.Errorf("NodeLost=%q", nodeLost(&p))
		}
		return nil
	})

	// While it is away the pod is deleted and another is bound to it; when the agent
	// returns it hands over only what is assigned now, so the executor removes the
	// stale pod.
	if err := admin.Do(ctx, http.MethodDelete, "/api/v1/namespaces/default/pods/web", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", testPod("default", "later", "worker"), nil); err != nil {
		t.Fatal(err)
	}
	back := &podSets{}
	startAgent(t, e, creds, &fakeRuntime{}, back.handle)
	eventually(t, "returning agent's set", func() error { return back.is("default/later") })
	eventually(t, "node Ready again", func() error {
		var n corev1.Node
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/nodes/worker", nil, &n); err != nil {
			return err
		}
		if s := nodeReadyStatus(&n); s != corev1.ConditionTrue {
			return fmt.Errorf("Ready=%s", s)
		}
		return nil
	})
}

// TestAgentReconnectsAfterServerRestart stops the server under a running agent and
// starts a new one on the same address, data dir and etcd: the agent's heartbeats and
// pod watch resume by themselves.
func TestAgentReconnectsAfterServerRestart(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	creds := e.join(t, "worker")
	sets := &podSets{}
	startAgent(t, e, creds, &fakeRuntime{}, sets.handle)
	eventually(t, "empty set", func() error { return sets.is() })

	addr := strings.TrimPrefix(e.srv.URL(), "https://")
	e.srv.Close()
	srv2 := controlplane.New(e.st, controlplane.WithDataDir(e.dir+"/data"), controlplane.WithListen(addr),
		controlplane.WithClientConfigPath(e.dir+"/client.config"), controlplane.WithLogger(quiet))
	eventually(t, "restart on the same address", func() error { return srv2.Start(ctx) })
	defer srv2.Close()
	admin, err := apiclient.New(apiclient.Config{Server: srv2.URL(), CertificateAuthority: string(srv2.CA().CertPEM), Token: srv2.AdminToken().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var before corev1.Node
	if err := admin.Do(ctx, http.MethodGet, "/api/v1/nodes/worker", nil, &before); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(ctx, http.MethodPost, "/api/v1/namespaces/default/pods", testPod("default", "after-restart", "worker"), nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "watch resumed", func() error { return sets.is("default/after-restart") })
	eventually(t, "heartbeats resumed", func() error {
		var n corev1.Node
		if err := admin.Do(ctx, http.MethodGet, "/api/v1/nodes/worker", nil, &n); err != nil {
			return err
		}
		if n.Annotations[api.AnnotationHeartbeat] == before.Annotations[api.AnnotationHeartbeat] {
			return errors.New("no heartbeat since the restart")
		}
		return nil
	})
}
