package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// script is a fake exec whose exit codes come from a queue; an empty queue exits 0.
// Code -1 means "could not run" (Unknown).
type script struct {
	mu    sync.Mutex
	codes []int
	calls int
}

func (s *script) push(codes ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes = append(s.codes, codes...)
}

func (s *script) exec(ctx context.Context, cmd []string) (int, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	code := 0
	if len(s.codes) > 0 {
		code, s.codes = s.codes[0], s.codes[1:]
	}
	if code < 0 {
		return 0, nil, fmt.Errorf("exec refused")
	}
	return code, []byte(fmt.Sprintf("exit %d", code)), nil
}

func (s *script) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// harness drives one Worker tick by tick on a FakeClock.
type harness struct {
	t        *testing.T
	clock    *FakeClock
	w        *Worker
	attempts chan Result
	mu       sync.Mutex
	changes  []string
}

func execProbe(p corev1.Probe) *corev1.Probe {
	p.ProbeHandler = corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}
	return &p
}

func newHarness(t *testing.T, kind Kind, p *corev1.Probe, s *script) *harness {
	h := &harness{t: t, clock: NewFakeClock(time.Date(2026, 12, 1, 19, 0, 0, 0, time.UTC)), attempts: make(chan Result, 100)}
	h.w = NewWorker(kind, p, Target{Exec: s.exec}, h.clock, func(ok bool, msg string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes = append(h.changes, fmt.Sprintf("%v:%s", ok, msg))
	})
	h.w.afterAttempt = func(r Result) { h.attempts <- r }
	t.Cleanup(h.w.Stop)
	return h
}

// tick waits for the attempt of the current tick, then advances by d to the next one.
func (h *harness) tick(d time.Duration) Result {
	h.t.Helper()
	select {
	case r := <-h.attempts:
		h.clock.Advance(d)
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("worker made no attempt")
		return Unknown
	}
}

func (h *harness) changeLog() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.changes...)
}

func TestReadinessThresholds(t *testing.T) {
	s := &script{}
	// fail, fail, ok, ok (ready), fail, fail, ok (run broken: still ready), fail×3 (not ready), ok, ok (ready)
	s.push(1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0)
	h := newHarness(t, Readiness, execProbe(corev1.Probe{PeriodSeconds: 5, SuccessThreshold: 2, FailureThreshold: 3}), s)
	if h.w.Healthy() {
		t.Fatal("readiness must start not ready")
	}
	h.w.Start(context.Background())
	var ready []bool
	for i := 0; i < 12; i++ {
		if r := h.tick(5 * time.Second); r == Unknown {
			t.Fatalf("attempt %d was not run", i)
		}
		ready = append(ready, h.w.Healthy())
	}
	want := []bool{false, false, false, true, true, true, true, true, true, false, false, true}
	if d := cmp.Diff(want, ready); d != "" {
		t.Errorf("ready after each attempt (-want +got):\n%s", d)
	}
	wantChanges := []string{"true:exit 0", `false:command "check" exited with 1: exit 1`, "true:exit 0"}
	if d := cmp.Diff(wantChanges, h.changeLog()); d != "" {
		t.Errorf("onChange calls (-want +got):\n%s", d)
	}
}

func TestLivenessFailureStopsProbing(t *testing.T) {
	s := &script{}
	s.push(1, 1, 0, 1, 1, 1)
	h := newHarness(t, Liveness, execProbe(corev1.Probe{PeriodSeconds: 10, FailureThreshold: 3}), s)
	if !h.w.Healthy() {
		t.Fatal("liveness must start healthy")
	}
	h.w.Start(context.Background())
	for i := 0; i < 5; i++ {
		h.tick(10 * time.Second)
		if !h.w.Healthy() {
			t.Fatalf("unhealthy after attempt %d; a success in between must reset the failure run", i)
		}
	}
	h.tick(10 * time.Second) // third failure in a row
	if h.w.Healthy() {
		t.Fatal("still healthy after failureThreshold consecutive failures")
	}
	h.w.Stop() // returns: the worker is on hold, its goroutine has ended
	if got := s.count(); got != 6 {
		t.Errorf("exec ran %d times, want 6 (no probing after the failure)", got)
	}
	if got := h.changeLog(); len(got) != 1 || got[0][:5] != "false" {
		t.Errorf("onChange calls = %q, want one false", got)
	}
}

func TestUnknownIsNotCounted(t *testing.T) {
	s := &script{}
	s.push(1, -1, 1, -1, -1, 1)
	h := newHarness(t, Liveness, execProbe(corev1.Probe{PeriodSeconds: 1, FailureThreshold: 3}), s)
	h.w.Start(context.Background())
	var results []Result
	for i := 0; i < 6; i++ {
		results = append(results, h.tick(time.Second))
		if i < 5 && !h.w.Healthy() {
			t.Fatalf("unhealthy after attempt %d: Unknown must not count or break the run", i)
		}
	}
	if h.w.Healthy() {
		t.Fatal("three failures separated only by Unknown must make it unhealthy")
	}
	want := []Result{Failure, Unknown, Failure, Unknown, Unknown, Failure}
	if d := cmp.Diff(want, results); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
}

func TestInitialDelayAndDefaults(t *testing.T) {
	s := &script{}
	// No period/thresholds: defaults 10 s, success 1, failure 3.
	h := newHarness(t, Readiness, execProbe(corev1.Probe{InitialDelaySeconds: 25}), s)
	h.w.Start(context.Background())
	// Ticks at 0, 10, 20 s are inside the delay; 30 s is the first attempt.
	var got []Result
	for i := 0; i < 4; i++ {
		got = append(got, h.tick(10*time.Second))
	}
	if d := cmp.Diff([]Result{Unknown, Unknown, Unknown, Success}, got); d != "" {
		t.Errorf("attempts (-want +got):\n%s", d)
	}
	if !h.w.Healthy() {
		t.Error("one success (default threshold 1) must make it ready")
	}
	if s.count() != 1 {
		t.Errorf("exec ran %d times during/after the delay, want 1", s.count())
	}
}

func TestStartupGatesLivenessAndReadiness(t *testing.T) {
	clock := NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	c := &corev1.Container{
		StartupProbe:   execProbe(corev1.Probe{PeriodSeconds: 1, FailureThreshold: 30}),
		LivenessProbe:  execProbe(corev1.Probe{PeriodSeconds: 1}),
		ReadinessProbe: execProbe(corev1.Probe{PeriodSeconds: 1}),
	}
	var startupCalls, otherCalls int
	var mu sync.Mutex
	startupFails := 2
	target := Target{Exec: func(ctx context.Context, cmd []string) (int, []byte, error) {
		return 0, nil, nil
	}}
	pc := NewContainer(c, target, clock, nil)
	// Distinguish the startup probe's exec from the others.
	pc.Startup.target.Exec = func(ctx context.Context, cmd []string) (int, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		startupCalls++
		if startupCalls <= startupFails {
			return 1, nil, nil
		}
		return 0, nil, nil
	}
	counting := func(ctx context.Context, cmd []string) (int, []byte, error) {
		mu.Lock()
		defer mu.Unlock()
		otherCalls++
		return 0, nil, nil
	}
	pc.Liveness.target.Exec = counting
	pc.Readiness.target.Exec = counting
	attempts := make(chan string, 100)
	for _, w := range []*Worker{pc.Startup, pc.Liveness, pc.Readiness} {
		w := w
		w.afterAttempt = func(r Result) { attempts <- w.kind.String() + ":" + r.String() }
	}
	if pc.Started() || pc.Ready() || !pc.Live() {
		t.Fatalf("initial Started=%v Ready=%v Live=%v, want false false true", pc.Started(), pc.Ready(), pc.Live())
	}
	pc.Start(context.Background())
	t.Cleanup(pc.Stop)
	wait := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			select {
			case a := <-attempts:
				seen[a]++
			case <-time.After(10 * time.Second):
				t.Fatalf("only %d of %d attempts", i, n)
			}
		}
		return seen
	}
	// Ticks 0 and 1: startup fails, the others are skipped (Unknown).
	for i := 0; i < 2; i++ {
		seen := wait(3)
		if seen["startup:failure"] != 1 || seen["liveness:unknown"] != 1 || seen["readiness:unknown"] != 1 {
			t.Fatalf("tick %d attempts = %v", i, seen)
		}
		clock.Advance(time.Second)
	}
	mu.Lock()
	if otherCalls != 0 {
		t.Fatalf("liveness/readiness ran %d times before startup succeeded", otherCalls)
	}
	mu.Unlock()
	// Tick 2: startup succeeds (the others may run in the same tick or the next).
	seen := wait(3)
	if seen["startup:success"] != 1 {
		t.Fatalf("tick 2 attempts = %v", seen)
	}
	if !pc.Started() {
		t.Fatal("not Started after the startup probe succeeded")
	}
	clock.Advance(time.Second)
	deadline := time.After(10 * time.Second)
	for !pc.Ready() {
		select {
		case <-attempts:
		case <-deadline:
			t.Fatal("never ready after startup")
		}
	}
	if !pc.Live() {
		t.Error("not live")
	}
	mu.Lock()
	defer mu.Unlock()
	if startupCalls != 3 {
		t.Errorf("startup probe ran %d times, want 3 (it stops after success)", startupCalls)
	}
}

func TestContainerWithoutProbes(t *testing.T) {
	pc := NewContainer(&corev1.Container{}, Target{}, nil, nil)
	pc.Start(context.Background())
	pc.Stop()
	if !pc.Started() || !pc.Ready() || !pc.Live() {
		t.Errorf("no probes: Started=%v Ready=%v Live=%v, want all true", pc.Started(), pc.Ready(), pc.Live())
	}
}

func TestStartupFailure(t *testing.T) {
	s := &script{}
	s.push(1, 1)
	h := newHarness(t, Startup, execProbe(corev1.Probe{PeriodSeconds: 1, FailureThreshold: 2}), s)
	h.w.Start(context.Background())
	h.tick(time.Second)
	if !h.w.Healthy() {
		t.Fatal("unhealthy after one failure")
	}
	h.tick(time.Second)
	if h.w.Healthy() || h.w.Succeeded() {
		t.Fatalf("after failureThreshold: Healthy=%v Succeeded=%v, want false false", h.w.Healthy(), h.w.Succeeded())
	}
}

func TestStopBeforeStartAndTwice(t *testing.T) {
	w := NewWorker(Liveness, execProbe(corev1.Probe{}), Target{}, NewFakeClock(time.Time{}), nil)
	w.Stop()
	w.Start(context.Background())
	w.Start(context.Background())
	w.Stop()
	w.Stop()
}

func TestStartSinceCountsDelayFromContainerStart(t *testing.T) {
	s := &script{}
	h := newHarness(t, Readiness, execProbe(corev1.Probe{InitialDelaySeconds: 30, PeriodSeconds: 10}), s)
	// Adopted container that started 25 s ago: the tick at 0 is inside the delay, the
	// tick at 10 s (35 s after start) probes.
	h.w.StartSince(context.Background(), h.clock.Now().Add(-25*time.Second))
	if r := h.tick(10 * time.Second); r != Unknown {
		t.Fatalf("first tick = %v, want skipped", r)
	}
	if r := h.tick(10 * time.Second); r != Success {
		t.Fatalf("second tick = %v, want a probe", r)
	}
}

// TestReadinessWithHTTPServer drives a readiness Worker against a real HTTP server on
// 127.0.0.1 whose /ready answer the test flips.
func TestReadinessWithHTTPServer(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusServiceUnavailable
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(code)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	set := func(c int) {
		mu.Lock()
		code = c
		mu.Unlock()
	}
	a := ln.Addr().(*net.TCPAddr)
	p := &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}},
		PeriodSeconds: 2, FailureThreshold: 2,
	}
	clock := NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	changes := make(chan bool, 10)
	w := NewWorker(Readiness, p, Target{IP: a.IP, Ports: map[string]int32{"http": int32(a.Port)}}, clock, func(ok bool, msg string) { changes <- ok })
	attempts := make(chan Result, 10)
	w.afterAttempt = func(r Result) { attempts <- r }
	w.Start(context.Background())
	t.Cleanup(w.Stop)
	next := func() Result {
		t.Helper()
		select {
		case r := <-attempts:
			clock.Advance(2 * time.Second)
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no attempt")
			return Unknown
		}
	}
	if r := next(); r != Failure || w.Healthy() {
		t.Fatalf("503: %v ready=%v", r, w.Healthy())
	}
	set(http.StatusOK)
	if r := next(); r != Success || !w.Healthy() {
		t.Fatalf("200: %v ready=%v", r, w.Healthy())
	}
	set(http.StatusInternalServerError)
	next()
	if !w.Healthy() {
		t.Fatal("not ready after one failure with failureThreshold 2")
	}
	next()
	if w.Healthy() {
		t.Fatal("still ready after two failures")
	}
	if got := []bool{<-changes, <-changes}; !got[0] || got[1] {
		t.Errorf("changes = %v, want [true false]", got)
	}
	if msg := w.Message(); msg != "HTTP probe failed with statuscode: 500" {
		t.Errorf("Message = %q", msg)
	}
}
