package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"

	"gantry.io/gantry/store"
)

// benchPods is how many pods the benchmarks store before measuring.
const benchPods = 10000

// benchPod is a realistic pod: two containers, requests, labels, a status.
func benchPod(ns, name string) *corev1.Pod {
	p := pod(ns, name, map[string]string{"app": "app-" + name[len(name)-2:len(name)-1], "tier": "web"})
	p.Spec.NodeName = "node-" + name[len(name)-1:]
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Image: "registry.invalid/sidecar:1",
		Args: []string{"--port", "9090"}, Ports: []corev1.ContainerPort{{ContainerPort: 9090}}})
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.5", PodIPs: []corev1.PodIP{{IP: "10.244.0.5"}, {IP: "fd00:10:244::5"}}}
	return p
}

// fill stores n pods in 10 namespaces with 32 writers.
func fill(b *testing.B, pods *store.Resource[corev1.Pod, *corev1.Pod], n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				if _, err := pods.Create(context.Background(), benchPod(fmt.Sprintf("ns-%d", i%10), fmt.Sprintf("pod-%05d", i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkStore measures Get, paginated List, selector List, Create and CAS Update
// with 10,000 pods stored, on an embedded etcd with fsync on (as in production).
func BenchmarkStore(b *testing.B) {
	e := store.NewEmbedded(filepath.Join(b.TempDir(), "etcd"))
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
	pods := store.New(cli).Pods()
	start := time.Now()
	fill(b, pods, benchPods)
	b.Logf("stored %d pods in %v", benchPods, time.Since(start).Round(time.Millisecond))

	b.Run("Get", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			n := rand.IntN(benchPods)
			if _, err := pods.Get(ctx, fmt.Sprintf("ns-%d", n%10), fmt.Sprintf("pod-%05d", n)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ListPage500", func(b *testing.B) {
		cont := ""
		for b.Loop() {
			res, err := pods.List(ctx, "", store.ListOptions{Limit: 500, Continue: cont})
			if err != nil {
				b.Fatal(err)
			}
			cont = res.Continue
		}
	})
	b.Run("ListAll10000", func(b *testing.B) {
		for b.Loop() {
			res, err := pods.List(ctx, "", store.ListOptions{})
			if err != nil || len(res.Items) < benchPods {
				b.Fatal(err, len(res.Items))
			}
		}
	})
	sel := labels.SelectorFromSet(labels.Set{"app": "app-7"})
	b.Run("ListSelectorPage100", func(b *testing.B) {
		for b.Loop() {
			if _, err := pods.List(ctx, "", store.ListOptions{Selector: sel, Limit: 100}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Create", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := pods.Create(ctx, benchPod("bench", fmt.Sprintf("new-%09d", i))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateCAS", func(b *testing.B) {
		p, err := pods.Get(ctx, "ns-0", "pod-00000")
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			p.Status.Message = "x"
			if p, err = pods.Update(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
