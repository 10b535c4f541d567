package planner

import (
	"fmt"
	"sort"

	"gantry.io/gantry/api"
)

// prune stops the pods of apps that left git, unless the app's last object carried
// gantry.io/prune: "false" (remembered in AppState.NoPrune) or the pod itself
// carries it. Kept apps report status Suspended. Apps that left git and have no
// pod left are forgotten.
func (c *cluster) prune(in *Input, byKey map[string]*app, leftGit map[string][]*podRec) {
	keys := make([]string, 0, len(leftGit))
	for k := range leftGit {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		st := in.Apps[key]
		kept := 0
		stopped := 0
		for _, p := range leftGit[key] {
			if p.deleting {
				continue
			}
			if st.NoPrune || p.pod.Annotations[api.AnnotationPrune] == "false" {
				kept++
				continue
			}
			c.stop(p, "workload left git (prune)")
			stopped++
		}
		if stopped > 0 {
			c.plan.Events = append(c.plan.Events, Event{App: key, Reason: "Pruned",
				Message: fmt.Sprintf("workload left git: stopping %d pod(s)", stopped)})
		}
		if kept > 0 {
			c.plan.Status[key] = AppStatus{Health: Suspended,
				Message: fmt.Sprintf("left git; %d pod(s) kept running (%s=false)", kept, api.AnnotationPrune)}
		}
	}
	forget := []string{}
	for key := range in.Apps {
		if byKey[key] != nil {
			continue
		}
		if _, ok := c.plan.Status[key]; ok {
			continue // still has kept pods
		}
		forget = append(forget, key)
	}
	sort.Strings(forget)
	c.plan.ForgetApps = forget
}
