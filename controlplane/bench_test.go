package controlplane_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/store"
)

const benchPods = 10000

func benchPod(i int) *corev1.Pod {
	p := testPod(fmt.Sprintf("ns-%d", i%10), fmt.Sprintf("pod-%05d", i), fmt.Sprintf("node-%d", i%50))
	p.Labels = map[string]string{"app": fmt.Sprintf("app-%d", (i/10)%10), "tier": "web"}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "registry.invalid/sidecar:1", Args: []string{"--port", "9090"}})
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00:10:244::5"}}}
	return p
}

// fillAPI creates pods [from, to) through c with 32 concurrent writers.
func fillAPI(b *testing.B, c *apiclient.Client, from, to int) {
	b.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += 32 {
				p := benchPod(i)
				if err := c.Do(context.Background(), http.MethodPost, apiclient.Path(api.KindPod, p.Namespace, "", ""), p, nil); err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
}

// latencies records one duration per iteration and reports p50 and p99.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	pct := func(p float64) float64 { return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op") // percentiles say more than the mean here
}

// BenchmarkAPI measures API latency through real HTTPS (admin token, HTTP/2, the
// server's TLS) with 10,000 pods stored on an embedded etcd with fsync on.
func BenchmarkAPI(b *testing.B) {
	dir := b.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"))
	ctx := context.Background()
	if err := e.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	cli, err := e.Client()
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	srv := controlplane.New(store.New(cli), controlplane.WithDataDir(filepath.Join(dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(filepath.Join(dir, "config")), controlplane.WithLogger(quiet))
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	c, err := apiclient.New(apiclient.Config{Server: srv.URL(), CertificateAuthority: string(srv.CA().CertPEM), Token: srv.AdminToken().String()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	fillAPI(b, c, 0, benchPods)

	b.Run("GetPod", func(b *testing.B) {
		var l latencies
		for i := 0; b.Loop(); i++ {
			n := (i * 7919) % benchPods
			t := time.Now()
			if err := c.Do(ctx, http.MethodGet, apiclient.Path(api.KindPod, fmt.Sprintf("ns-%d", n%10), fmt.Sprintf("pod-%05d", n), ""), nil, &corev1.Pod{}); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
		}
		l.report(b)
	})
	b.Run("ListPage500", func(b *testing.B) {
		var l latencies
		cont := ""
		for b.Loop() {
			t := time.Now()
			var list pageMeta
			if err := c.Do(ctx, http.MethodGet, "/api/v1/pods?limit=500&continue="+cont, nil, &list); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
			if len(list.Items) != 500 {
				b.Fatalf("page of %d", len(list.Items))
			}
			cont = list.Metadata.Continue
		}
		l.report(b)
	})
	b.Run("ListSelectorPage100", func(b *testing.B) {
		var l latencies
		for b.Loop() {
			t := time.Now()
			if err := c.Do(ctx, http.MethodGet, "/api/v1/pods?limit=100&labelSelector=app%3Dapp-3", nil, &pageMeta{}); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
		}
		l.report(b)
	})
	b.Run("CreatePod", func(b *testing.B) {
		var l latencies
		for i := 0; b.Loop(); i++ {
			p := benchPod(i)
			p.Namespace, p.Name = "bench", fmt.Sprintf("new-%09d", i)
			t := time.Now()
			if err := c.Do(ctx, http.MethodPost, apiclient.Path(api.KindPod, "bench", "", ""), p, nil); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
		}
		l.report(b)
	})
	b.Run("UpdatePodStatus", func(b *testing.B) {
		var l latencies
		for i := 0; b.Loop(); i++ {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-1", Name: "pod-00001"},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, Message: strconv.Itoa(i)}}
			t := time.Now()
			if err := c.Do(ctx, http.MethodPut, apiclient.Path(api.KindPod, "ns-1", "pod-00001", "status"), p, nil); err != nil {
				b.Fatal(err)
			}
			l = append(l, time.Since(t))
		}
		l.report(b)
	})
	b.Run("WatchFanOut100", func(b *testing.B) {
		const watchers = 100
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		got := make(chan time.Time, watchers*64)
		rv := currentRV(b, c)
		for range watchers {
			go func() {
				_ = c.Watch(wctx, "/api/v1/namespaces/fanout/pods?resourceVersion="+rv, func(ev api.WatchEvent) error {
					got <- time.Now()
					return nil
				})
			}()
		}
		time.Sleep(2 * time.Second) // let every watch reach the server
		var l latencies
		for i := 0; b.Loop(); i++ {
			p := benchPod(i)
			p.Namespace, p.Name = "fanout", fmt.Sprintf("f-%09d", i)
			t := time.Now()
			if err := c.Do(ctx, http.MethodPost, apiclient.Path(api.KindPod, "fanout", "", ""), p, nil); err != nil {
				b.Fatal(err)
			}
			var last time.Time
			for range watchers {
				select {
				case last = <-got:
				case <-time.After(30 * time.Second):
					b.Fatal("a watcher missed an event")
				}
			}
			l = append(l, last.Sub(t)) // create sent → the 100th watcher has the event
		}
		l.report(b)
	})
}

// pageMeta reads a list page the way a proxy would, without building Pod structs:
// the latency measured is the server's and the transfer's, not client decoding.
type pageMeta struct {
	Metadata struct {
		Continue string `json:"continue"`
	} `json:"metadata"`
	Items []json.RawMessage `json:"items"`
}

func currentRV(b *testing.B, c *apiclient.Client) string {
	var list corev1.PodList
	if err := c.Do(context.Background(), http.MethodGet, "/api/v1/namespaces/fanout/pods", nil, &list); err != nil {
		b.Fatal(err)
	}
	return list.ResourceVersion
}

// BenchmarkServerRSS builds gantry, runs `gantry server` as its own process and
// reports its resident memory idle and with 10,000 pods stored (VmRSS; the embedded
// etcd is inside the process).
func BenchmarkServerRSS(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "gantry")
	if out, err := exec.Command("go", "build", "-o", bin, "gantry.io/gantry/cmd/gantry").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	cfgPath := filepath.Join(dir, "config")
	cmd := exec.Command(bin, "server", "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--client-config", cfgPath)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "join a node with") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	cfg, err := apiclient.LoadConfig(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	time.Sleep(2 * time.Second)
	idle := rssMiB(b, cmd.Process.Pid)
	fillAPI(b, c, 0, benchPods)
	// One full paginated read, as a client or the reconcile loop would do.
	cont := ""
	for {
		var list corev1.PodList
		if err := c.Do(context.Background(), http.MethodGet, "/api/v1/pods?limit=500&continue="+cont, nil, &list); err != nil {
			b.Fatal(err)
		}
		if cont = list.Continue; cont == "" {
			break
		}
	}
	time.Sleep(2 * time.Second)
	full := rssMiB(b, cmd.Process.Pid)
	for b.Loop() {
	}
	b.ReportMetric(idle, "idle-RSS-MiB")
	b.ReportMetric(full, "10k-pods-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

func rssMiB(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
