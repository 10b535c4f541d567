package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
)

// xnodeManifests: web (2 replicas, dual stack) pinned to node 2, the client on node 1.
func xnodeManifests(image string) map[string]string {
	web := strings.Replace(svcWeb(image), "  replicas: 3\n", "  replicas: 2\n", 1)
	web = strings.Replace(web, "      terminationGracePeriodSeconds: 30\n", "      terminationGracePeriodSeconds: 30\n      nodeSelector: {kubernetes.io/hostname: xnode-2}\n", 1)
	client := strings.Replace(svcClient(image), "    spec:\n", "    spec:\n      nodeSelector: {kubernetes.io/hostname: xnode-1}\n", 1)
	return map[string]string{"web.yaml": web, "client.yaml": client}
}

// TestServicesCrossNodeEndToEnd: two nodes on one machine as network namespaces on a
// bridge, each running the real binary — node 1 `gantry up` (control plane, its own
// containerd, a local agent), node 2 `gantry agent --server` on the same containerd
// in its own containerd namespace. web runs on node 2, the client on node 1: pod-to-pod
// and pod-to-VIP (web.default.svc.cluster.local) requests over IPv4 all succeed and
// reach both replicas, through node 1's DNS and host-gw route.
func TestServicesCrossNodeEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go", "git", "nft", "ip", "ctr", "sysctl", "nsenter")
	images := testenv.Images(t)
	dir, err := os.MkdirTemp("/tmp", "gxn-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	bin, repo := gantryBinary(t), filepath.Join(dir, "repo")
	d1, d2 := filepath.Join(dir, "d1"), filepath.Join(dir, "d2")
	sock, ccfg := filepath.Join(d1, "containerd", "c.sock"), filepath.Join(d1, "containerd", "config.toml")
	br, _ := naNetNS(t, "gxbr")
	naSh(t, "ip", "-n", br, "link", "add", "br0", "type", "bridge")
	naSh(t, "ip", "-n", br, "link", "set", "br0", "up")
	var ns [3]string
	for i := 1; i <= 2; i++ {
		ns[i], _ = naNetNS(t, fmt.Sprintf("gxn%d", i))
		port := fmt.Sprintf("gxn%d-%d", i, os.Getpid()%10000)
		naSh(t, "ip", "-n", ns[i], "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
		naSh(t, "ip", "-n", br, "link", "set", port, "master", "br0", "up")
		naSh(t, "ip", "-n", ns[i], "addr", "add", fmt.Sprintf("192.168.78.%d/24", i), "dev", "eth0")
		naSh(t, "ip", "-n", ns[i], "addr", "add", fmt.Sprintf("fd78::%d/64", i), "dev", "eth0", "nodad")
		naSh(t, "ip", "-n", ns[i], "link", "set", "eth0", "up")
		naSh(t, "ip", "netns", "exec", ns[i], "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	// Registered after the namespaces, so it runs before they are deleted: gantry
	// stops, then the containers go through containerd's socket.
	var procs []*exec.Cmd
	t.Cleanup(func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if procs[i].ProcessState == nil {
				_ = procs[i].Process.Signal(syscall.SIGTERM)
				_ = procs[i].Wait()
			}
		}
		removeAllContainersOf(ccfg, sock, "gantry", "gantry-xn2")
		stopContainerdOf(t, ccfg)
		if t.Failed() {
			for _, l := range []string{"up.log", "agent.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, l))
				t.Logf("%s:\n%s", l, b)
			}
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) {
		t.Helper()
		c := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(repo, "README"), []byte("cross-node test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "-A")
	git("commit", "-q", "-m", "empty")

	start := func(netns, logName string, args ...string) {
		t.Helper()
		f, err := os.Create(filepath.Join(dir, logName))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// nsenter enters only the network namespace: `ip netns exec` would also remount
		// /sys, hiding the cgroup mounts runc needs.
		c := exec.Command("nsenter", append([]string{"--net=/run/netns/" + netns, bin}, args...)...)
		c.Stdout, c.Stderr = f, f
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, c)
	}
	logOf := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	suffix := strconv.Itoa(os.Getpid() % 10000)
	config := filepath.Join(dir, "config")
	start(ns[1], "up.log", "up", "--data-dir", d1, "--listen", "192.168.78.1:6443", "--agent-listen", "192.168.78.1:0",
		"--containerd-address", filepath.Join(dir, "none.sock"), "--node-name", "xnode-1", "--bridge", "gxa"+suffix,
		"--client-config", config, "--cluster-cidr-v4", "10.254.0.0/16", "--cluster-cidr-v6", "fd00:10:254::/56",
		"--san", "192.168.78.1", "--repo", repo, "--poll-interval", "1s", "--dns-upstream", "127.0.0.1:53", "--import", images.EchoV1.Archive)
	cli := func(args ...string) (string, error) {
		c := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns[1], bin}, args...)...)
		c.Env = append(os.Environ(), "GANTRY_CONFIG="+config)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	var token string
	waitFor(t, "gantry up serving on node 1", 90*time.Second, func() error {
		for _, l := range strings.Split(logOf("up.log"), "\n") {
			if f := strings.Fields(l); len(f) >= 6 && f[0] == "gantry" && f[1] == "agent" && f[4] == "--join-token" {
				token = f[5]
				return nil
			}
		}
		return fmt.Errorf("log so far:\n%s", logOf("up.log"))
	})
	if out, err := exec.Command("ctr", "--address", sock, "-n", "gantry-xn2", "images", "import", images.EchoV1.Archive).CombinedOutput(); err != nil {
		t.Fatalf("import into node 2's namespace: %v\n%s", err, out)
	}
	start(ns[2], "agent.log", "agent", "--server", "https://192.168.78.1:6443", "--join-token", token, "--node-name", "xnode-2",
		"--data-dir", d2, "--containerd-address", sock, "--namespace", "gantry-xn2", "--bridge", "gxb"+suffix,
		"--listen", "192.168.78.2:0", "--metrics-addr", "", "--dns-upstream", "127.0.0.1:53")
	waitFor(t, "both nodes Ready", 60*time.Second, func() error {
		out, err := cli("get", "nodes")
		if err != nil || strings.Count(out, " Ready ") != 2 {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	for name, body := range xnodeManifests(images.EchoV1.Ref) {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", "-A")
	git("commit", "-q", "-m", "web on node 2, client on node 1")

	var web []corev1.Pod
	var client string
	waitFor(t, "web on node 2 and the client on node 1 Ready", 120*time.Second, func() error {
		var list corev1.PodList
		out, err := cli("get", "pods", "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		web, client = nil, ""
		for _, p := range list.Items {
			ready := false
			for _, c := range p.Status.Conditions {
				ready = ready || c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue
			}
			switch {
			case !ready || len(p.Status.PodIPs) != 2:
			case strings.HasPrefix(p.Name, "web-") && p.Spec.NodeName == "xnode-2":
				web = append(web, p)
			case strings.HasPrefix(p.Name, "client-") && p.Spec.NodeName == "xnode-1":
				client = p.Name
			}
		}
		if len(web) != 2 || client == "" {
			pods, _ := cli("get", "pods", "-o", "wide")
			sync, _ := cli("sync")
			for _, p := range list.Items {
				d, _ := cli("describe", "pod", p.Name)
				l, _ := cli("logs", "--previous", p.Name)
				sync += "\n" + d + "\nlogs:\n" + l
				break
			}
			return fmt.Errorf("ready web on node 2: %v, client on node 1: %q\n%s\n%s", podNames(web), client, pods, sync)
		}
		return nil
	})
	run := func(args ...string) clientRun {
		t.Helper()
		out, err := cli(append([]string{"exec", client, "--", "/echo", "client"}, args...)...)
		if err != nil {
			t.Fatalf("exec client: %v: %s", err, out)
		}
		var r clientRun
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatalf("summary %q: %v", out, err)
		}
		return r
	}
	// Pod to pod, node 1 → node 2. IPv4 only: a node registers one InternalIP (the
	// agent's listen address, IPv4 here), and host-gw needs a node address of the
	// pod CIDR's family (TestNetAgentCrossNode covers IPv6 with dual-stack nodes).
	for _, ip := range web[0].Status.PodIPs[:1] {
		url := "http://" + net.JoinHostPort(ip.IP, "8080") + "/"
		waitFor(t, "pod-to-pod "+url, 30*time.Second, func() error {
			if r := run("--url", url, "--n", "20"); r.Failures != 0 || r.Hosts[web[0].Name] != 20 {
				return fmt.Errorf("%+v", r)
			}
			return nil
		})
	}
	// Pod to VIP by name: both replicas on node 2, every request answered.
	url := "http://web.default.svc.cluster.local/"
	waitFor(t, "service reachable from node 1", 60*time.Second, func() error {
		for _, fam := range []string{"4"} {
			if r := run("--url", url, "--n", "3", "--family", fam, "--timeout", "2s"); r.Failures != 0 {
				return fmt.Errorf("IPv%s: %+v", fam, r)
			}
		}
		return nil
	})
	for _, fam := range []string{"4"} {
		r := run("--url", url, "--n", "100", "--family", fam)
		t.Logf("node 1 → VIP over IPv%s: %d requests, %d failures, per replica %v", fam, r.Requests, r.Failures, r.Hosts)
		if r.Failures != 0 || len(r.Hosts) != 2 || r.Hosts[web[0].Name] == 0 || r.Hosts[web[1].Name] == 0 {
			t.Errorf("IPv%s: %d failures (%v), per replica %v, want both of %v", fam, r.Failures, r.Errors, r.Hosts, podNames(web))
		}
	}
	if out := naSh(t, "ip", "-n", ns[1], "route", "show", "proto", "0x67"); !strings.Contains(out, "10.254.1.0/24 via 192.168.78.2") {
		t.Errorf("node 1 has no host-gw route to node 2's pods:\n%s", out)
	}
}
