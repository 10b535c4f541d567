package diff

import (
	"fmt"
	"html"
	"strings"
)

// Markdown renders the report as a pull-request comment (GitHub-flavoured
// markdown): a heading with the counts, a summary table with one row per object,
// a collapsible <details> block per object with its field diff, rollout and notes,
// and the placement table with the pods that do not fit. Diagnostics, when head
// is invalid, come in a code block instead.
func (r Report) Markdown() string {
	var b strings.Builder
	b.WriteString("### gantry plan\n\n")
	fmt.Fprintf(&b, "%s → %s: **%s**\n", code(r.Base), code(r.Head), cell(r.verdict()))
	if len(r.Diagnostics) > 0 {
		fmt.Fprintf(&b, "\n%d errors, %d warnings in head:\n\n", len(r.Diagnostics.Errors()), len(r.Diagnostics)-len(r.Diagnostics.Errors()))
		fence(&b, strings.TrimSuffix(r.Diagnostics.String(), "\n"))
	}
	if r.Invalid() {
		return b.String()
	}
	if r.BaseErrors > 0 {
		fmt.Fprintf(&b, "\n> base has %d errors; its objects with errors count as absent.\n", r.BaseErrors)
	}
	if len(r.Changes.Objects) > 0 {
		b.WriteString("\n| | object | change | effect |\n|:-:|---|---|---|\n")
		for _, o := range r.Changes.Objects {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", sign(o.Action), code(o.Ref()), o.Action, cell(effect(o)))
		}
		for _, o := range r.Changes.Objects {
			b.WriteString("\n<details>\n<summary>")
			fmt.Fprintf(&b, "<code>%s</code> %s", html.EscapeString(o.Ref()), o.Action)
			if p := position(o.Source); p != "" {
				fmt.Fprintf(&b, " · <code>%s</code>", html.EscapeString(p))
			}
			b.WriteString("</summary>\n\n")
			if len(o.Fields) > 0 {
				lines := make([]string, len(o.Fields))
				for i, f := range o.Fields {
					lines[i] = f.String()
				}
				fence(&b, strings.Join(lines, "\n"))
			}
			if o.Rollout != nil {
				fmt.Fprintf(&b, "- rollout: %s\n", cell(rolloutDetail(o.Rollout)))
			}
			for _, n := range o.Notes {
				fmt.Fprintf(&b, "- %s\n", cell(n))
			}
			if len(o.Fields) == 0 && o.Rollout == nil && len(o.Notes) == 0 {
				fmt.Fprintf(&b, "- %s\n", o.Action)
			}
			b.WriteString("\n</details>\n")
		}
	}
	if p := r.Placement; p != nil {
		fmt.Fprintf(&b, "\n#### Placement on %s\n\n", nodeCount(p.Nodes))
		if p.Live {
			limit := ""
			if p.Unsettled {
				limit = ", stopped at the limit while still moving"
			}
			fmt.Fprintf(&b, "Live: head on the cluster's nodes and its %s, the rollout simulated to its end (%s%s). Running pods: %s.\n",
				runningCount(p.Running), roundCount(p.Rounds), limit, cell(p.runningSummary()))
		} else {
			b.WriteString("Offline: head on an empty cluster of the given nodes.\n")
		}
		if len(p.Apps) > 0 && p.Live {
			b.WriteString("\n| app | new pods | nodes | restarts | stops |\n|---|--:|---|--:|--:|\n")
			for _, a := range p.Apps {
				fmt.Fprintf(&b, "| %s | %d | %s | %d | %d |\n", code(a.App), a.Pods, cell(nodeList(a.Nodes)), a.Restarts, a.Stopped)
			}
		} else if len(p.Apps) > 0 {
			b.WriteString("\n| app | pods | nodes |\n|---|--:|---|\n")
			for _, a := range p.Apps {
				fmt.Fprintf(&b, "| %s | %d | %s |\n", code(a.App), a.Pods, cell(nodeList(a.Nodes)))
			}
		}
		if len(p.Preempted) > 0 {
			b.WriteString("\n**Preemption** (lower-priority pods evicted to make room):\n\n")
			for _, e := range p.Preempted {
				fmt.Fprintf(&b, "- %s\n", cell(e.String()))
			}
		}
		if len(p.Deferred) > 0 {
			b.WriteString("\n**Deferred** (fit, but wait for a later round):\n\n")
			for _, d := range p.Deferred {
				fmt.Fprintf(&b, "- %s: %s: %s\n", code(d.App), podCount(d.Pods), cell(d.Reason))
			}
		}
		if len(p.Unplaceable) > 0 {
			b.WriteString("\n**Does not fit on any node:**\n\n")
			for _, u := range p.Unplaceable {
				fmt.Fprintf(&b, "- %s: %s: %s\n", code(u.App), podCount(u.Pods), cell(u.Reason))
			}
		}
	}
	return b.String()
}

// verdict is the headline: counts, or why the change must not merge.
func (r Report) verdict() string {
	switch {
	case r.Invalid():
		return "head is invalid; nothing would be applied"
	case !r.Placement.Fits():
		return r.summary() + "; does not fit"
	}
	return r.summary()
}

func sign(a Action) string {
	switch a {
	case Created:
		return "+"
	case Deleted:
		return "−"
	}
	return "~"
}

// cell makes text safe for a table cell or a list item: no line breaks, pipes
// escaped, HTML escaped so a value cannot open a tag.
func cell(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ", "&", "&amp;", "<", "&lt;", ">", "&gt;", "|", `\|`).Replace(s)
}

// code renders s as inline code, with a backtick run longer than any inside s.
func code(s string) string {
	ticks := strings.Repeat("`", longestRun(s, '`')+1)
	s = strings.ReplaceAll(s, "|", `\|`)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return ticks + s + ticks
}

// fence writes s as a fenced code block whose fence is longer than any backtick
// run in s.
func fence(b *strings.Builder, s string) {
	f := strings.Repeat("`", max(3, longestRun(s, '`')+1))
	fmt.Fprintf(b, "%s\n%s\n%s\n\n", f, s, f)
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}
