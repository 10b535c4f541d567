package probe

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Kubernetes' defaults, applied when a probe field is ≤ 0.
const (
	DefaultPeriod           = 10 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// Worker runs one probe of one container instance, as kubelet's probe worker does:
// a ticker every periodSeconds (default 10 s), the first tick at Start; attempts are
// skipped until initialDelaySeconds have passed since Start and, when gated, until the
// gate opens; each attempt is bounded by timeoutSeconds (default 1 s).
// successThreshold (default 1) consecutive successes or failureThreshold (default 3)
// consecutive failures change the state; Unknown attempts are not counted.
//
// Initial state: a readiness Worker is not healthy (not ready) until it reaches its
// success threshold; liveness and startup Workers are healthy from the start.
// After a liveness or startup Worker turns unhealthy it stops probing (kubelet's
// "on hold"): the executor restarts the container and starts a new Worker for the new
// instance. A startup Worker stops probing once it has succeeded.
//
// Workers are safe for concurrent use. Start may be called once; Stop is safe before
// Start, after a partial start and more than once.
type Worker struct {
	kind     Kind
	handler  corev1.ProbeHandler
	delay    time.Duration
	period   time.Duration
	timeout  time.Duration
	success  int
	failure  int
	target   Target
	clock    Clock
	onChange func(ok bool, msg string)

	mu        sync.Mutex
	healthy   bool
	succeeded bool // startup: reached its success threshold
	last      Result
	run       int
	message   string
	gate      func() bool
	started   bool
	cancel    context.CancelFunc
	done      chan struct{}

	// afterAttempt, when set (tests), is called after every tick with the attempt's
	// result; skipped ticks report Unknown.
	afterAttempt func(Result)
}

// NewWorker returns a Worker for probe p of the given kind against t. onChange (may be
// nil) is called, outside the Worker's lock, whenever Healthy changes, and for a
// startup probe also when it first succeeds (ok=true). It runs on the Worker's
// goroutine, so it must not call Stop on the same Worker. A nil p yields a Worker that is
// never started and reports the kind's initial state.
func NewWorker(kind Kind, p *corev1.Probe, t Target, clock Clock, onChange func(ok bool, msg string)) *Worker {
	if clock == nil {
		clock = RealClock{}
	}
	w := &Worker{
		kind:     kind,
		period:   DefaultPeriod,
		timeout:  DefaultTimeout,
		success:  DefaultSuccessThreshold,
		failure:  DefaultFailureThreshold,
		target:   t,
		clock:    clock,
		onChange: onChange,
		healthy:  kind != Readiness,
	}
	if p != nil {
		w.handler = p.ProbeHandler
		w.delay = seconds(p.InitialDelaySeconds, 0)
		w.period = seconds(p.PeriodSeconds, DefaultPeriod)
		w.timeout = seconds(p.TimeoutSeconds, DefaultTimeout)
		if p.SuccessThreshold > 0 {
			w.success = int(p.SuccessThreshold)
		}
		if p.FailureThreshold > 0 {
			w.failure = int(p.FailureThreshold)
		}
	}
	return w
}

func seconds(v int32, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return time.Duration(v) * time.Second
}

// Kind returns which probe this Worker runs.
func (w *Worker) Kind() Kind { return w.kind }

// GatedBy makes attempts wait until gate returns true (the startup probe has
// succeeded); skipped attempts count for nothing. Call it before Start.
func (w *Worker) GatedBy(gate func() bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate = gate
}

// Start begins probing in a goroutine until ctx is done or Stop is called. The
// initial delay is measured from this call, so call it when the container starts.
func (w *Worker) Start(ctx context.Context) { w.StartSince(ctx, time.Time{}) }

// StartSince is Start for a container that started at startedAt (an adopted
// container after an agent restart): the initial delay counts from startedAt. A zero
// startedAt means now.
func (w *Worker) StartSince(ctx context.Context, startedAt time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	if startedAt.IsZero() {
		startedAt = w.clock.Now()
	}
	ticker := w.clock.NewTicker(w.period)
	go w.loop(ctx, startedAt, ticker)
}

// Stop ends probing and waits for an attempt in flight to return.
func (w *Worker) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Healthy reports the Worker's current state: ready for readiness, alive (not failed)
// for liveness and startup.
func (w *Worker) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.healthy
}

// Succeeded reports whether the probe has reached its success threshold at least once
// (for a startup probe: the container has started).
func (w *Worker) Succeeded() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.succeeded
}

// Message returns the message of the last counted attempt.
func (w *Worker) Message() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.message
}

func (w *Worker) loop(ctx context.Context, startedAt time.Time, ticker Ticker) {
	defer close(w.done)
	defer ticker.Stop()
	for {
		res, keepGoing := w.attempt(ctx, startedAt)
		if w.afterAttempt != nil {
			w.afterAttempt(res)
		}
		if !keepGoing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// attempt runs one tick; keepGoing is false once this Worker has nothing left to do.
func (w *Worker) attempt(ctx context.Context, startedAt time.Time) (res Result, keepGoing bool) {
	if w.clock.Now().Sub(startedAt) < w.delay {
		return Unknown, true
	}
	w.mu.Lock()
	gate := w.gate
	w.mu.Unlock()
	if gate != nil && !gate() {
		return Unknown, true
	}
	res, msg := Run(ctx, &w.handler, w.timeout, w.target)
	if ctx.Err() != nil {
		return Unknown, false // stopped while probing: discard
	}
	if res == Unknown {
		return res, true
	}

	w.mu.Lock()
	if res == w.last {
		w.run++
	} else {
		w.last, w.run = res, 1
	}
	w.message = msg
	var notify bool
	var ok bool
	switch {
	case res == Success && w.run >= w.success:
		if !w.healthy || (w.kind == Startup && !w.succeeded) {
			notify = true
		}
		w.healthy, w.succeeded, ok = true, true, true
	case res == Failure && w.run >= w.failure:
		notify = w.healthy
		w.healthy = false
	}
	keepGoing = true
	if w.kind != Readiness && !w.healthy {
		keepGoing = false // on hold until the container is restarted
	}
	if w.kind == Startup && w.succeeded {
		keepGoing = false
	}
	w.mu.Unlock()
	if notify && w.onChange != nil {
		w.onChange(ok, msg)
	}
	return res, keepGoing
}
