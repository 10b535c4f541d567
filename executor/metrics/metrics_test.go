package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/probe"
)

func v1Stats(cpuNanos, usage, inactive uint64) *v1.Metrics {
	return &v1.Metrics{
		CPU: &v1.CPUStat{Usage: &v1.CPUUsage{Total: cpuNanos, User: cpuNanos / 2}},
		Memory: &v1.MemoryStat{
			Usage:             &v1.MemoryEntry{Usage: usage, Limit: 1 << 30},
			TotalInactiveFile: inactive,
			InactiveFile:      inactive / 2, // the cgroup's own, not the hierarchy total kubelet uses
			Cache:             inactive * 2,
		},
	}
}

func v2Stats(cpuUsec, usage, inactive uint64) *v2.Metrics {
	return &v2.Metrics{
		CPU:    &v2.CPUStat{UsageUsec: cpuUsec, UserUsec: cpuUsec / 2},
		Memory: &v2.MemoryStat{Usage: usage, InactiveFile: inactive, File: inactive * 2, UsageLimit: 1 << 30},
	}
}

func TestDecode(t *testing.T) {
	mustAny := func(m interface{}) typeurl.Any {
		a, err := typeurl.MarshalAny(m)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	mustAnypb := func(a typeurl.Any) *anypb.Any { return typeurl.MarshalProto(a) }
	googleURL := func(m *v2.Metrics) typeurl.Any {
		a, err := anypb.New(m) // type.googleapis.com/io.containerd.cgroups.v2.Metrics
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name string
		in   typeurl.Any
		want Sample
	}{
		{"v1", mustAny(v1Stats(5_000_000_000, 300<<20, 100<<20)), Sample{CPUUsageNanos: 5_000_000_000, MemoryWorkingSetBytes: 200 << 20}},
		{"v1 as anypb", mustAnypb(mustAny(v1Stats(7, 1000, 0))), Sample{CPUUsageNanos: 7, MemoryWorkingSetBytes: 1000}},
		{"v1 inactive above usage", mustAny(v1Stats(1, 100, 200)), Sample{CPUUsageNanos: 1, MemoryWorkingSetBytes: 0}},
		{"v1 empty", mustAny(&v1.Metrics{}), Sample{}},
		{"v2 usec to nanos", mustAny(v2Stats(2_500_000, 64<<20, 16<<20)), Sample{CPUUsageNanos: 2_500_000_000, MemoryWorkingSetBytes: 48 << 20}},
		{"v2 type.googleapis.com URL", googleURL(v2Stats(1, 10, 4)), Sample{CPUUsageNanos: 1000, MemoryWorkingSetBytes: 6}},
		{"v2 inactive above usage", mustAny(v2Stats(0, 5, 9)), Sample{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("Decode (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeMetric(t *testing.T) {
	at := time.Date(2026, 12, 1, 19, 30, 0, 0, time.UTC)
	data, err := typeurl.MarshalAnyToProto(v2Stats(1_000_000, 2048, 1024))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMetric(&types.Metric{ID: "c1", Timestamp: timestamppb.New(at), Data: data})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Sample{CPUUsageNanos: 1_000_000_000, MemoryWorkingSetBytes: 1024, Time: at}); got != want {
		t.Errorf("DecodeMetric = %+v, want %+v", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	other, _ := anypb.New(timestamppb.Now())
	bad := &anypb.Any{TypeUrl: TypeCgroupV1, Value: []byte{0xff, 0xff, 0xff}}
	for name, in := range map[string]typeurl.Any{"other type": other, "garbage": bad, "nil": nil} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(in); !errors.Is(err, api.ErrInvalidArgument) {
				t.Errorf("Decode = %v, want ErrInvalidArgument", err)
			}
		})
	}
	if _, err := DecodeMetric(&types.Metric{}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("DecodeMetric(empty) = %v", err)
	}
	if _, err := DecodeMetric(nil); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("DecodeMetric(nil) = %v", err)
	}
}

var t0 = time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)

func id(pod, container, rid string) ContainerID {
	return ContainerID{Namespace: "default", Pod: pod, Container: container, ID: rid}
}

func smp(sec int, cpuNanos, mem uint64) Sample {
	return Sample{CPUUsageNanos: cpuNanos, MemoryWorkingSetBytes: mem, Time: t0.Add(time.Duration(sec) * time.Second)}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestStore(t *testing.T) {
	s := NewStore()
	if _, _, ok := s.PodUsage("default", "web"); ok {
		t.Fatal("unknown pod reported ok")
	}
	s.Record(id("web", "app", "a1"), smp(0, 1e9, 100))
	if u, _ := s.Container("default", "web", "app"); u.HasRate {
		t.Fatal("rate from one sample")
	}
	if _, _, ok := s.PodUsage("default", "web"); ok {
		t.Fatal("pod ok with one sample")
	}
	s.Record(id("web", "app", "a1"), smp(10, 6e9, 200)) // 5 s of CPU in 10 s = 0.5 cores
	s.Record(id("web", "app", "a1"), smp(10, 9e9, 999)) // same time: ignored
	u, ok := s.Container("default", "web", "app")
	if !ok || !u.HasRate || !near(u.CPUCores, 0.5) || u.Latest.MemoryWorkingSetBytes != 200 {
		t.Fatalf("after two samples: %+v", u)
	}
	// A second container: pod usage needs a rate for both.
	s.Record(id("web", "sidecar", "b1"), smp(10, 0, 50))
	if _, _, ok := s.PodUsage("default", "web"); ok {
		t.Fatal("pod ok while a container has no rate")
	}
	s.Record(id("web", "sidecar", "b1"), smp(20, 2e10, 70)) // 2 cores
	s.Record(id("web", "app", "a1"), smp(20, 8e9, 300))     // 0.2 cores
	cpu, mem, ok := s.PodUsage("default", "web")
	if !ok || !near(cpu, 2.2) || mem != 370 {
		t.Fatalf("PodUsage = %v %v %v, want 2.2 370 true", cpu, mem, ok)
	}
	if _, _, ok := s.PodUsage("other", "web"); ok {
		t.Error("pod found in the wrong namespace")
	}

	// Restart: a new runtime ID starts over, even though the counter is higher.
	s.Record(id("web", "app", "a2"), smp(30, 9e9, 10))
	if u, _ := s.Container("default", "web", "app"); u.HasRate {
		t.Errorf("rate across a restart: %+v", u)
	}
	// Counter going backwards under the same ID also starts over.
	s.Record(id("web", "sidecar", "b1"), smp(30, 1e9, 70))
	if u, _ := s.Container("default", "web", "sidecar"); u.HasRate {
		t.Errorf("rate across a counter reset: %+v", u)
	}

	s.Retain([]ContainerID{id("web", "sidecar", "b1")})
	if _, ok := s.Container("default", "web", "app"); ok {
		t.Error("Retain kept a container not listed")
	}
	if got := len(s.All()); got != 1 {
		t.Errorf("All has %d entries, want 1", got)
	}
}

// fakeSource serves scripted samples: cpu grows by rate cores per second of the fake
// clock; a container listed in fail errors.
type fakeSource struct {
	mu     sync.Mutex
	clock  *probe.FakeClock
	ids    []ContainerID
	rate   map[string]float64 // container → cores
	mem    map[string]uint64
	fail   map[string]bool
	listOK bool
	start  time.Time
}

func (f *fakeSource) Containers(ctx context.Context) ([]ContainerID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.listOK {
		return nil, fmt.Errorf("containerd: %w", api.ErrUnavailable)
	}
	return append([]ContainerID(nil), f.ids...), nil
}

func (f *fakeSource) Sample(ctx context.Context, id ContainerID) (Sample, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[id.Container] {
		return Sample{}, fmt.Errorf("task %s: %w", id.ID, api.ErrNotFound)
	}
	elapsed := f.clock.Now().Sub(f.start).Seconds()
	return Sample{CPUUsageNanos: uint64(f.rate[id.Container] * elapsed * 1e9), MemoryWorkingSetBytes: f.mem[id.Container]}, nil
}

func TestSampler(t *testing.T) {
	clock := probe.NewFakeClock(t0)
	src := &fakeSource{
		clock:  clock,
		start:  t0.Add(-time.Minute),
		ids:    []ContainerID{id("web", "app", "a1"), id("web", "log", "l1"), id("db", "pg", "p1")},
		rate:   map[string]float64{"app": 0.25, "log": 0.05, "pg": 1.5},
		mem:    map[string]uint64{"app": 64 << 20, "log": 8 << 20, "pg": 512 << 20},
		fail:   map[string]bool{},
		listOK: true,
	}
	store := NewStore()
	sampler := NewSampler(src, store, WithInterval(10*time.Second), WithClock(clock))
	swept := make(chan struct{}, 10)
	sampler.afterSweep = func() { swept <- struct{}{} }
	waitSweep := func() {
		t.Helper()
		select {
		case <-swept:
		case <-time.After(10 * time.Second):
			t.Fatal("no sweep")
		}
	}
	sampler.Start(context.Background())
	t.Cleanup(func() { sampler.Close() })

	waitSweep() // at Start
	if _, _, ok := store.PodUsage("default", "web"); ok {
		t.Fatal("rate after one sweep")
	}
	clock.Advance(5 * time.Second) // not yet a tick
	clock.Advance(5 * time.Second)
	waitSweep()
	cpu, mem, ok := store.PodUsage("default", "web")
	if !ok || !near(cpu, 0.30) || mem != 72<<20 {
		t.Fatalf("web usage = %v %v %v, want 0.30 cores, 72 MiB", cpu, mem, ok)
	}
	if cpu, _, ok := store.PodUsage("default", "db"); !ok || !near(cpu, 1.5) {
		t.Fatalf("db usage = %v %v", cpu, ok)
	}

	// One container's task vanishes: skipped, reported, the others still sampled.
	src.mu.Lock()
	src.fail["log"] = true
	src.mu.Unlock()
	clock.Advance(10 * time.Second)
	waitSweep()
	if err := sampler.LastError(); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "default/web/log") {
		t.Errorf("LastError = %v, want the log container's NotFound", err)
	}
	if u, _ := store.Container("default", "db", "pg"); u.Latest.Time != t0.Add(20*time.Second) {
		t.Errorf("pg not sampled in the sweep with a failure: %+v", u.Latest)
	}

	// The listing fails: nothing is forgotten.
	src.mu.Lock()
	src.listOK = false
	src.mu.Unlock()
	clock.Advance(10 * time.Second)
	waitSweep()
	if err := sampler.LastError(); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("LastError = %v, want ErrUnavailable", err)
	}
	if len(store.All()) != 3 {
		t.Errorf("store has %d containers after a failed listing, want 3", len(store.All()))
	}

	// The db pod goes away: forgotten at the next sweep.
	src.mu.Lock()
	src.listOK = true
	src.fail = map[string]bool{}
	src.ids = src.ids[:2]
	src.mu.Unlock()
	clock.Advance(10 * time.Second)
	waitSweep()
	if _, _, ok := store.PodUsage("default", "db"); ok {
		t.Error("removed pod still reported")
	}
	if sampler.LastError() != nil {
		t.Errorf("LastError = %v after a clean sweep", sampler.LastError())
	}
	if err := sampler.Close(); err != nil {
		t.Fatal(err)
	}
	if clock.Tickers() != 0 {
		t.Errorf("%d tickers left after Close", clock.Tickers())
	}
}

func TestCollector(t *testing.T) {
	store := NewStore()
	store.Record(ContainerID{Namespace: "shop", Pod: "web-1", Container: "app", ID: "a"}, Sample{CPUUsageNanos: 1_500_000_000, MemoryWorkingSetBytes: 4096, Time: t0})
	store.Record(ContainerID{Namespace: "shop", Pod: "web-1", Container: "proxy", ID: "b"}, Sample{CPUUsageNanos: 250_000_000, MemoryWorkingSetBytes: 1024, Time: t0})
	c := NewCollector(store)
	want := `
# HELP gantry_container_cpu_usage_seconds_total Cumulative CPU time consumed by the container, in seconds.
# TYPE gantry_container_cpu_usage_seconds_total counter
gantry_container_cpu_usage_seconds_total{container="app",namespace="shop",pod="web-1"} 1.5
gantry_container_cpu_usage_seconds_total{container="proxy",namespace="shop",pod="web-1"} 0.25
# HELP gantry_container_memory_working_set_bytes Memory working set of the container (usage minus inactive file cache), in bytes.
# TYPE gantry_container_memory_working_set_bytes gauge
gantry_container_memory_working_set_bytes{container="app",namespace="shop",pod="web-1"} 4096
gantry_container_memory_working_set_bytes{container="proxy",namespace="shop",pod="web-1"} 1024
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatalf("register: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 4 {
		t.Errorf("GatherAndCount = %d, %v; want 4", n, err)
	}
	// A label value that is not UTF-8 drops that container instead of failing the scrape.
	store.Record(ContainerID{Namespace: "shop", Pod: "bad\xff", Container: "x"}, Sample{Time: t0})
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 4 {
		t.Errorf("with a bad label: GatherAndCount = %d, %v; want 4", n, err)
	}
}

// hungSource answers the listing but never a sample.
type hungSource struct{}

func (hungSource) Containers(ctx context.Context) ([]ContainerID, error) {
	return []ContainerID{id("web", "app", "a1")}, nil
}

func (hungSource) Sample(ctx context.Context, id ContainerID) (Sample, error) {
	<-ctx.Done()
	return Sample{}, ctx.Err()
}

func TestSweepIsBoundedByInterval(t *testing.T) {
	s := NewSampler(hungSource{}, NewStore(), WithInterval(50*time.Millisecond), WithClock(probe.NewFakeClock(t0)))
	if err := s.Sweep(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sweep = %v, want a deadline error", err)
	}
}
