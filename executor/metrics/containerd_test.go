package metrics_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor/metrics"
)

// cgroupFiles reads the counters Decode must reproduce straight from the host's
// cgroup files: CPU nanoseconds and usage − inactive_file.
func cgroupFiles(t *testing.T, path string) (cpu, ws uint64) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil { // v2
		dir := filepath.Join("/sys/fs/cgroup", path)
		usec := statField(t, filepath.Join(dir, "cpu.stat"), "usage_usec")
		usage := readUint(t, filepath.Join(dir, "memory.current"))
		return usec * 1000, sub(usage, statField(t, filepath.Join(dir, "memory.stat"), "inactive_file"))
	}
	cpu = readUint(t, filepath.Join("/sys/fs/cgroup/cpuacct", path, "cpuacct.usage"))
	usage := readUint(t, filepath.Join("/sys/fs/cgroup/memory", path, "memory.usage_in_bytes"))
	return cpu, sub(usage, statField(t, filepath.Join("/sys/fs/cgroup/memory", path, "memory.stat"), "total_inactive_file"))
}

func sub(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}

func readUint(t *testing.T, file string) uint64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read cgroup file: %v", err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return v
}

func statField(t *testing.T, file, field string) uint64 {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("read cgroup file: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == field {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("parse %s %s: %v", file, field, err)
			}
			return n
		}
	}
	t.Fatalf("%s has no %s", file, field)
	return 0
}

// TestDecodeRealTaskMetrics runs a container on a real containerd, lets it burn some
// CPU and go idle, and checks that DecodeMetric of task.Metrics equals what the
// host's cgroup files say (cgroups v1 on this machine, v2 where the host runs it).
func TestDecodeRealTaskMetrics(t *testing.T) {
	cd := testenv.StartContainerd(t)
	images := testenv.Images(t)
	const ns = "gantry-metrics-test"
	cl, err := containerd.New(cd.Address(), containerd.WithDefaultNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	f, err := os.Open(images.Batch.Archive)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := cl.Import(ctx, f)
	f.Close()
	if err != nil || len(imgs) == 0 {
		t.Fatalf("import: %v", err)
	}
	img := containerd.NewImage(cl, imgs[0])
	if err := img.Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("unpack: %v", err)
	}

	const id = "burn"
	cgroup := "/" + ns + "/" + id
	// Burn CPU in the shell, touch some memory, then sit idle so the counters settle.
	script := "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; x=$(head -c 4000000 /dev/zero | tr '\\0' a); exec sleep 3600"
	ctr, err := cl.NewContainer(ctx, id, containerd.WithImage(img), containerd.WithSnapshotter("overlayfs"),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("/bin/sh", "-c", script), oci.WithCgroup(cgroup)))
	if err != nil {
		t.Fatalf("new container: %v", err)
	}
	t.Cleanup(func() { _ = ctr.Delete(context.Background(), containerd.WithSnapshotCleanup) })
	task, err := ctr.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("new task: %v", err)
	}
	t.Cleanup(func() {
		c := context.Background()
		if exit, err := task.Wait(c); err == nil {
			_ = task.Kill(c, syscall.SIGKILL)
			<-exit
		}
		_, _ = task.Delete(c)
	})
	if err := task.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}

	var got metrics.Sample
	matched := false
	for attempt := 0; attempt < 200 && !matched; attempt++ {
		cpuBefore, wsBefore := cgroupFiles(t, cgroup)
		m, err := task.Metrics(ctx)
		if err != nil {
			t.Fatalf("task metrics: %v", err)
		}
		got, err = metrics.DecodeMetric(m)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		cpuAfter, wsAfter := cgroupFiles(t, cgroup)
		if cpuBefore == cpuAfter && wsBefore == wsAfter && cpuAfter > 0 {
			// The cgroup was still across the call: the decoded sample must equal it.
			if got.CPUUsageNanos != cpuAfter || got.MemoryWorkingSetBytes != wsAfter {
				t.Fatalf("decoded cpu=%d ws=%d, cgroup files say cpu=%d ws=%d", got.CPUUsageNanos, got.MemoryWorkingSetBytes, cpuAfter, wsAfter)
			}
			matched = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !matched {
		t.Fatal("the container's cgroup never went idle")
	}
	if got.MemoryWorkingSetBytes == 0 || got.Time.IsZero() {
		t.Errorf("sample %+v: want a working set and a timestamp", got)
	}
	t.Logf("decoded: cpu %d ns, working set %d bytes", got.CPUUsageNanos, got.MemoryWorkingSetBytes)
}
