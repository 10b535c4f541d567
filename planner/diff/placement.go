package diff

import (
	"sort"

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
}

// AppPlacement is where the pods of one app go.
type AppPlacement struct {
	App   string      `json:"app"`
	Pods  int         `json:"pods"`
	Nodes []NodeCount `json:"nodes"`
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
