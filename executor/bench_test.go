package executor_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"gantry.io/gantry/executor"
	"gantry.io/gantry/executor/sandbox"
)

const (
	benchSequential = 50
	benchConcurrent = 20
)

// BenchmarkPodStart measures pod start latency — from the Sync call to the status sink
// reporting every container running — for one-container pods with networking and a
// pre-pulled image: 50 pods one after another (the earlier ones keep running), then 20
// at once. In the same run, the baseline is the same image started 50 times with the
// bare containerd client (new container + task, no network). It reports p50/p99 of
// each, the ratios to the baseline, the p50 and p99 of each phase of the sequential
// starts (sandbox phases from sandbox.WithTrace — "wait" is how long the container's
// start waited for the CNI ADD that ran during its create, the part not overlapped —
// and executor phases from the pod's events), and
// the test process's RSS with 50 pods running. WithMaxParallel is 20, so the 20 pods
// at once all work at the same time.
// Each iteration does the whole procedure; run it with -benchtime=1x.
func BenchmarkPodStart(b *testing.B) {
	var phases phaseTimes
	en := newEnvWith(b, []sandbox.Option{sandbox.WithTrace(phases.add)},
		executor.WithMetricsInterval(time.Hour), executor.WithMaxParallel(benchConcurrent))
	for i := 0; i < b.N; i++ {
		base := baselineStarts(b, en, benchSequential)

		var pods []executor.Pod
		var seq []time.Duration
		for j := 0; j < benchSequential; j++ {
			p := benchPod(fmt.Sprintf("seq-%d-%d", i, j))
			pods = append(pods, executor.Pod{Pod: p})
			start := time.Now()
			en.e.Sync(pods)
			at := en.waitRunning(b, p.UID)
			seq = append(seq, at.Sub(start))
			// Executor phases from the pod's events: Sync → sandbox ready → task
			// started → first status with the container running. The sandbox's CNI
			// ADD runs while the container and its task are created, and the ready
			// sandbox is collected right before task.Start: Sync → sandbox ready is
			// the longer of the two, sandbox ready → started is the start itself.
			for _, ev := range en.e.Events(string(p.UID)) {
				switch ev.Reason {
				case "SandboxReady":
					phases.add("sync-to-sandbox", ev.Time.Sub(start))
				case "Started":
					phases.add("start-to-status", at.Sub(ev.Time))
					for _, ev0 := range en.e.Events(string(p.UID)) {
						if ev0.Reason == "SandboxReady" {
							phases.add("sandbox-to-started", ev.Time.Sub(ev0.Time))
						}
					}
				}
			}
		}
		seqPhases := phases.take()
		rss := rssBytes()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		removeAll(b, en)

		var burst []executor.Pod
		for j := 0; j < benchConcurrent; j++ {
			burst = append(burst, executor.Pod{Pod: benchPod(fmt.Sprintf("par-%d-%d", i, j))})
		}
		start := time.Now()
		en.e.Sync(burst)
		var par []time.Duration
		for _, p := range burst {
			par = append(par, en.waitRunning(b, p.Pod.UID).Sub(start))
		}
		removeAll(b, en)

		b.ReportMetric(ms2(pct(seq, 50)), "seq-p50-ms")
		b.ReportMetric(ms2(pct(seq, 99)), "seq-p99-ms")
		b.ReportMetric(ms2(pct(par, 50)), "par20-p50-ms")
		b.ReportMetric(ms2(pct(par, 99)), "par20-p99-ms")
		b.ReportMetric(ms2(pct(base, 50)), "bare-p50-ms")
		b.ReportMetric(ms2(pct(base, 99)), "bare-p99-ms")
		b.ReportMetric(float64(pct(seq, 50))/float64(pct(base, 50)), "ratio-p50")
		b.ReportMetric(float64(pct(seq, 99))/float64(pct(base, 99)), "ratio-p99")
		for _, name := range sortedKeys(seqPhases) {
			b.ReportMetric(ms2(pct(seqPhases[name], 50)), "seq-"+name+"-p50-ms")
			b.ReportMetric(ms2(pct(seqPhases[name], 99)), "seq-"+name+"-p99-ms")
		}
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB-50pods")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB-50pods")
	}
}

func benchPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name, UID: types.UID(name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36))},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers:                    []corev1.Container{{Name: "web", Image: "gantry.test/echo:v1"}},
		},
	}
}

// waitRunning returns when the sink first reported the pod running.
func (en *env) waitRunning(tb testing.TB, uid types.UID) time.Time {
	tb.Helper()
	var at time.Time
	waitFor(tb, 120*time.Second, "pod running", func() bool {
		t, ok := en.firstRunningAt(string(uid))
		at = t
		return ok
	}, func() string { return en.describe(uid) })
	return at
}

func removeAll(tb testing.TB, en *env) {
	tb.Helper()
	en.e.Sync(nil)
	waitFor(tb, 120*time.Second, "all pods removed", func() bool { return len(en.e.PodUIDs()) == 0 },
		func() string { return strings.Join(en.e.PodUIDs(), ",") })
}

// baselineStarts starts and removes n containers of the echo image with the bare
// client, returning each create-to-running time.
func baselineStarts(tb testing.TB, en *env, n int) []time.Duration {
	tb.Helper()
	cl := en.e.Client()
	ctx := namespaces.WithNamespace(context.Background(), en.e.Namespace())
	img, err := cl.GetImage(ctx, "gantry.test/echo:v1")
	if err != nil {
		tb.Fatal(err)
	}
	var out []time.Duration
	var made []containerd.Container
	defer func() {
		for _, c := range made {
			if t, err := c.Task(ctx, nil); err == nil {
				_, _ = t.Delete(ctx, containerd.WithProcessKill)
			}
			_ = c.Delete(ctx, containerd.WithSnapshotCleanup)
		}
	}()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("bare-%d-%d", i, time.Now().UnixNano())
		start := time.Now()
		c, err := cl.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithSnapshotter("overlayfs"),
			containerd.WithNewSnapshot(id, img), containerd.WithNewSpec(oci.WithImageConfig(img)))
		if err != nil {
			tb.Fatal(err)
		}
		made = append(made, c)
		task, err := c.NewTask(ctx, cio.NullIO)
		if err != nil {
			tb.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			tb.Fatal(err)
		}
		out = append(out, time.Since(start))
	}
	return out
}

func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms2(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func rssBytes() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

// phaseTimes collects durations by phase name (sandbox.WithTrace and pod events).
type phaseTimes struct {
	mu sync.Mutex
	m  map[string][]time.Duration
}

func (p *phaseTimes) add(name string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]time.Duration{}
	}
	p.m[name] = append(p.m[name], d)
}

// take returns what was collected and starts afresh.
func (p *phaseTimes) take() map[string][]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.m
	p.m = nil
	return m
}

func sortedKeys(m map[string][]time.Duration) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
