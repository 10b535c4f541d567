package planner

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// String renders the plan as text, one line per step, in the order the caller
// applies them (preempt, stop, delete job, create job, place), then adoptions, pods that wait or fit
// nowhere, events, changed app state, forgotten apps and every app's status.
// Nothing in a plan is secret: pods carry references to secrets, never values.
func (p Plan) String() string {
	var b strings.Builder
	if p.Empty() {
		b.WriteString("no changes\n")
	}
	for _, e := range p.Preempt {
		fmt.Fprintf(&b, "preempt %s/%s on %s (priority %d) for %s (priority %d): %s\n", e.Namespace, e.Pod, e.Node, e.Priority, e.For, e.ForPriority, e.Reason)
	}
	for _, s := range p.Stop {
		fmt.Fprintf(&b, "stop %s/%s on %s: %s\n", s.Namespace, s.Pod, orNone(s.Node), s.Reason)
	}
	for _, d := range p.DeleteJobs {
		fmt.Fprintf(&b, "delete job %s/%s: %s\n", d.Namespace, d.Name, d.Reason)
	}
	for _, r := range p.JobRuns {
		fmt.Fprintf(&b, "create job %s/%s: %s\n", r.Job.Namespace, r.Job.Name, r.Reason)
	}
	for _, pl := range p.Place {
		fmt.Fprintf(&b, "place %s/%s on %s: %s\n", pl.Pod.Namespace, pl.Pod.Name, pl.Node, pl.Reason)
	}
	for _, a := range p.Adopt {
		rev := a.Revision
		if rev == "" {
			rev = "unknown revision"
		}
		fmt.Fprintf(&b, "adopt %s/%s into %s (%s): %s\n", a.Namespace, a.Pod, a.App, rev, a.Reason)
	}
	for _, d := range p.Deferred {
		fmt.Fprintf(&b, "deferred %s: %s: %s\n", d.App, describePods(d.Pods), d.Reason)
	}
	for _, u := range p.Unplaceable {
		fmt.Fprintf(&b, "unplaceable %s: %s: %s\n", u.App, describePods(u.Pods), u.Reason)
	}
	for _, e := range p.Events {
		fmt.Fprintf(&b, "event %s %s: %s\n", e.App, e.Reason, e.Message)
	}
	for _, k := range sortedKeys(p.Apps) {
		fmt.Fprintf(&b, "state %s: %s\n", k, p.Apps[k].summary())
	}
	if !p.Wake.IsZero() {
		fmt.Fprintf(&b, "wake %s\n", p.Wake.UTC().Format(time.RFC3339))
	}
	for _, k := range p.ForgetApps {
		fmt.Fprintf(&b, "forget %s\n", k)
	}
	for _, k := range sortedKeys(p.Status) {
		s := p.Status[k]
		fmt.Fprintf(&b, "status %s: %s", k, s.Health)
		if s.Progress != "" {
			fmt.Fprintf(&b, ", %s", s.Progress)
		}
		if s.Message != "" {
			fmt.Fprintf(&b, "; %s", s.Message)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// summary renders an AppState in one line: target, history with the available
// ones marked, progress, failure and pin.
func (s AppState) summary() string {
	if len(s.Revisions) == 0 && s.Target == "" && (s.Runs != nil || s.Cron != nil || s.Expired != nil) {
		return s.batchSummary()
	}
	var b strings.Builder
	num := map[string]int64{}
	var revs []string
	for _, r := range s.Revisions {
		num[r.Hash] = r.Number
		t := fmt.Sprint(r.Number)
		if !r.Available.IsZero() {
			t += "✓"
		}
		revs = append(revs, t)
	}
	fmt.Fprintf(&b, "target %d, revisions [%s], progress %d updated %d available since %s",
		num[s.Target], strings.Join(revs, " "), s.Progress.Updated, s.Progress.Available, s.Progress.Since.UTC().Format("15:04:05"))
	if s.Failed != nil {
		fmt.Fprintf(&b, ", failed %d", num[s.Failed.Revision])
		if s.Failed.RollbackTo != "" {
			fmt.Fprintf(&b, " (rolled back to %d)", num[s.Failed.RollbackTo])
		}
	}
	if s.Pin != nil {
		fmt.Fprintf(&b, ", pinned to %d", num[s.Pin.Revision])
	}
	if s.NoPrune {
		b.WriteString(", no prune")
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(no node)"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
