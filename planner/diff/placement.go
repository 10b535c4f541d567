package diff

import (
	"fmt"
	"sort"
	"strings"

	"gantry.io/gantry/planner"
)

// Placement is where the pods of a revision would go on a set of nodes, from a
// planner.Plan computed on that revision.
type Placement struct {
	// Nodes is how many nodes were offered.
	Nodes int `json:"nodes"`
	// Apps lists, per app key ("deployment/default/web"), where its pods go.
	Apps []AppPlacement `json:"apps"`
	// Unplaceable lists the pods that fit on no node, with the planner's reason
	// counts ("0/3 nodes fit: 2 insufficient memory (needs 4Gi, most free 2Gi), …").
	Unplaceable []Unfit `json:"unplaceable,omitempty"`
	// Deferred lists pods that fit but wait for a later round.
	Deferred []Unfit `json:"deferred,omitempty"`

	// The fields below are set by Simulate, for a plan against a live cluster.

	// Live says the placement started from a running cluster's pods and app
	// states (gantry plan --server) rather than from an empty cluster.
	Live bool `json:"live,omitempty"`
	// Running is how many pods were running when the plan started.
	Running int `json:"running,omitempty"`
	// Rounds is how many reconcile rounds the simulated rollout took.
	Rounds int `json:"rounds,omitempty"`
	// Unsettled says the simulation stopped at its round limit while plans still
	// moved pods: Apps shows the state at that point.
	Unsettled bool `json:"unsettled,omitempty"`
	// Restarts is how many running pods are replaced by new ones (a new pod
	// revision); Stopped how many are stopped without a replacement (scale down,
	// an app that left git).
	Restarts int `json:"restarts,omitempty"`
	Stopped  int `json:"stopped,omitempty"`
	// Preempted lists the lower-priority pods evicted to make room.
	Preempted []Preemption `json:"preempted,omitempty"`
}

// Preemption is one running pod evicted for a higher-priority pod.
type Preemption struct {
	// Pod is "namespace/name".
	Pod         string `json:"pod"`
	Node        string `json:"node"`
	Priority    int32  `json:"priority"`
	For         string `json:"for"`
	ForPriority int32  `json:"forPriority"`
}

// AppPlacement is where the pods of one app go.
type AppPlacement struct {
	App string `json:"app"`
	// Pods is how many new pods the app gets, Nodes where they go.
	Pods  int         `json:"pods"`
	Nodes []NodeCount `json:"nodes"`
	// Restarts and Stopped are the app's share of Placement.Restarts and
	// Placement.Stopped (live plans only).
	Restarts int `json:"restarts,omitempty"`
	Stopped  int `json:"stopped,omitempty"`
}

// NodeCount is how many pods of an app go to one node.
type NodeCount struct {
	Node string `json:"node"`
	Pods int    `json:"pods"`
}

// Unfit is a group of pods of one app that are not placed, and why.
type Unfit struct {
	App    string `json:"app"`
	Pods   int    `json:"pods"`
	Reason string `json:"reason"`
}

// PlacementOf summarises the placements of plan, computed over nodes nodes:
// pods grouped by app and node (apps and nodes in name order), unplaceable and
// deferred pods with their reasons.
func PlacementOf(plan planner.Plan, nodes int) *Placement {
	p := &Placement{Nodes: nodes, Apps: []AppPlacement{}}
	byApp := map[string]map[string]int{}
	for _, pl := range plan.Place {
		if byApp[pl.App] == nil {
			byApp[pl.App] = map[string]int{}
		}
		byApp[pl.App][pl.Node]++
	}
	for _, app := range sortedKeys(byApp) {
		ap := AppPlacement{App: app}
		for _, n := range sortedKeys(byApp[app]) {
			ap.Nodes = append(ap.Nodes, NodeCount{Node: n, Pods: byApp[app][n]})
			ap.Pods += byApp[app][n]
		}
		p.Apps = append(p.Apps, ap)
	}
	for _, u := range plan.Unplaceable {
		p.Unplaceable = append(p.Unplaceable, Unfit{App: u.App, Pods: u.Pods, Reason: u.Reason})
	}
	for _, d := range plan.Deferred {
		p.Deferred = append(p.Deferred, Unfit{App: d.App, Pods: d.Pods, Reason: d.Reason})
	}
	sort.SliceStable(p.Unplaceable, func(i, j int) bool { return p.Unplaceable[i].App < p.Unplaceable[j].App })
	sort.SliceStable(p.Deferred, func(i, j int) bool { return p.Deferred[i].App < p.Deferred[j].App })
	return p
}

// Fits reports whether every pod found a node. A nil Placement fits.
func (p *Placement) Fits() bool { return p == nil || len(p.Unplaceable) == 0 }

// basis says what the placement started from, for the renderings.
func (p *Placement) basis() string {
	if !p.Live {
		return "offline: an empty cluster of these nodes"
	}
	s := fmt.Sprintf("live: the cluster's nodes and its %s; the rollout simulated to its end in %s", runningCount(p.Running), roundCount(p.Rounds))
	if p.Unsettled {
		s = fmt.Sprintf("live: the cluster's nodes and its %s; the rollout simulated for %s and still moving", runningCount(p.Running), roundCount(p.Rounds))
	}
	return s
}

// runningSummary is "3 restart, 1 stops, 5 keep running".
func (p *Placement) runningSummary() string {
	keep := max(p.Running-p.Restarts-p.Stopped, 0)
	return fmt.Sprintf("%d restart (replaced by new pods), %d stop, %d keep running", p.Restarts, p.Stopped, keep)
}

// line is "3 pods → n1 (2), n2; 3 running pods restart".
func (a AppPlacement) line() string {
	var parts []string
	if a.Pods > 0 {
		parts = append(parts, podCount(a.Pods)+" → "+nodeList(a.Nodes))
	}
	if a.Restarts > 0 {
		parts = append(parts, runningCount(a.Restarts)+" restart")
	}
	if a.Stopped > 0 {
		parts = append(parts, runningCount(a.Stopped)+" stop")
	}
	if len(parts) == 0 {
		return "no pods"
	}
	return strings.Join(parts, "; ")
}

// String is "preempts pod default/batch on n1 (priority 0) for deployment/default/api (priority 1000)".
func (e Preemption) String() string {
	return fmt.Sprintf("preempts pod %s on %s (priority %d) for %s (priority %d)", e.Pod, e.Node, e.Priority, e.For, e.ForPriority)
}

func runningCount(n int) string {
	if n == 1 {
		return "1 running pod"
	}
	return fmt.Sprintf("%d running pods", n)
}

func roundCount(n int) string {
	if n == 1 {
		return "1 reconcile round"
	}
	return fmt.Sprintf("%d reconcile rounds", n)
}
