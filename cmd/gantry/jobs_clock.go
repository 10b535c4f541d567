package main

import (
	"time"

	"github.com/spf13/cobra"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/planner"
)

// testClockFlags are hidden, TEST-ONLY flags of `gantry up` and `gantry server`:
// the reconcile loop's clock (what the planner sees as now: CronJob ticks, Job
// back-off, deadlines, TTLs) runs speed times faster than real time from anchor:
// now = anchor + (real now − anchor) × speed. The batch e2e test uses it so that
// a `* * * * *` CronJob ticks every few seconds; anchoring at a fixed time keeps
// the clock continuous across a server restart. Never use it in production:
// every time the loop writes (creation, start and completion times) is on the
// fast clock, and the loop still sleeps real durations computed on it, so run it
// with a short --resync. Node-lost replacement is off with it (node NotReady
// times are on the real clock).
type testClockFlags struct {
	speed  float64
	anchor int64
}

func (t *testClockFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.Float64Var(&t.speed, "test-clock-speed", 0, "TEST ONLY: run the reconcile loop's clock this many times faster than real time")
	fl.Int64Var(&t.anchor, "test-clock-anchor", 0, "TEST ONLY: Unix time where the fast clock equals real time (default: the start)")
	_ = fl.MarkHidden("test-clock-speed")
	_ = fl.MarkHidden("test-clock-anchor")
}

// options returns the reconcile option of the fast clock; none without
// --test-clock-speed (or with 1).
func (t testClockFlags) options() []controlplane.ReconcileOption {
	if t.speed <= 0 || t.speed == 1 {
		return nil
	}
	anchor := time.Now()
	if t.anchor != 0 {
		anchor = time.Unix(t.anchor, 0)
	}
	// Node NotReady times are on the server's real clock; against the fast clock a
	// node restarting for a second would look lost for minutes and lose its pods.
	// So node-lost replacement is off with the fast clock.
	return []controlplane.ReconcileOption{
		controlplane.WithReconcileClock(fastClock(anchor, t.speed)),
		controlplane.WithPlannerConfig(planner.Config{NodeLostGrace: 100 * 365 * 24 * time.Hour}),
	}
}

// fastClock returns anchor + (time.Now() − anchor) × speed.
func fastClock(anchor time.Time, speed float64) func() time.Time {
	return func() time.Time {
		return anchor.Add(time.Duration(float64(time.Since(anchor)) * speed))
	}
}
