package executor_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/backoff"
	"gantry.io/gantry/executor/sandbox"
	"gantry.io/gantry/executor/volumes"
)

// This package's network: a bridge and subnets no other package's tests use, so the
// packages' integration tests can run in parallel.
const (
	testBridge  = "gtest-exe0"
	testSubnet4 = "10.244.210.0/24"
	testSubnet6 = "fd00:10:244:d2::/64"
)

// fastBackoff keeps restart and pull back-offs short in tests.
var fastBackoff = backoff.Policy{Initial: 200 * time.Millisecond, Max: 2 * time.Second, ResetAfter: time.Minute}

// env is one executor on its own containerd, data dir and sandbox manager.
type env struct {
	t       testing.TB
	cd      *testenv.Containerd
	dataDir string
	sb      *sandbox.Manager
	e       *executor.Executor
	images  testenv.ImageSet
	opts    []executor.Option

	mu      sync.Mutex
	updates []timedUpdate
}

type timedUpdate struct {
	at time.Time
	u  executor.PodStatusUpdate
}

// newEnv starts containerd, imports the test images and starts an executor. At cleanup
// it removes every pod (and checks that their netns are gone), closes the executor,
// stops containerd and deletes the test bridge.
func newEnv(t testing.TB, opts ...executor.Option) *env {
	t.Helper()
	return newEnvWith(t, nil, opts...)
}

// testNATTable is this package's node-wide masquerade table.
const testNATTable = "gtest-exe-nat"

// The second network, of TestCNIFailure.
const (
	tinyBridge   = "gtest-exe1"
	tinyNATTable = "gtest-exe-tiny-nat"
)

// dataDirPrefix names this package's data dirs in /tmp (testenv.OwnedTempDir).
const dataDirPrefix = "gexe-"

var removeStaleOnce sync.Once

// removeStale removes what test processes of this package that were killed (a
// timeout, a Ctrl-C) left behind, before the first test creates anything: their data
// dirs with the netns pins and volume mounts in them, this package's bridges (with a
// stale bridge the same subnet fails or collides on the rerun) and nftables tables.
// The package's tests run one at a time, so at this point nothing of these names is
// in use by this process.
func removeStale(t testing.TB) {
	for _, d := range testenv.RemoveStale(dataDirPrefix) {
		t.Logf("removed the left-overs of a killed run: %s", d)
	}
	for _, br := range []string{testBridge, tinyBridge} {
		if exec.Command("ip", "link", "show", br).Run() == nil {
			t.Logf("removing bridge %s left by an earlier run", br)
			_ = exec.Command("ip", "link", "del", br).Run()
		}
	}
	for _, tbl := range []string{testNATTable, tinyNATTable} {
		if exec.Command("nft", "list", "table", "inet", tbl).Run() == nil {
			t.Logf("removing nftables table inet %s left by an earlier run", tbl)
			_ = exec.Command("nft", "delete", "table", "inet", tbl).Run()
		}
	}
}

// newEnvWith is newEnv with extra sandbox Manager options.
func newEnvWith(t testing.TB, sbOpts []sandbox.Option, opts ...executor.Option) *env {
	t.Helper()
	testenv.Integration(t, "containerd", "runc", "ip")
	images := testenv.Images(t)
	t.Cleanup(func() {
		// The bridge plugin creates the bridge and never deletes it.
		_ = exec.Command("ip", "link", "del", testBridge).Run()
	})
	cd := testenv.StartContainerd(t) // it removes the containerds of killed runs first
	removeStaleOnce.Do(func() { removeStale(t) })
	dataDir, err := testenv.OwnedTempDir(dataDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	en := &env{t: t, cd: cd, dataDir: dataDir, images: images, opts: opts}
	en.sb = sandbox.New(append([]sandbox.Option{
		sandbox.WithDataDir(dataDir + "/sandbox"),
		sandbox.WithNetwork("gtest-exe", testBridge),
		sandbox.WithSubnets(testSubnet4, testSubnet6),
		sandbox.WithResolvConf("nameserver 10.244.210.1\n"),
		sandbox.WithMasqueradeTable(testNATTable),
	}, sbOpts...)...)
	t.Cleanup(func() {
		if err := en.sb.RemoveMasquerade(); err != nil {
			t.Errorf("cleanup: RemoveMasquerade: %v", err)
		}
	})
	en.start()
	for _, img := range []testenv.Image{images.EchoV1, images.EchoV2, images.Batch} {
		if _, err := en.e.ImportArchive(context.Background(), img.Archive); err != nil {
			t.Fatalf("import %s: %v", img.Ref, err)
		}
	}
	t.Cleanup(en.shutdown)
	return en
}

func (en *env) start() {
	en.t.Helper()
	opts := append([]executor.Option{
		executor.WithAddress(en.cd.Address()),
		executor.WithDataDir(en.dataDir + "/executor"),
		executor.WithSandbox(en.sb),
		executor.WithBackoff(fastBackoff),
		executor.WithStatusSink(en.sink),
		executor.WithNodeName("test-node"),
	}, en.opts...)
	en.e = executor.New(opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := en.e.Start(ctx); err != nil {
		en.t.Fatalf("start executor: %v", err)
	}
}

// restart closes the executor (containers keep running) and starts a new one on the
// same containerd and data dir, as an agent restart does.
func (en *env) restart() {
	en.t.Helper()
	if err := en.e.Close(); err != nil {
		en.t.Fatalf("close executor: %v", err)
	}
	en.start()
}

func (en *env) shutdown() {
	if en.e == nil {
		return
	}
	en.e.Sync(nil)
	deadline := time.Now().Add(60 * time.Second)
	for len(en.e.PodUIDs()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := en.e.PodUIDs(); len(left) > 0 {
		en.t.Errorf("pods not removed at cleanup: %v", left)
	}
	// Removing the pods removed their containers (what `ctr -n gantry c ls` shows);
	// garbage collection below would hide a leak.
	if cl := en.e.Client(); cl != nil {
		ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
		if ctrs, err := cl.Containers(ctx); err == nil && len(ctrs) > 0 {
			var ids []string
			for _, c := range ctrs {
				ids = append(ids, c.ID())
			}
			en.t.Errorf("containers left after every pod was removed: %v", ids)
		}
	}
	en.e.CollectGarbage(context.Background())
	if uids, err := en.sb.List(); err != nil || len(uids) > 0 {
		en.t.Errorf("sandboxes left at cleanup: %v %v", uids, err)
	}
	_ = en.e.Close()
	// Whatever a failed test left: netns pins, veths, leases and volume mounts.
	uids, _ := en.sb.List()
	for _, uid := range uids {
		_ = en.sb.Teardown(context.Background(), uid)
	}
	podsDir := filepath.Join(en.dataDir, "executor", "pods")
	entries, _ := os.ReadDir(podsDir)
	for _, d := range entries {
		_ = volumes.Cleanup(filepath.Join(podsDir, d.Name()))
	}
}

func (en *env) sink(u executor.PodStatusUpdate) {
	en.mu.Lock()
	defer en.mu.Unlock()
	en.updates = append(en.updates, timedUpdate{time.Now(), u})
}

// firstRunningAt returns when the sink first saw pod uid with all containers running.
func (en *env) firstRunningAt(uid string) (time.Time, bool) {
	en.mu.Lock()
	defer en.mu.Unlock()
	for _, tu := range en.updates {
		if tu.u.UID == uid && running(tu.u.Status) {
			return tu.at, true
		}
	}
	return time.Time{}, false
}

// sawUpdate reports whether any status update so far satisfies f.
func (en *env) sawUpdate(f func(executor.PodStatusUpdate) bool) bool {
	en.mu.Lock()
	defer en.mu.Unlock()
	for _, tu := range en.updates {
		if f(tu.u) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it is true or the limit passes, then fails with what
// describe says.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, describe())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStatus waits until the pod's status satisfies cond.
func (en *env) waitStatus(uid types.UID, limit time.Duration, what string, cond func(corev1.PodStatus) bool) corev1.PodStatus {
	en.t.Helper()
	var st corev1.PodStatus
	waitFor(en.t, limit, what, func() bool {
		s, ok := en.e.Status(string(uid))
		st = s
		return ok && cond(s)
	}, func() string { return en.describe(uid) })
	return st
}

func (en *env) describe(uid types.UID) string {
	st, _ := en.e.Status(string(uid))
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s reason=%s message=%q", st.Phase, st.Reason, st.Message)
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		fmt.Fprintf(&b, "\n  %s restarts=%d ready=%v state=%s", cs.Name, cs.RestartCount, cs.Ready, stateString(cs.State))
	}
	for _, ev := range en.e.Events(string(uid)) {
		fmt.Fprintf(&b, "\n  event %s %s %s: %s", ev.Type, ev.Reason, ev.Container, ev.Message)
	}
	return b.String()
}

func stateString(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return fmt.Sprintf("waiting(%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s exit %d: %s)", s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
	}
	return "none"
}

func running(st corev1.PodStatus) bool {
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

func ready(st corev1.PodStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func containerStatus(st corev1.PodStatus, name string) corev1.ContainerStatus {
	for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

// newPod is a pod fixture with a UID of its own.
func newPod(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(fmt.Sprintf("%s-%d", name, time.Now().UnixNano()))},
		Spec:       corev1.PodSpec{Containers: containers, TerminationGracePeriodSeconds: ptr(int64(5))},
	}
}

func echo(name string) corev1.Container {
	return corev1.Container{Name: name, Image: "gantry.test/echo:v1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
}

func batch(name string, args ...string) corev1.Container {
	return corev1.Container{Name: name, Image: "gantry.test/batch:v1", Args: args}
}

func ptr[T any](v T) *T { return &v }

// httpGet fetches a URL with a short timeout and returns the body.
func httpGet(url string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// podURL is http://IP:port/path for a pod IP of either family.
func podURL(ip string, port int, path string) string {
	return "http://" + net.JoinHostPort(ip, fmt.Sprint(port)) + path
}

// waitHTTP polls url until it answers 200, and returns the body.
func waitHTTP(t testing.TB, url string) string {
	t.Helper()
	var body string
	var last error
	waitFor(t, 20*time.Second, "HTTP "+url, func() bool {
		body, last = httpGet(url)
		return last == nil
	}, func() string { return fmt.Sprint(last) })
	return body
}

func ftoa(f float64) string { return fmt.Sprintf("%.3f", f) }
func utoa(u uint64) string  { return fmt.Sprint(u) }
