package metrics

import (
	"sort"
	"sync"
	"time"
)

// ContainerID names one container for sampling.
type ContainerID struct {
	Namespace, Pod, Container string
	// ID is the runtime's container ID, opaque here; when it changes (the container
	// was restarted) the CPU counter starts over, so the rate is recomputed from
	// fresh samples.
	ID string
}

// Usage is what the Store knows about one container.
type Usage struct {
	ContainerID
	// CPUCores is CPU time per wall time between the last two samples (1.5 = one
	// and a half cores). Valid only when HasRate.
	CPUCores float64
	HasRate  bool
	// Latest is the newest sample.
	Latest Sample
}

// Reader is what the autoscaler reads. Store implements it.
type Reader interface {
	// PodUsage returns the sum over the pod's containers of CPU cores in use and
	// memory working set. ok is false unless the pod is known and every one of its
	// containers has a CPU rate (two samples of the same instance).
	PodUsage(namespace, name string) (cpuCores float64, memBytes uint64, ok bool)
}

type key struct{ ns, pod, container string }

type entry struct {
	id         ContainerID
	prev, last Sample
	hasPrev    bool
}

// Store keeps the last two samples per (namespace, pod, container). It is safe for
// concurrent use; the zero value is not usable, use NewStore.
type Store struct {
	mu sync.RWMutex
	m  map[key]*entry
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{m: map[key]*entry{}} }

// Record adds a sample. A sample not newer than the last one is ignored; a new
// runtime ID or a CPU counter that went backwards discards the older sample.
func (s *Store) Record(id ContainerID, smp Sample) {
	k := key{id.Namespace, id.Pod, id.Container}
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[k]
	switch {
	case e == nil || e.id.ID != id.ID:
		s.m[k] = &entry{id: id, last: smp}
	case !smp.Time.After(e.last.Time):
		return
	case smp.CPUUsageNanos < e.last.CPUUsageNanos:
		e.last, e.hasPrev = smp, false
	default:
		e.prev, e.last, e.hasPrev = e.last, smp, true
	}
}

// Retain forgets every container not in ids (pods that went away).
func (s *Store) Retain(ids []ContainerID) {
	keep := make(map[key]bool, len(ids))
	for _, id := range ids {
		keep[key{id.Namespace, id.Pod, id.Container}] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if !keep[k] {
			delete(s.m, k)
		}
	}
}

func (e *entry) usage() Usage {
	u := Usage{ContainerID: e.id, Latest: e.last}
	if e.hasPrev {
		if dt := e.last.Time.Sub(e.prev.Time); dt > 0 {
			u.CPUCores = float64(e.last.CPUUsageNanos-e.prev.CPUUsageNanos) / float64(dt/time.Nanosecond)
			u.HasRate = true
		}
	}
	return u
}

// Container returns one container's usage; ok is false if it was never sampled.
func (s *Store) Container(namespace, pod, container string) (Usage, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.m[key{namespace, pod, container}]
	if e == nil {
		return Usage{}, false
	}
	return e.usage(), true
}

// PodUsage implements Reader.
func (s *Store) PodUsage(namespace, name string) (cpuCores float64, memBytes uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ok = false
	for k, e := range s.m {
		if k.ns != namespace || k.pod != name {
			continue
		}
		u := e.usage()
		if !u.HasRate {
			return 0, 0, false
		}
		cpuCores += u.CPUCores
		memBytes += u.Latest.MemoryWorkingSetBytes
		ok = true
	}
	if !ok {
		return 0, 0, false
	}
	return cpuCores, memBytes, true
}

// All returns every container's usage, sorted by namespace, pod, container.
func (s *Store) All() []Usage {
	s.mu.RLock()
	out := make([]Usage, 0, len(s.m))
	for _, e := range s.m {
		out = append(out, e.usage())
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Pod != b.Pod {
			return a.Pod < b.Pod
		}
		return a.Container < b.Container
	})
	return out
}

var _ Reader = (*Store)(nil)
