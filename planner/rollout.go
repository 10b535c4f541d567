package planner

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// reconcileDeployment moves one Deployment toward its target revision: it picks
// the target (git's template, a pin, or the rollback target), detects a failed
// rollout and rolls back, then runs the strategy to decide how many pods of the
// target to create and which pods to stop.
func (c *cluster) reconcileDeployment(a *app) {
	d := a.dep
	st := &a.state
	st.NoPrune = a.noPrune()
	if d.Spec.Paused {
		// A paused Deployment is frozen: no new revision, no pods created or stopped.
		if r := a.revision(st.Target); r != nil {
			a.target = r
		}
		a.classify(c, int32(d.Spec.MinReadySeconds))
		return
	}
	a.ensureRevision(c)

	if st.Failed != nil && st.Failed.Revision != a.gitHash {
		c.event(a, "GitMoved", fmt.Sprintf("git's template is now revision %d; the failed revision is no longer held back", a.revNumber(a.gitHash)))
		st.Failed, st.Message = nil, ""
	}
	if st.Pin != nil && (st.Pin.GitRevision != a.gitHash || a.revision(st.Pin.Revision) == nil || a.revision(st.Pin.Revision).Template == nil) {
		c.event(a, "PinReleased", fmt.Sprintf("rollback pin to revision %d released: git moved", a.revNumber(st.Pin.Revision)))
		st.Pin = nil
	}
	target := a.gitHash
	switch {
	case st.Pin != nil:
		target = st.Pin.Revision
	case st.Failed != nil && st.Failed.RollbackTo != "" && a.revision(st.Failed.RollbackTo) != nil:
		target = st.Failed.RollbackTo
	}
	c.setTarget(a, target, true)
	minReady := int32(d.Spec.MinReadySeconds)
	a.classify(c, minReady)

	// Only a revision that never ran fully available can fail its rollout; a
	// completed revision that loses pods later is replaced, not rolled back.
	if !a.complete() && a.target.Available.IsZero() {
		a.failing = a.failure(c, progressDeadlineOf(d))
	}
	if a.failing != "" && st.Failed == nil && st.Pin == nil {
		from := a.target
		rb := a.lastAvailable(from.Hash)
		switch {
		case rb != nil && a.autoRollback():
			st.Failed = &FailedRollout{Revision: from.Hash, RollbackTo: rb.Hash, Reason: a.failing, At: c.now}
			st.Message = fmt.Sprintf("rolled back from %d to %d: %s", from.Number, rb.Number, a.failing)
			c.event(a, "RolledBack", st.Message)
			c.setTarget(a, rb.Hash, false)
			a.classify(c, minReady)
			a.failing = ""
		default:
			why := "no earlier fully available revision to roll back to"
			if !a.autoRollback() {
				why = "automatic rollback disabled by gantry.io/auto-rollback=false"
			}
			st.Failed = &FailedRollout{Revision: from.Hash, Reason: a.failing, At: c.now}
			st.Message = fmt.Sprintf("rollout of revision %d failed: %s; %s", from.Number, a.failing, why)
			c.event(a, "RolloutFailed", st.Message)
		}
	}

	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		a.recreate(c)
	default:
		surge, unavail, err := rollingParams(d, a.replicas)
		if err != nil {
			a.invalid = "invalid rollingUpdate: " + err.Error()
			break
		}
		a.rollingUpdate(c, surge, unavail)
	}
	a.recordProgress(c)
	a.trimHistory(revisionHistoryLimitOf(d))
}

// setTarget makes hash the target revision, resetting the progress clock when it
// changes.
func (c *cluster) setTarget(a *app, hash string, announce bool) {
	a.target = a.revision(hash)
	st := &a.state
	if st.Target == hash {
		return
	}
	if announce && len(a.pods) > 0 {
		c.event(a, "RolloutStarted", fmt.Sprintf("rolling out revision %d (%s)", a.target.Number, hash))
	}
	st.Target = hash
	st.Progress = Progress{Revision: hash, Since: c.now}
}

// classify splits the app's live pods into the target revision and the others.
func (a *app) classify(c *cluster, minReady int32) {
	a.newPods, a.oldPods, a.newAvail, a.oldAvail = nil, nil, 0, 0
	for _, p := range a.pods {
		if p.gone {
			continue
		}
		avail := p.available(c.now, minReady)
		if a.target != nil && p.rev == a.target.Hash {
			a.newPods = append(a.newPods, p)
			if avail {
				a.newAvail++
			}
		} else {
			a.oldPods = append(a.oldPods, p)
			if avail {
				a.oldAvail++
			}
		}
	}
}

// complete: the target has all replicas available and no other revision runs.
func (a *app) complete() bool {
	return a.target != nil && len(a.oldPods) == 0 && int32(len(a.newPods)) == a.replicas && a.newAvail >= a.replicas
}

// failure returns why the rollout of the target failed, or "": a pod of the target
// restarted CrashLoopRestarts times or more, or no progress (a change in the
// target's updated or available count) for progressDeadlineSeconds.
func (a *app) failure(c *cluster, deadline int32) string {
	for _, p := range a.newPods {
		if p.restarts >= c.cfg.CrashLoopRestarts {
			return fmt.Sprintf("crash loop: pod %s restarted %d times", p.name, p.restarts)
		}
	}
	st := &a.state
	updated, avail := int32(len(a.newPods)), a.newAvail
	since := st.Progress.Since
	if st.Progress.Revision != st.Target || st.Progress.Updated != updated || st.Progress.Available != avail {
		since = c.now // progress is being made right now
	}
	if c.now.After(since.Add(time.Duration(deadline) * time.Second)) {
		return fmt.Sprintf("progress deadline exceeded (no progress for %ds)", deadline)
	}
	return ""
}

// recordProgress stores the target's counts and when they last changed, and marks
// the target available once the rollout completes.
func (a *app) recordProgress(c *cluster) {
	st := &a.state
	updated, avail := int32(len(a.newPods)), a.newAvail
	if st.Progress.Revision != st.Target || st.Progress.Updated != updated || st.Progress.Available != avail {
		st.Progress = Progress{Revision: st.Target, Updated: updated, Available: avail, Since: c.now}
	}
	if a.complete() && a.invalid == "" {
		if a.target.Available.IsZero() {
			a.target.Available = c.now
			c.event(a, "RolloutComplete", fmt.Sprintf("revision %d is fully available (%d/%d)", a.target.Number, avail, a.replicas))
		}
		if st.Failed != nil && st.Failed.RollbackTo == "" && st.Failed.Revision == st.Target {
			st.Failed, st.Message = nil, "" // the failed revision came up after all
		}
	}
}

// rollingUpdate is the RollingUpdate strategy, as the Kubernetes deployment
// controller does it in one sync: create target pods up to replicas+maxSurge in
// total, then stop old pods — unavailable ones first, then available ones while
// at least replicas−maxUnavailable pods stay available. Surplus target pods (after
// a scale-down) are stopped, least valuable first.
func (a *app) rollingUpdate(c *cluster, surge, unavail int32) {
	R := a.replicas
	nNew, nOld := int32(len(a.newPods)), int32(len(a.oldPods))
	total := nNew + nOld
	if nNew > R {
		a.stopWorst(c, a.newPods, nNew-R, func(*podRec) bool { return true }, "scaled down")
	} else if room := R + surge - total; room > 0 {
		a.create = min(R-nNew, room)
	}
	if nOld == 0 {
		return
	}
	minAvail := R - unavail
	newUnavail := nNew - a.newAvail
	maxScaledDown := total - minAvail - newUnavail
	minReady := int32(a.dep.Spec.MinReadySeconds)
	if maxScaledDown > 0 {
		a.stopWorst(c, a.oldPods, maxScaledDown, func(p *podRec) bool { return !p.available(c.now, minReady) },
			fmt.Sprintf("old revision, not available (rolling update to revision %d)", a.target.Number))
	}
	if canStop := a.newAvail + a.oldAvail - minAvail; canStop > 0 {
		a.stopWorst(c, a.oldPods, canStop, func(p *podRec) bool { return !p.gone && p.available(c.now, minReady) },
			fmt.Sprintf("old revision (rolling update to revision %d, %d available, min %d)", a.target.Number, a.newAvail+a.oldAvail, minAvail))
	}
}

// recreate is the Recreate strategy: stop every old pod, and create the target's
// pods only once none is left.
func (a *app) recreate(c *cluster) {
	if len(a.oldPods) > 0 {
		for _, p := range a.oldPods {
			c.stop(p, fmt.Sprintf("old revision (recreate to revision %d)", a.target.Number))
		}
		return
	}
	nNew := int32(len(a.newPods))
	if nNew > a.replicas {
		a.stopWorst(c, a.newPods, nNew-a.replicas, func(*podRec) bool { return true }, "scaled down")
	} else {
		a.create = a.replicas - nNew
	}
}

// stopWorst stops up to n pods that pass ok, least valuable first: unbound, then
// not ready, then on a not-ready node, then most restarts, then newest, then by
// name. It returns how many it stopped.
func (a *app) stopWorst(c *cluster, pods []*podRec, n int32, ok func(*podRec) bool, reason string) int32 {
	var cand []*podRec
	for _, p := range pods {
		if !p.gone && ok(p) {
			cand = append(cand, p)
		}
	}
	sort.SliceStable(cand, func(i, j int) bool {
		x, y := cand[i], cand[j]
		if (x.node == nil) != (y.node == nil) {
			return x.node == nil
		}
		if x.ready != y.ready {
			return !x.ready
		}
		if x.node != nil && y.node != nil && x.node.ready != y.node.ready {
			return !x.node.ready
		}
		if x.restarts != y.restarts {
			return x.restarts > y.restarts
		}
		if !x.pod.CreationTimestamp.Equal(&y.pod.CreationTimestamp) {
			return y.pod.CreationTimestamp.Before(&x.pod.CreationTimestamp)
		}
		return x.name > y.name
	})
	var done int32
	for _, p := range cand {
		if done >= n {
			break
		}
		c.stop(p, reason)
		done++
	}
	return done
}

// reconcileBarePod handles a Pod from git: create it if missing; if git's spec
// differs from the running pod's, stop it (pods are immutable) and create the new
// one in the next plan. A pod that Succeeded or Failed is left as it is.
func (c *cluster) reconcileBarePod(a *app) {
	a.ensureRevision(c)
	c.setTarget(a, a.gitHash, false)
	a.classify(c, 0)
	for _, p := range a.oldPods {
		c.stop(p, fmt.Sprintf("spec changed in git (revision %d); pods are immutable, so it is recreated", a.target.Number))
	}
	if len(a.newPods) == 0 && len(a.oldPods) == 0 && !c.names[nsName{a.ns, a.name}] {
		a.create = 1
	}
	a.recordProgress(c)
	a.trimHistory(defaultRevisionHistoryLimit)
}

func (c *cluster) event(a *app, reason, msg string) {
	c.plan.Events = append(c.plan.Events, Event{App: a.key, Reason: reason, Message: msg})
}
