package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

func echoDeployment(image string, deadline int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 2
  progressDeadlineSeconds: %d
  selector:
    matchLabels: {app: echo}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: echo}
    spec:
      containers:
        - name: echo
          image: %s
          readinessProbe:
            httpGet: {path: /ready, port: 8080}
            periodSeconds: 1
          resources:
            requests: {cpu: 50m, memory: 16Mi}
`, deadline, image)
}

// TestGitOpsEndToEnd: gantry up --repo git://… deploys a 2-replica echo Deployment;
// a pushed image change with a signed webhook rolls it (never fewer than 2 ready);
// a nonexistent image rolls back by itself; invalid YAML stalls with file:line and
// changes nothing.
func TestGitOpsEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go", "git")
	images := testenv.Images(t)
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "app")
	repo.Commit(t, map[string]string{"deploy/echo.yaml": echoDeployment(images.EchoV1.Ref, 600)}, "echo v1")
	repo.Push(t)

	dir, err := os.MkdirTemp("/tmp", "ggo-")
	if err != nil {
		t.Fatal(err)
	}
	bin := gantryBinary(t)
	secret := "webhook-secret-for-the-test"
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "d")
	config := filepath.Join(dir, "config")
	port := freePort(t)
	suffix := strconv.Itoa(os.Getpid() % 10000)
	bridge := "ggo" + suffix
	cmd := exec.Command(bin, "up", "--data-dir", data, "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--agent-listen", "127.0.0.1:0", "--containerd-address", filepath.Join(dir, "none.sock"),
		"--node-name", "gitops-node", "--bridge", bridge, "--service-table", bridge, "--client-config", config,
		"--cluster-cidr-v4", "10.252.0.0/16", "--cluster-cidr-v6", "fd00:10:252::/56",
		"--repo", repo.URL, "--path", "deploy", "--poll-interval", "1h", "--webhook-secret-file", secretFile,
		"--import", images.EchoV1.Archive, "--import", images.EchoV2.Archive)
	log, err := startLogged(cmd, filepath.Join(dir, "up.log"))
	if err != nil {
		t.Fatal(err)
	}
	gantry := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "GANTRY_CONFIG="+config)
		out, err := c.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		deletePods(t, config)
		time.Sleep(3 * time.Second)
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		removeAllContainersOf(filepath.Join(data, "containerd", "config.toml"), filepath.Join(data, "containerd", "c.sock"), "gantry")
		stopContainerdOf(t, filepath.Join(data, "containerd", "config.toml"))
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = exec.Command("nft", "delete", "table", "inet", bridge).Run() // the service table gantry leaves by design
		if t.Failed() {
			t.Logf("gantry up log:\n%s", log.String())
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})

	app := func() (store.App, []corev1.Pod) {
		var a store.App
		out, err := gantry("get", "apps", "echo", "-o", "json")
		if err == nil {
			_ = json.Unmarshal([]byte(out), &a)
		}
		var pods corev1.PodList
		if out, err := gantry("get", "pods", "-o", "json"); err == nil {
			_ = json.Unmarshal([]byte(out), &pods)
		}
		return a, pods.Items
	}
	ready := func(pods []corev1.Pod, image string) int {
		n := 0
		for _, p := range pods {
			if p.Spec.Containers[0].Image != image || p.Status.Phase != corev1.PodRunning {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					n++
				}
			}
		}
		return n
	}
	waitFor(t, "echo v1: 2 ready pods, Healthy", 120*time.Second, func() error {
		a, pods := app()
		if a.Status.Health != "Healthy" || ready(pods, images.EchoV1.Ref) != 2 {
			return fmt.Errorf("health %q progress %q, %d v1 ready", a.Status.Health, a.Status.Progress, ready(pods, images.EchoV1.Ref))
		}
		return nil
	})

	// A webhook with a wrong signature: 401, nothing fetched.
	hook := func(sig string) int {
		cfg, err := apiclient.LoadConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(cfg.CertificateAuthority))
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		body := []byte(`{"ref":"refs/heads/main","after":"` + repo.Head(t) + `"}`)
		if sig == "" {
			sig = "sha256=" + gitsync.SignBody(body, []byte(secret))
		}
		req, _ := http.NewRequest("POST", cfg.Server+"/api/v1/webhooks/git", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// v2: push + signed webhook → rolling update, observed step by step.
	repo.Commit(t, map[string]string{"deploy/echo.yaml": echoDeployment(images.EchoV2.Ref, 600)}, "echo v2")
	repo.Push(t)
	if code := hook("sha256=" + strings.Repeat("0", 64)); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong signature: %d, want 401", code)
	}
	time.Sleep(time.Second)
	if _, pods := app(); ready(pods, images.EchoV1.Ref) != 2 || ready(pods, images.EchoV2.Ref) != 0 {
		t.Fatalf("a rejected webhook started a rollout")
	}
	if code := hook(""); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d, want 202", code)
	}
	steps := []string{}
	waitFor(t, "echo v2 rolled out", 180*time.Second, func() error {
		a, pods := app()
		v1, v2 := ready(pods, images.EchoV1.Ref), ready(pods, images.EchoV2.Ref)
		if v1+v2 < 2 {
			t.Fatalf("ready pods fell to %d (v1 %d, v2 %d) during the rollout: below replicas - maxUnavailable = 2", v1+v2, v1, v2)
		}
		step := fmt.Sprintf("v1=%d v2=%d", v1, v2)
		if len(steps) == 0 || steps[len(steps)-1] != step {
			steps = append(steps, step)
		}
		if a.Status.Health != "Healthy" || v2 != 2 || v1 != 0 {
			return fmt.Errorf("health %q progress %q, %s", a.Status.Health, a.Status.Progress, step)
		}
		return nil
	})
	t.Logf("rollout steps: %v", steps)
	if len(steps) < 3 {
		t.Fatalf("rollout was not gradual: %v", steps)
	}
	if out, err := gantry("rollout", "status", "echo", "--timeout", "30s"); err != nil || !strings.Contains(out, "rollout of deployment/default/echo complete: revision 2") {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	if out, err := gantry("history", "echo"); err != nil || !strings.Contains(out, images.EchoV1.Ref) || !strings.Contains(out, images.EchoV2.Ref) || !strings.Contains(out, "(current)") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	_, pods := app()
	for _, p := range pods {
		if got := httpGet(t, p.Status.PodIP); !strings.Contains(got, "version=v2") {
			t.Fatalf("pod %s answers %q, want version=v2", p.Name, got)
		}
	}

	// A nonexistent image: the rollout passes its deadline and rolls back to v2.
	repo.Commit(t, map[string]string{"deploy/echo.yaml": echoDeployment("gantry.test/echo:does-not-exist", 10)}, "broken image")
	repo.Push(t)
	if code := hook(""); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d", code)
	}
	waitFor(t, "automatic rollback", 120*time.Second, func() error {
		a, pods := app()
		if !strings.Contains(a.Status.Message, "rolled back from") || ready(pods, images.EchoV2.Ref) != 2 {
			return fmt.Errorf("health %q message %q progress %q", a.Status.Health, a.Status.Message, a.Status.Progress)
		}
		return nil
	})

	// Invalid YAML: Stalled with file:line; the running pods stay as they are.
	_, before := app()
	repo.Commit(t, map[string]string{"deploy/broken.yaml": "kind: Deployment\nmetadata: [\n"}, "invalid yaml")
	repo.Push(t)
	if code := hook(""); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d", code)
	}
	waitFor(t, "Stalled", 60*time.Second, func() error {
		a, _ := app()
		if a.Status.Health != "Stalled" || len(a.Status.Diagnostics) == 0 || !strings.Contains(a.Status.Diagnostics[0], "broken.yaml:") {
			return fmt.Errorf("health %q diagnostics %v", a.Status.Health, a.Status.Diagnostics)
		}
		return nil
	})
	out, err := gantry("get", "apps")
	if err != nil || !strings.Contains(out, "Stalled") {
		t.Fatalf("get apps: %v\n%s", err, out)
	}
	_, after := app()
	if names(before) != names(after) {
		t.Fatalf("invalid YAML changed the pods: %s → %s", names(before), names(after))
	}
	if out, err := gantry("sync"); err != nil || !strings.Contains(out, "Stalled:") || !strings.Contains(out, "broken.yaml:") {
		t.Fatalf("sync: %v\n%s", err, out)
	}

	// A manual rollback pins revision 1 (v1) although git is stalled; --unpin releases it.
	if out, err := gantry("rollback", "echo", "--to-revision", "1"); err != nil || !strings.Contains(out, "pinned to revision 1") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	waitFor(t, "pinned to v1", 120*time.Second, func() error {
		a, pods := app()
		if ready(pods, images.EchoV1.Ref) != 2 || len(pods) != 2 || !strings.Contains(a.Status.Message, "pinned to revision 1") {
			return fmt.Errorf("message %q progress %q, %d v1 ready of %d pods", a.Status.Message, a.Status.Progress, ready(pods, images.EchoV1.Ref), len(pods))
		}
		return nil
	})
	if out, err := gantry("rollback", "echo", "--unpin"); err != nil || !strings.Contains(out, "pin released") {
		t.Fatalf("unpin: %v\n%s", err, out)
	}
}

func names(pods []corev1.Pod) string {
	var n []string
	for _, p := range pods {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

func httpGet(t *testing.T, ip string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, "8080") + "/")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
