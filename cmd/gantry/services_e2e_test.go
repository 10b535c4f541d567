package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/e2e/testenv"
)

// svcWeb is manifests-example/web.yaml without its ConfigMap and Vault secret (other
// tests cover those), dual stack, with a preStop sleep so a pod keeps serving while
// the agents drop it from the service (the removal crosses the store, the
// EndpointSlice, the feed and the agent's nftables: well under a second here). Until
// the executor ran sleep hooks, each old pod refused one connection.
func svcWeb(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 30
      containers:
        - name: web
          image: %s
          ports:
            - {name: http, containerPort: 8080}
          lifecycle:
            preStop:
              sleep: {seconds: 5}
          readinessProbe:
            httpGet: {path: /ready, port: http}
            periodSeconds: 1
          resources:
            requests: {cpu: 50m, memory: 16Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ipFamilyPolicy: PreferDualStack
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
`, image)
}

// svcClient is the pod the test sends requests from (`echo client` through gantry
// exec); it serves echo too, which nothing uses.
func svcClient(image string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: client
spec:
  replicas: 1
  selector:
    matchLabels: {app: client}
  template:
    metadata:
      labels: {app: client}
    spec:
      containers:
        - name: client
          image: %s
          resources:
            requests: {cpu: 50m, memory: 16Mi}
`, image)
}

// clientRun is the summary `echo client` prints.
type clientRun struct {
	Requests int            `json:"requests"`
	Failures int            `json:"failures"`
	Hosts    map[string]int `json:"hosts"`
	Versions map[string]int `json:"versions"`
	Errors   []string       `json:"errors"`
}

// runClient runs `echo client` in the client pod with args and decodes its summary.
func svcRunClient(u *upProcess, pod string, args ...string) (clientRun, error) {
	out, err := u.gantry(append([]string{"exec", pod, "--", "/echo", "client"}, args...)...)
	if err != nil {
		return clientRun{}, fmt.Errorf("exec: %v: %s", err, out)
	}
	var r clientRun
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return clientRun{}, fmt.Errorf("summary %q: %v", out, err)
	}
	return r, nil
}

// readyPods returns the Running and Ready pods whose name starts with prefix,
// sorted by name.
func readyPods(u *upProcess, prefix string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range u.pods() {
		if !strings.HasPrefix(p.Name, prefix) || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func podNames(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

// nftTable lists the service table ("" if it cannot be listed).
func nftTable(table string) string {
	out, _ := exec.Command("nft", "list", "table", "inet", table).CombinedOutput()
	return string(out)
}

// setReady flips an echo pod's readiness toggle from the host.
func setReady(t *testing.T, pod corev1.Pod, on bool) {
	t.Helper()
	state := "off"
	if on {
		state = "on"
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+net.JoinHostPort(pod.Status.PodIP, "8080")+"/ready?state="+state, "text/plain", nil)
	if err != nil {
		t.Fatalf("readiness of %s %s: %v", pod.Name, state, err)
	}
	resp.Body.Close()
}

// TestServicesEndToEnd: gantry up --repo with web (3 replicas, dual-stack Service)
// and a client pod. From the client, 300 requests to web.default.svc.cluster.local
// over IPv4 and 300 over IPv6 all succeed and reach every replica; the client's
// resolv.conf points at the node's DNS with the Kubernetes search path; a replica
// made unready gets none of the next 300 requests; a rolling update to v2 under load
// fails no request.
func TestServicesEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go", "git", "nft", "ip")
	images := testenv.Images(t)
	table := fmt.Sprintf("gsvc-e2e-%d", os.Getpid())
	// Registered before startUpProcess: runs after gantry stopped (which leaves the
	// table in place by design).
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", table).Run() })
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "svc")
	repo.Commit(t, map[string]string{"web.yaml": svcWeb(images.EchoV1.Ref), "client.yaml": svcClient(images.EchoV1.Ref)}, "web v1")
	repo.Push(t)
	u := startUpProcess(t, "gsvc-", "svc-node", "10.247.0.0/16", "fd00:10:247::/56",
		"--repo", repo.URL, "--poll-interval", "1s", "--service-table", table,
		"--import", images.EchoV1.Archive, "--import", images.EchoV2.Archive)

	var web []corev1.Pod
	var client string
	waitFor(t, "3 web pods and the client Ready", 120*time.Second, func() error {
		web = readyPods(u, "web-")
		c := readyPods(u, "client-")
		if len(web) != 3 || len(c) != 1 {
			return fmt.Errorf("ready web %v, client %v", podNames(web), podNames(c))
		}
		client = c[0].Name
		return nil
	})
	url := "http://web.default.svc.cluster.local/"
	// Propagation: the first requests may precede the service's rules and records.
	waitFor(t, "the service answers from the client over both families", 60*time.Second, func() error {
		for _, fam := range []string{"4", "6"} {
			r, err := svcRunClient(u, client, "--url", url, "--n", "3", "--family", fam, "--timeout", "2s")
			if err != nil || r.Failures > 0 {
				return fmt.Errorf("IPv%s: %+v %v", fam, r, err)
			}
		}
		return nil
	})
	rc, err := u.gantry("exec", client, "--", "/bin/cat", "/etc/resolv.conf")
	if err != nil || !strings.Contains(rc, "search default.svc.cluster.local svc.cluster.local cluster.local\n") ||
		!strings.Contains(rc, "options ndots:5\n") || !strings.Contains(rc, "nameserver 10.247.") || !strings.Contains(rc, "nameserver fd00:10:247:") {
		t.Fatalf("client resolv.conf: %v\n%s", err, rc)
	}

	for _, fam := range []string{"4", "6"} {
		r, err := svcRunClient(u, client, "--url", url, "--n", "300", "--family", fam)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("IPv%s: %d requests, %d failures, per replica %v", fam, r.Requests, r.Failures, r.Hosts)
		if r.Requests != 300 || r.Failures != 0 {
			t.Errorf("IPv%s: %d requests, %d failed: %v", fam, r.Requests, r.Failures, r.Errors)
		}
		for _, p := range web {
			if r.Hosts[p.Name] == 0 {
				t.Errorf("IPv%s: replica %s got none of the requests: %v", fam, p.Name, r.Hosts)
			}
		}
		if len(r.Hosts) != 3 {
			t.Errorf("IPv%s: answers from %v, want the 3 replicas %v", fam, r.Hosts, podNames(web))
		}
	}

	// One replica unready: once the agent dropped it from the rules, it gets nothing.
	off := web[0]
	setReady(t, off, false)
	waitFor(t, "unready replica out of the service rules", 60*time.Second, func() error {
		rules := nftTable(table)
		if !strings.Contains(rules, "svc/default/web") {
			return fmt.Errorf("no web chain in table %s:\n%s", table, rules)
		}
		for _, ip := range off.Status.PodIPs {
			if strings.Contains(rules, ip.IP+" ") || strings.Contains(rules, ip.IP+"]") || strings.Contains(rules, ip.IP+":") {
				return fmt.Errorf("%s still in the rules", ip.IP)
			}
		}
		return nil
	})
	for _, fam := range []string{"4", "6"} {
		r, err := svcRunClient(u, client, "--url", url, "--n", "300", "--family", fam)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("IPv%s with %s unready: %d failures, per replica %v", fam, off.Name, r.Failures, r.Hosts)
		if r.Failures != 0 || r.Hosts[off.Name] != 0 || len(r.Hosts) != 2 {
			t.Errorf("IPv%s with %s unready: %d failures (%v), per replica %v", fam, off.Name, r.Failures, r.Errors, r.Hosts)
		}
	}
	setReady(t, off, true)
	waitFor(t, "replica back in the service", 60*time.Second, func() error {
		if len(readyPods(u, "web-")) != 3 {
			return fmt.Errorf("ready: %v", podNames(readyPods(u, "web-")))
		}
		r, err := svcRunClient(u, client, "--url", url, "--n", "30", "--family", "4")
		if err != nil || r.Hosts[off.Name] == 0 {
			return fmt.Errorf("%+v %v", r, err)
		}
		return nil
	})

	// A rolling update under load: the client runs until 50 answers in a row come
	// from v2 (at most 6000 requests), and none may fail.
	type result struct {
		r   clientRun
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := svcRunClient(u, client, "--url", url, "--n", "6000", "--interval", "20ms", "--family", "4",
			"--until-version", "v2", "--streak", "50")
		done <- result{r, err}
	}()
	time.Sleep(2 * time.Second) // some v1 answers first
	repo.Commit(t, map[string]string{"web.yaml": svcWeb(images.EchoV2.Ref)}, "web v2")
	repo.Push(t)
	var res result
	select {
	case res = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("client still running 5 minutes after the rollout began")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Logf("rolling update: %d requests, %d failures, versions %v, pods %v", res.r.Requests, res.r.Failures, res.r.Versions, res.r.Hosts)
	if res.r.Failures != 0 {
		t.Errorf("rolling update: %d of %d requests failed: %v", res.r.Failures, res.r.Requests, res.r.Errors)
	}
	if res.r.Versions["v1"] == 0 || res.r.Versions["v2"] < 50 {
		t.Errorf("rolling update: versions %v, want v1 answers then at least 50 from v2", res.r.Versions)
	}
}
