package probe

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Container bundles the probes of one container instance and applies the startup
// gate: liveness and readiness are not attempted until the startup probe (if any) has
// succeeded. A field is nil when the container has no such probe.
type Container struct {
	Startup, Liveness, Readiness *Worker
}

// NewContainer builds the Workers for c's probes. onChange (may be nil) receives every
// Worker's changes with the probe kind: the executor restarts the container on
// (Liveness|Startup, false) and sets readiness from Ready.
func NewContainer(c *corev1.Container, t Target, clock Clock, onChange func(kind Kind, ok bool, msg string)) *Container {
	pc := &Container{}
	mk := func(kind Kind, p *corev1.Probe) *Worker {
		if p == nil {
			return nil
		}
		var cb func(bool, string)
		if onChange != nil {
			cb = func(ok bool, msg string) { onChange(kind, ok, msg) }
		}
		return NewWorker(kind, p, t, clock, cb)
	}
	pc.Startup = mk(Startup, c.StartupProbe)
	pc.Liveness = mk(Liveness, c.LivenessProbe)
	pc.Readiness = mk(Readiness, c.ReadinessProbe)
	for _, w := range []*Worker{pc.Liveness, pc.Readiness} {
		if w != nil && pc.Startup != nil {
			w.GatedBy(pc.Started)
		}
	}
	return pc
}

func (c *Container) workers() []*Worker {
	var ws []*Worker
	for _, w := range []*Worker{c.Startup, c.Liveness, c.Readiness} {
		if w != nil {
			ws = append(ws, w)
		}
	}
	return ws
}

// Start starts every Worker; call it when the container's task starts.
func (c *Container) Start(ctx context.Context) { c.StartSince(ctx, time.Time{}) }

// StartSince starts every Worker for a container that started at startedAt (zero:
// now), so initial delays of an adopted container count from its real start.
func (c *Container) StartSince(ctx context.Context, startedAt time.Time) {
	for _, w := range c.workers() {
		w.StartSince(ctx, startedAt)
	}
}

// Stop stops every Worker and waits for them.
func (c *Container) Stop() {
	for _, w := range c.workers() {
		w.Stop()
	}
}

// Started reports whether the container counts as started: it has no startup probe,
// or the startup probe has succeeded (ContainerStatus.started).
func (c *Container) Started() bool {
	return c.Startup == nil || c.Startup.Succeeded()
}

// Live reports whether the container should keep running: false once its startup or
// liveness probe has failed failureThreshold times in a row.
func (c *Container) Live() bool {
	if c.Startup != nil && !c.Startup.Healthy() {
		return false
	}
	return c.Liveness == nil || c.Liveness.Healthy()
}

// Ready reports the container's Ready condition: started, and its readiness probe (if
// any) passing.
func (c *Container) Ready() bool {
	if !c.Started() {
		return false
	}
	return c.Readiness == nil || c.Readiness.Healthy()
}
