package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/e2e/testenv"
	gitsync "gantry.io/gantry/sync"
)

// benchPushes is how many pushes BenchmarkGitPushToRunning times.
const benchPushes = 20

// pushDeployment is the Deployment of the push benchmark: one replica whose env
// value changes with each push (the image stays, pre-imported), no readiness
// probe, so "running" is the containers running.
func pushDeployment(image string, push int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: 1
  selector:
    matchLabels: {app: bench}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: bench}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: %s
          env:
            - {name: PUSH, value: "%d"}
          resources:
            requests: {cpu: 10m, memory: 16Mi}
`, image, push)
}

// BenchmarkGitPushToRunning: `gantry up` follows a repository on a git daemon on
// 127.0.0.1 (poll interval 1h: only the webhook triggers fetches), its image
// pre-imported. Each of 20 pushes commits a new env value, pushes, posts the signed
// webhook, and polls the API every 10 ms until the new pod's containers run. It
// reports p50/p99 of that latency and the p50 of its phases: webhook → fetched
// (GET /api/v1/sync shows the commit), fetched → placed (the new pod is in the
// store, bound to the node), placed → running (the agent reports every container
// running). Run by make bench (docs/BENCHMARKS.md, GitOps section); not a test.
func BenchmarkGitPushToRunning(b *testing.B) {
	testenv.Integration(b, "containerd", "runc", "containerd-shim-runc-v2", "go", "git")
	images := testenv.Images(b)
	git := testenv.StartGitDaemon(b)
	repo := git.NewRepo(b, "bench")
	repo.Commit(b, map[string]string{"deploy/bench.yaml": pushDeployment(images.EchoV1.Ref, 0)}, "push 0")
	repo.Push(b)

	dir, err := os.MkdirTemp("/tmp", "gbp-")
	if err != nil {
		b.Fatal(err)
	}
	bin := gantryBinary(b)
	secret := []byte("webhook-secret-for-the-benchmark")
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		b.Fatal(err)
	}
	data := filepath.Join(dir, "d")
	config := filepath.Join(dir, "config")
	bridge := "gbp" + strconv.Itoa(os.Getpid()%10000)
	port := strconv.Itoa(benchFreePort(b))
	cmd := exec.Command(bin, "up", "--data-dir", data, "--listen", "127.0.0.1:"+port,
		"--agent-listen", "127.0.0.1:0", "--containerd-address", filepath.Join(dir, "none.sock"),
		"--node-name", "bench-node", "--bridge", bridge, "--service-table", bridge, "--client-config", config,
		"--cluster-cidr-v4", "10.248.0.0/16", "--cluster-cidr-v6", "fd00:10:248::/56",
		"--repo", repo.URL, "--path", "deploy", "--poll-interval", "1h", "--webhook-secret-file", secretFile,
		"--import", images.EchoV1.Archive)
	log, err := startLogged(cmd, filepath.Join(dir, "up.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		deletePods(nil, config)
		time.Sleep(3 * time.Second)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		removeAllContainersOf(filepath.Join(data, "containerd", "config.toml"), filepath.Join(data, "containerd", "c.sock"), "gantry")
		stopContainerdOf(nil, filepath.Join(data, "containerd", "config.toml"))
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = exec.Command("nft", "delete", "table", "inet", bridge).Run() // the service table gantry leaves by design
		if b.Failed() {
			b.Logf("gantry up log:\n%s", log.String())
		}
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	})

	var c *apiclient.Client
	benchWait(b, "client config", 60*time.Second, func() error {
		cfg, err := apiclient.LoadConfig(config)
		if err != nil {
			return err
		}
		c, err = apiclient.New(cfg)
		return err
	})
	defer c.Close()
	cfg, _ := apiclient.LoadConfig(config)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cfg.CertificateAuthority))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := context.Background()

	pods := func() []corev1.Pod {
		var list corev1.PodList
		if err := c.Do(ctx, "GET", "/api/v1/pods", nil, &list); err != nil {
			return nil
		}
		return list.Items
	}
	pushOf := func(p corev1.Pod) string {
		for _, e := range p.Spec.Containers[0].Env {
			if e.Name == "PUSH" {
				return e.Value
			}
		}
		return ""
	}
	settled := func(n int) error {
		ps := pods()
		if len(ps) != 1 || pushOf(ps[0]) != strconv.Itoa(n) || !allRunning(ps[0].Status) {
			return fmt.Errorf("%d pods", len(ps))
		}
		return nil
	}
	benchWait(b, "push 0 running", 120*time.Second, func() error { return settled(0) })

	var total, fetch, place, start []time.Duration
	b.ResetTimer()
	for n := 1; n <= benchPushes; n++ {
		want := strconv.Itoa(n)
		head := repo.Commit(b, map[string]string{"deploy/bench.yaml": pushDeployment(images.EchoV1.Ref, n)}, "push "+want)
		repo.Push(b)
		body := []byte(`{"ref":"refs/heads/main","after":"` + head + `"}`)
		req, _ := http.NewRequest("POST", cfg.Server+"/api/v1/webhooks/git", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+gitsync.SignBody(body, secret))
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("webhook: %d", resp.StatusCode)
		}
		var tFetch, tPlace, tRun time.Duration
		deadline := t0.Add(60 * time.Second)
		for tRun == 0 {
			if time.Now().After(deadline) {
				b.Fatalf("push %d: not running after 60 s (fetched %v, placed %v)", n, tFetch, tPlace)
			}
			if tFetch == 0 {
				var st controlplane.SourceStatus
				if err := c.Do(ctx, "GET", "/api/v1/sync", nil, &st); err == nil && st.FetchedCommit == head {
					tFetch = time.Since(t0)
				}
			}
			for _, p := range pods() {
				if pushOf(p) != want {
					continue
				}
				if tPlace == 0 && p.Spec.NodeName != "" {
					tPlace = time.Since(t0)
				}
				if allRunning(p.Status) {
					tRun = time.Since(t0)
				}
			}
			if tRun == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		// A phase that ended between two polls ends with the next one.
		if tPlace == 0 {
			tPlace = tRun
		}
		if tFetch == 0 || tFetch > tPlace {
			tFetch = tPlace
		}
		total = append(total, tRun)
		fetch = append(fetch, tFetch)
		place = append(place, tPlace-tFetch)
		start = append(start, tRun-tPlace)
		// Printed, not logged: the benchmark log is cut after ten lines.
		fmt.Printf("push %2d: running after %4d ms (fetch %4d, plan+place %4d, start %4d)\n", n, tRun.Milliseconds(), tFetch.Milliseconds(), (tPlace - tFetch).Milliseconds(), (tRun - tPlace).Milliseconds())
		b.StopTimer()
		benchWait(b, "rollout of push "+want+" complete", 60*time.Second, func() error { return settled(n) })
		b.StartTimer()
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(total, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(total, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(fetch, 50)), "fetch-p50-ms")
	b.ReportMetric(ms(percentile(place, 50)), "place-p50-ms")
	b.ReportMetric(ms(percentile(start, 50)), "start-p50-ms")
}

// percentile is the nearest-rank percentile of ds (the maximum for p99 of 20).
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100
	return s[max(i-1, 0)]
}

func benchFreePort(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func benchWait(b *testing.B, what string, limit time.Duration, f func() error) {
	b.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s: %v", what, err)
}
