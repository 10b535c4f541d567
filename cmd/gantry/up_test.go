package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
)

// upRun is one `gantry up` process of TestUpEndToEnd.
type upRun struct {
	cmd *exec.Cmd
	log *logFile
}

// logFile is a gantry process's output. It is a file, not a pipe: the containerd that
// gantry up starts inherits it and outlives a SIGKILLed gantry, and exec.Cmd.Wait would
// wait for a pipe's last writer.
type logFile struct{ path string }

func (l *logFile) String() string {
	b, _ := os.ReadFile(l.path)
	return string(b)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestUpEndToEnd runs the real binary: gantry up on a temporary data dir with its own
// containerd → apply a pod → Running with both IPs in get -o json → logs and exec →
// SIGKILL gantry → the container keeps running → up again → the same container is
// adopted (PID unchanged) → a second agent (own data dir and containerd namespace)
// joins with the token and runs a pod.
func TestUpEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go")
	images := testenv.Images(t)
	dir, err := os.MkdirTemp("/tmp", "gup-") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	bin := gantryBinary(t)
	data := filepath.Join(dir, "d")
	config := filepath.Join(dir, "config")
	port := freePort(t)
	suffix := strconv.Itoa(os.Getpid() % 10000)
	upArgs := []string{"up", "--data-dir", data, "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--agent-listen", "127.0.0.1:0", "--containerd-address", filepath.Join(dir, "none.sock"),
		"--node-name", "up-node", "--bridge", "gup" + suffix, "--service-table", "gup" + suffix, "--client-config", config,
		"--cluster-cidr-v4", "10.251.0.0/16", "--cluster-cidr-v6", "fd00:10:251::/56",
		"--node-grace-period", "5s", "--import", images.EchoV1.Archive}
	ownSocket := filepath.Join(data, "containerd", "c.sock")
	var current *upRun
	runs := 0
	start := func() *upRun {
		runs++
		cmd := exec.Command(bin, upArgs...)
		log, err := startLogged(cmd, filepath.Join(dir, fmt.Sprintf("up-%d.log", runs)))
		if err != nil {
			t.Fatal(err)
		}
		current = &upRun{cmd: cmd, log: log}
		return current
	}
	gantry := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "GANTRY_CONFIG="+config)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		// Pods first (the executor removes their sandboxes), then gantry, then the
		// containerd it started, then what is left on disk.
		deletePods(t, config)
		time.Sleep(3 * time.Second)
		if current != nil && current.cmd.ProcessState == nil {
			_ = current.cmd.Process.Signal(syscall.SIGTERM)
			_ = current.cmd.Wait()
		}
		removeAllContainersOf(filepath.Join(data, "containerd", "config.toml"), ownSocket, "gantry", "gantry2")
		stopContainerdOf(t, filepath.Join(data, "containerd", "config.toml"))
		_ = exec.Command("ip", "link", "del", "gup"+suffix).Run()
		_ = exec.Command("ip", "link", "del", "gup2"+suffix).Run()
		// The service tables gantry leaves by design.
		_ = exec.Command("nft", "delete", "table", "inet", "gup"+suffix).Run()
		_ = exec.Command("nft", "delete", "table", "inet", "gup2"+suffix).Run()
		if t.Failed() && current != nil {
			t.Logf("gantry up log:\n%s", current.log.String())
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})

	run := start()
	waitFor(t, "gantry up serving", 60*time.Second, func() error {
		if !strings.Contains(run.log.String(), "join a node with") {
			return fmt.Errorf("log so far: %s", run.log.String())
		}
		return nil
	})
	pod := filepath.Join(dir, "pod.yaml")
	os.WriteFile(pod, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: %s
    resources: {requests: {cpu: 100m, memory: 32Mi}}
`, images.EchoV1.Ref)), 0o600)
	if out, err := gantry("apply", "-f", pod); err != nil || !strings.Contains(out, "pod/echo created") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	var running corev1.Pod
	waitFor(t, "pod Running with two IPs", 90*time.Second, func() error {
		out, err := gantry("get", "pods", "echo", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &running); err != nil {
			return err
		}
		if running.Status.Phase != corev1.PodRunning || len(running.Status.PodIPs) != 2 {
			return fmt.Errorf("phase %s IPs %v", running.Status.Phase, running.Status.PodIPs)
		}
		return nil
	})
	if !strings.HasPrefix(running.Status.PodIPs[0].IP, "10.251.0.") || !strings.HasPrefix(running.Status.PodIPs[1].IP, "fd00:10:251:") {
		t.Fatalf("pod IPs %v are not from the node's pod CIDRs", running.Status.PodIPs)
	}
	waitFor(t, "logs", 20*time.Second, func() error {
		out, err := gantry("logs", "echo")
		if err != nil || !strings.Contains(out, "listening") {
			return fmt.Errorf("%v: %q", err, out)
		}
		return nil
	})
	if out, err := gantry("exec", "echo", "--", "/bin/echo", "hello", "exec"); err != nil || out != "hello exec\n" {
		t.Fatalf("exec: %v %q", err, out)
	}
	_, err = gantry("exec", "echo", "--", "/bin/sh", "-c", "exit 7")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("exec exit code: %v", err)
	}
	pid := taskPID(t, ownSocket, "gantry")

	// SIGKILL: the container keeps running; the next up adopts it.
	_ = run.cmd.Process.Kill()
	_ = run.cmd.Wait()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("container pid %d died with gantry: %v", pid, err)
	}
	run = start()
	waitFor(t, "second up serving", 60*time.Second, func() error {
		if !strings.Contains(run.log.String(), "join a node with") {
			return fmt.Errorf("log so far: %s", run.log.String())
		}
		return nil
	})
	waitFor(t, "node Ready and pod Running again", 60*time.Second, func() error {
		out, err := gantry("get", "nodes")
		if err != nil || !strings.Contains(out, " Ready ") {
			return fmt.Errorf("%v: %s", err, out)
		}
		out, err = gantry("get", "pods")
		if err != nil || !strings.Contains(out, "Running") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	if again := taskPID(t, ownSocket, "gantry"); again != pid {
		t.Fatalf("container restarted: pid %d → %d", pid, again)
	}

	// A second agent on this machine: own data dir, containerd namespace and bridge.
	joinLine := ""
	for _, l := range strings.Split(run.log.String(), "\n") {
		if strings.Contains(l, "--join-token") {
			joinLine = l
		}
	}
	fields := strings.Fields(joinLine)
	if len(fields) < 6 {
		t.Fatalf("no join command printed: %q", joinLine)
	}
	server, token := fields[3], fields[5]
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	second, err := startNodeAgent(ctx, nodeAgentConfig{server: server, joinToken: token, nodeName: "up-node-2",
		dataDir: filepath.Join(dir, "agent2"), containerd: ownSocket, namespace: "gantry2", listen: "127.0.0.1:0",
		bridge: "gup2" + suffix, cniBinDir: "/usr/lib/cni", logger: logger, serviceTable: "gup2" + suffix})
	if err != nil {
		t.Fatalf("second agent: %v", err)
	}
	t.Cleanup(func() { second.Close() })
	if _, err := second.exec.ImportArchive(ctx, images.EchoV1.Archive); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(pod, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: echo-2}
spec:
  nodeName: up-node-2
  containers: [{name: echo, image: %s}]
`, images.EchoV1.Ref)), 0o600)
	if out, err := gantry("apply", "-f", pod); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	waitFor(t, "second node's pod Running", 90*time.Second, func() error {
		out, err := gantry("get", "pods", "-o", "wide")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "echo-2 ") && strings.Contains(l, "Running") && strings.Contains(l, "10.251.1.") && strings.Contains(l, "up-node-2") {
				return nil
			}
		}
		return fmt.Errorf("%s", out)
	})
	out, _ := gantry("get", "nodes")
	if !strings.Contains(out, "up-node-2") {
		t.Fatalf("second node not listed:\n%s", out)
	}
	// Delete the second node's pod while its agent runs, so its sandbox goes too.
	deletePods(t, config)
	waitFor(t, "pods removed", 60*time.Second, func() error {
		if n := countTasks(t, ownSocket, "gantry") + countTasks(t, ownSocket, "gantry2"); n != 0 {
			return fmt.Errorf("%d containers left", n)
		}
		// The sandboxes (netns pins, CNI teardown) go after the containers.
		for _, d := range []string{filepath.Join(data, "sandbox", "netns"), filepath.Join(dir, "agent2", "sandbox", "netns")} {
			if left, _ := os.ReadDir(d); len(left) > 0 {
				return fmt.Errorf("%d sandboxes left in %s", len(left), d)
			}
		}
		return nil
	})
}

func waitFor(t *testing.T, what string, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func containerdClient(t *testing.T, socket string) *containerd.Client {
	c, err := containerd.New(socket)
	if err != nil {
		t.Fatalf("containerd %s: %v", socket, err)
	}
	return c
}

func taskPID(t *testing.T, socket, ns string) int {
	t.Helper()
	c := containerdClient(t, socket)
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ctr := range cs {
		task, err := ctr.Task(ctx, nil)
		if err == nil {
			return int(task.Pid())
		}
	}
	t.Fatalf("no running task in namespace %s", ns)
	return 0
}

func countTasks(t *testing.T, socket, ns string) int {
	c := containerdClient(t, socket)
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	cs, err := c.Containers(ctx)
	if err != nil {
		return 0
	}
	return len(cs)
}

// removeAllContainers kills and deletes every task and container gantry left in
// containerd namespace ns. Tests call it after gantry stopped (which by design leaves
// workloads running) and before stopping the containerd gantry started, so no shim
// outlives the test. Deleting pods through the API is not enough once a reconcile
// loop runs: it places them again.
func removeAllContainers(socket, ns string) {
	c, err := containerd.New(socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), ns), 60*time.Second)
	defer cancel()
	cs, err := c.Containers(ctx)
	if err != nil {
		return
	}
	for _, ctr := range cs {
		if task, err := ctr.Task(ctx, nil); err == nil {
			if ch, err := task.Wait(ctx); err == nil {
				_ = task.Kill(ctx, syscall.SIGKILL)
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
			_, _ = task.Delete(ctx, containerd.WithProcessKill)
		}
		_ = ctr.Delete(ctx, containerd.WithSnapshotCleanup)
	}
}

// removeAllContainersOf is removeAllContainers for the containerd gantry up started
// with config cfg on socket: gantry stops that containerd when it exits and the shims
// stay, so it is started again with the same config just to remove them, then stopped.
func removeAllContainersOf(cfg, socket string, namespaces ...string) {
	if !containerdAnswers(socket) {
		cmd := exec.Command("containerd", "--config", cfg, "--log-level", "error")
		if err := cmd.Start(); err != nil {
			return
		}
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}()
		for i := 0; i < 100 && !containerdAnswers(socket); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, ns := range namespaces {
		removeAllContainers(socket, ns)
	}
}

// deletePods deletes every pod through the API with the admin config.
func deletePods(t *testing.T, config string) {
	cf := clientFlags{config: config}
	c, err := cf.client()
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list corev1.PodList
	if err := c.Do(ctx, "GET", "/api/v1/pods", nil, &list); err != nil {
		return
	}
	for _, p := range list.Items {
		_ = c.Do(ctx, "DELETE", "/api/v1/namespaces/"+p.Namespace+"/pods/"+p.Name, nil, nil)
	}
}

// stopContainerdOf stops the containerd whose command line names cfg (the one gantry
// up started; after a SIGKILL of gantry it is no child of anyone here).
func stopContainerdOf(t *testing.T, cfg string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(b), "containerd\x00--config\x00"+cfg+"\x00") {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for range 100 {
			if syscall.Kill(pid, 0) != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder unmounts everything mounted below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}
