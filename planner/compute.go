package planner

import (
	"sort"

	"gantry.io/gantry/manifest"
)

// Compute decides one reconcile: from desired state, observed pods, nodes and the
// apps' remembered state it returns the Plan. It is pure and deterministic: no
// I/O, no clock (Input.Now), no global randomness (Input.Seed). It never panics on
// input; an object it cannot act on shows up in its app's status instead.
//
// Order of decisions:
//  1. observe: attach observed pods to their apps (adopting orphans whose labels
//     match a workload), account them on their nodes;
//  2. replace lost: stop pods on gone / long-NotReady nodes, under untolerated
//     NoExecute taints, failed Deployment pods;
//  3. per app (sorted by key): target revision, rollback, strategy → how many pods
//     to create, which to stop;
//  4. prune pods of apps that left git;
//  5. place: filter → score → select, highest priority first, with preemption;
//  6. status and changed state per app.
func Compute(in Input) Plan { return compute(in, computeOptions{}) }

// computeOptions are test seams: hook is called after every placement decision
// (benchmarks time placements from outside the pure code); slowPath turns off the
// placement fast path, so tests can check it decides exactly as the full filters.
type computeOptions struct {
	hook     func()
	slowPath bool
}

func compute(in Input, opts computeOptions) Plan {
	cfg := in.Config.withDefaults()
	c := newCluster(&in, cfg)
	c.hook = opts.hook
	c.slowPath = opts.slowPath
	c.seed = in.Seed
	plan := Plan{Apps: map[string]AppState{}, Status: map[string]AppStatus{}}
	c.plan = &plan
	if in.Desired == nil {
		in.Desired = &manifest.Desired{}
	}
	byKey, apps := c.buildApps(&in)
	leftGit := c.observe(in.Observed, byKey, apps)
	c.replaceLost()
	for _, a := range apps {
		switch a.kind {
		case KindDeployment:
			c.reconcileDeployment(a)
		case KindPod:
			c.reconcileBarePod(a)
		case KindJob:
			c.reconcileJob(a)
		case KindCronJob:
			c.reconcileCronJob(a)
		}
	}
	c.prune(&in, byKey, leftGit)
	c.placeAll(apps)
	c.settleRuns(apps)
	for _, a := range apps {
		plan.Status[a.key] = a.status()
		if !a.hadState || !a.state.Equal(a.orig) {
			plan.Apps[a.key] = a.state
		}
	}
	plan.sortSteps()
	return plan
}

// Empty reports whether the plan changes nothing and expects no change: no pod to
// place, stop, preempt, adopt or defer to the next round, and no app state to
// write or forget, no Job to create or delete. Unplaceable pods, status, events
// and Wake are reports, not steps.
func (p Plan) Empty() bool {
	return len(p.Place) == 0 && len(p.Stop) == 0 && len(p.Preempt) == 0 && len(p.Adopt) == 0 &&
		len(p.Apps) == 0 && len(p.ForgetApps) == 0 && len(p.Deferred) == 0 &&
		len(p.JobRuns) == 0 && len(p.DeleteJobs) == 0
}

func (p *Plan) sortSteps() {
	sort.SliceStable(p.Stop, func(i, j int) bool {
		if p.Stop[i].Namespace != p.Stop[j].Namespace {
			return p.Stop[i].Namespace < p.Stop[j].Namespace
		}
		return p.Stop[i].Pod < p.Stop[j].Pod
	})
}
