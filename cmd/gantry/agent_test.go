package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/sandbox"
)

// Network of this test: a bridge and ranges no other package's tests use.
const (
	agentBridge = "gtest-agt0"
	agentCIDR4  = "10.244.211.0/24"
	agentCIDR6  = "fd00:10:244:d3::/64"
)

const twoContainerPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: echo
    image: gantry.test/echo:v1
    ports:
    - containerPort: 8080
  - name: sidecar
    image: gantry.test/batch:v1
    command: ["/bin/sh", "-c", "while true; do wget -q -O /dev/null http://127.0.0.1:8080/ && echo sidecar-ok; sleep 1; done"]
`

var metricsURL = regexp.MustCompile(`metrics on (http://127\.0\.0\.1:[0-9]+/metrics)`)

// agentProc is one `gantry agent` process.
type agentProc struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder
}

func (a *agentProc) log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

func startAgent(t *testing.T, bin string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{cmd: exec.Command(bin, append([]string{"agent"}, args...)...), done: make(chan struct{})}
	pr, pw := io.Pipe()
	a.cmd.Stdout, a.cmd.Stderr = pw, pw
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			a.mu.Lock()
			a.out.WriteString(sc.Text() + "\n")
			a.mu.Unlock()
		}
	}()
	go func() { _ = a.cmd.Wait(); pw.Close(); close(a.done) }()
	t.Cleanup(func() { a.kill() })
	return a
}

func (a *agentProc) kill() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// lastStatus returns the newest status line for the pod from the status file.
func lastStatus(t *testing.T, path, name string) (executor.PodStatusUpdate, bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return executor.PodStatusUpdate{}, false
	}
	var last executor.PodStatusUpdate
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		var u executor.PodStatusUpdate
		if json.Unmarshal([]byte(line), &u) == nil && u.Name == name {
			last, found = u, true
		}
	}
	return last, found
}

func allRunning(st corev1.PodStatus) bool {
	if st.Phase != corev1.PodRunning || len(st.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range st.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s\n%s", what, describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func taskPIDs(t *testing.T, address string) map[string]uint32 {
	t.Helper()
	cl, err := containerd.New(address)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), "gantry")
	ctrs, err := cl.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, c := range ctrs {
		if task, err := c.Task(ctx, nil); err == nil {
			out[c.ID()] = task.Pid()
		}
	}
	return out
}

// TestAgentPodManifests is the "must show": `gantry agent --pod-manifests DIR`
// brings up a two-container pod answering HTTP on its pod IPv4 and IPv6 addresses;
// SIGKILL of the agent and a new start leave the container PIDs unchanged; removing
// the manifest removes the pod and its network namespace.
func TestAgentPodManifests(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "ip", "go")
	images := testenv.Images(t)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", agentBridge).Run() })
	cd := testenv.StartContainerd(t)

	work, err := os.MkdirTemp("", "gagent-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	bin := gantryBinary(t)
	dataDir := filepath.Join(work, "data")
	manifests := filepath.Join(work, "manifests")
	statusFile := filepath.Join(work, "status.jsonl")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	// Whatever a failing test leaves: the sandboxes (netns, veths, leases).
	t.Cleanup(func() {
		sb := sandbox.New(sandbox.WithDataDir(filepath.Join(dataDir, "sandbox")), sandbox.WithNetwork("", agentBridge), sandbox.WithSubnets(agentCIDR4, agentCIDR6))
		uids, _ := sb.List()
		for _, u := range uids {
			_ = sb.Teardown(context.Background(), u)
		}
	})

	// Pre-load the test images into the agent's containerd namespace.
	pre := executor.New(executor.WithAddress(cd.Address()), executor.WithDataDir(filepath.Join(work, "preload")))
	if err := pre.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, img := range []testenv.Image{images.EchoV1, images.Batch} {
		if _, err := pre.ImportArchive(context.Background(), img.Archive); err != nil {
			t.Fatal(err)
		}
	}
	_ = pre.Close()

	args := []string{"--pod-manifests", manifests, "--data-dir", dataDir, "--containerd-address", cd.Address(),
		"--pod-cidr-v4", agentCIDR4, "--pod-cidr-v6", agentCIDR6, "--bridge", agentBridge,
		"--status-file", statusFile, "--metrics-addr", "127.0.0.1:0", "--poll", "500ms"}
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(twoContainerPod), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, bin, args...)

	var st executor.PodStatusUpdate
	waitUntil(t, 90*time.Second, "both containers running", func() bool {
		var ok bool
		st, ok = lastStatus(t, statusFile, "web")
		return ok && allRunning(st.Status) && len(st.Status.PodIPs) == 2
	}, agent.log)
	uid := st.UID
	if uid != string(StaticPodUID("default", "web")) {
		t.Errorf("pod UID %s, want the one derived from default/web", uid)
	}
	for _, ip := range st.Status.PodIPs {
		url := "http://" + net.JoinHostPort(ip.IP, "8080") + "/"
		var body string
		waitUntil(t, 20*time.Second, "HTTP on "+ip.IP, func() bool {
			b, err := get(url)
			body = b
			return err == nil && strings.Contains(b, "hostname=web")
		}, func() string { return body + "\n" + agent.log() })
	}
	// /metrics serves the sampled container metrics (the first sweep runs at start,
	// the pod's containers appear after the next, so only the Go runtime is certain).
	if m := metricsURL.FindStringSubmatch(agent.log()); m == nil {
		t.Errorf("agent did not announce its metrics endpoint:\n%s", agent.log())
	} else if body, err := get(m[1]); err != nil || !strings.Contains(body, "go_goroutines") {
		t.Errorf("GET %s: %v\n%.300s", m[1], err, body)
	}

	before := taskPIDs(t, cd.Address())
	if len(before) != 2 {
		t.Fatalf("tasks = %v, want 2", before)
	}
	agent.kill()
	agent2 := startAgent(t, bin, args...)
	// The new agent reports the pod running (its first transition line).
	waitUntil(t, 60*time.Second, "pod adopted by the restarted agent", func() bool {
		return strings.Contains(agent2.log(), "pod default/web phase=Running ready=true")
	}, agent2.log)
	after := taskPIDs(t, cd.Address())
	for id, pid := range before {
		if after[id] != pid {
			t.Errorf("container %s: pid %d before the agent's SIGKILL, %d after its restart", id, pid, after[id])
		}
	}
	if len(after) != len(before) {
		t.Errorf("tasks after restart = %v, before = %v", after, before)
	}

	// A broken manifest is reported and loses nothing that runs.
	broken := strings.Replace(twoContainerPod, "  containers:", "  notAField: 1\n  containers:", 1)
	if err := os.WriteFile(filepath.Join(manifests, "web.yaml"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the manifest error reported", func() bool {
		return strings.Contains(agent2.log(), "web.yaml:") && strings.Contains(agent2.log(), "notAField")
	}, agent2.log)
	time.Sleep(1500 * time.Millisecond) // three polls
	if still := taskPIDs(t, cd.Address()); len(still) != len(before) {
		t.Errorf("tasks after a broken manifest = %v, want the running pod kept", still)
	}

	netns := filepath.Join(dataDir, "sandbox", "netns", uid)
	if _, err := os.Stat(netns); err != nil {
		t.Fatalf("netns pin %s: %v", netns, err)
	}
	if err := os.Remove(filepath.Join(manifests, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "pod removed", func() bool {
		u, ok := lastStatus(t, statusFile, "web")
		return ok && u.Deleted
	}, agent2.log)
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("netns pin %s still there after the pod was removed: %v", netns, err)
	}
	if left := taskPIDs(t, cd.Address()); len(left) != 0 {
		t.Errorf("tasks left after the pod was removed: %v", left)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "master", agentBridge).CombinedOutput(); strings.Contains(string(out), "veth") {
		t.Errorf("veth left on %s: %s", agentBridge, out)
	}
	// SIGTERM stops the agent cleanly.
	_ = agent2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-agent2.done:
	case <-time.After(20 * time.Second):
		t.Errorf("agent did not stop on SIGTERM")
	}
	if code := agent2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("agent exit code %d after SIGTERM\n%s", code, agent2.log())
	}
}

// TestStaticPodUID: the UID depends on namespace and name only, and differs between
// pods.
func TestStaticPodUID(t *testing.T) {
	a, b := StaticPodUID("default", "web"), StaticPodUID("default", "web")
	if a != b {
		t.Fatalf("UID not stable: %s %s", a, b)
	}
	if a == StaticPodUID("other", "web") || a == StaticPodUID("default", "web2") {
		t.Fatalf("UIDs collide")
	}
	if len(a) != 36 || strings.Count(string(a), "-") != 4 {
		t.Fatalf("UID %q is not UUID-shaped", a)
	}
}
