package diff

import (
	"fmt"
	"strings"
)

// Text renders the report for a terminal: head's diagnostics, one block per
// changed object (its field changes, rollout and notes indented below it), the
// counts, and the placement.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gantry plan: %s → %s\n", r.Base, r.Head)
	if len(r.Diagnostics) > 0 {
		b.WriteString("\n")
		b.WriteString(r.Diagnostics.String())
	}
	if r.Invalid() {
		fmt.Fprintf(&b, "\nhead is invalid: %d errors; nothing would be applied\n", len(r.Diagnostics.Errors()))
		return b.String()
	}
	if r.BaseErrors > 0 {
		fmt.Fprintf(&b, "\nnote: base has %d errors; its objects with errors count as absent\n", r.BaseErrors)
	}
	if len(r.Changes.Objects) > 0 {
		b.WriteString("\n")
	}
	for _, o := range r.Changes.Objects {
		fmt.Fprintf(&b, "%s: %s", o.Ref(), o.Action)
		if p := position(o.Source); p != "" {
			fmt.Fprintf(&b, " (%s)", p)
		}
		b.WriteString("\n")
		for _, f := range o.Fields {
			fmt.Fprintf(&b, "    %s\n", f)
		}
		if o.Rollout != nil {
			fmt.Fprintf(&b, "    rollout: %s\n", rolloutDetail(o.Rollout))
		}
		for _, n := range o.Notes {
			fmt.Fprintf(&b, "    %s\n", n)
		}
	}
	fmt.Fprintf(&b, "\n%s\n", r.summary())
	if p := r.Placement; p != nil {
		fmt.Fprintf(&b, "\nplacement on %s (%s):\n", nodeCount(p.Nodes), p.basis())
		for _, a := range p.Apps {
			fmt.Fprintf(&b, "    %s: %s\n", a.App, a.line())
		}
		for _, e := range p.Preempted {
			fmt.Fprintf(&b, "    %s\n", e)
		}
		for _, d := range p.Deferred {
			fmt.Fprintf(&b, "    deferred %s: %s: %s\n", d.App, podCount(d.Pods), d.Reason)
		}
		for _, u := range p.Unplaceable {
			fmt.Fprintf(&b, "    unplaceable %s: %s: %s\n", u.App, podCount(u.Pods), u.Reason)
		}
		if !p.Fits() {
			n := 0
			for _, u := range p.Unplaceable {
				n += u.Pods
			}
			fmt.Fprintf(&b, "\nhead does not fit: %s fit on no node\n", podCount(n))
		}
		if p.Live {
			fmt.Fprintf(&b, "\nrunning pods: %s\n", p.runningSummary())
		}
	}
	return b.String()
}
