package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"gantry.io/gantry/manifest"
)

// Exit codes of `gantry plan`, so CI can gate a merge.
const (
	// ExitNoChanges: head is valid, fits, and changes nothing.
	ExitNoChanges = 0
	// ExitInvalid: head has validation errors, or a pod fits on no node.
	ExitInvalid = 1
	// ExitChanges: head is valid, fits, and changes something.
	ExitChanges = 2
)

// Report is everything `gantry plan` says about one change: what was compared,
// head's diagnostics, the changes and, when nodes were given, the placement.
type Report struct {
	// Base and Head say what was compared, e.g. "main (1a2b3c4d)" or a directory.
	Base string `json:"base"`
	Head string `json:"head"`
	// Diagnostics are head's problems with file:line. Errors make the report
	// invalid: Changes is then left empty, since head's objects with errors would
	// read as deleted.
	Diagnostics manifest.Diagnostics `json:"diagnostics"`
	// BaseErrors counts base's errors: objects with errors count as absent there.
	BaseErrors int `json:"baseErrors,omitempty"`
	// Changes is Compare(base, head).
	Changes Changes `json:"changes"`
	// Placement is head's placement on the given nodes; nil when none were given.
	Placement *Placement `json:"placement,omitempty"`
}

// Invalid reports whether head has validation errors.
func (r Report) Invalid() bool { return r.Diagnostics.HasErrors() }

// ExitCode is ExitInvalid if head is invalid or a pod fits nowhere, else
// ExitChanges if anything changes, else ExitNoChanges.
func (r Report) ExitCode() int {
	switch {
	case r.Invalid() || !r.Placement.Fits():
		return ExitInvalid
	case !r.Changes.Empty():
		return ExitChanges
	}
	return ExitNoChanges
}

// summary is "1 created, 2 changed, 0 deleted" or "no changes".
func (r Report) summary() string {
	if r.Changes.Empty() {
		return "no changes"
	}
	c, u, d := r.Changes.Count()
	return fmt.Sprintf("%d created, %d changed, %d deleted", c, u, d)
}

// JSON renders the report as indented JSON: the Report's fields plus a summary
// with the counts and the exit code.
func (r Report) JSON() ([]byte, error) {
	type summary struct {
		Created  int  `json:"created"`
		Changed  int  `json:"changed"`
		Deleted  int  `json:"deleted"`
		Valid    bool `json:"valid"`
		Fits     bool `json:"fits"`
		ExitCode int  `json:"exitCode"`
	}
	c, u, d := r.Changes.Count()
	if r.Diagnostics == nil {
		r.Diagnostics = manifest.Diagnostics{}
	}
	if r.Changes.Objects == nil {
		r.Changes.Objects = []ObjectChange{}
	}
	out := struct {
		Report
		Summary summary `json:"summary"`
	}{r, summary{c, u, d, !r.Invalid(), r.Placement.Fits(), r.ExitCode()}}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return buf.Bytes(), nil
}

// rolloutDetail is the rollout line with the hashes and causes.
func rolloutDetail(r *Rollout) string {
	s := r.Summary
	var extra []string
	switch {
	case r.Strategy == "Run" || r.Strategy == "Schedule":
	case r.TemplateChanged:
		extra = append(extra, fmt.Sprintf("pod-template-hash %s → %s", r.OldHash, r.NewHash))
	case r.OldHash != "" && r.NewHash == "" || r.OldHash == "" && r.NewHash != "":
		extra = append(extra, "pod-template-hash "+r.OldHash+r.NewHash)
	case len(r.Cause) == 0 && r.OldHash != "":
		extra = append(extra, "pod template unchanged")
	}
	if len(r.Cause) > 0 {
		extra = append(extra, "because "+strings.Join(r.Cause, ", ")+" changed")
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, "; ") + ")"
	}
	return s
}

// effect is the one-line consequence of a change for the summary table.
func effect(o ObjectChange) string {
	if o.Rollout != nil {
		return o.Rollout.Summary
	}
	if len(o.Notes) > 0 {
		return strings.Join(o.Notes, "; ")
	}
	switch {
	case len(o.Fields) == 1:
		return "1 field"
	case len(o.Fields) > 1:
		return fmt.Sprintf("%d fields", len(o.Fields))
	}
	return ""
}

func position(p manifest.Position) string {
	if p.File == "" {
		return ""
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// nodeList is "n1, n2 (2)": node names, with a count where more than one pod goes.
func nodeList(nodes []NodeCount) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n.Node
		if n.Pods > 1 {
			parts[i] += fmt.Sprintf(" (%d)", n.Pods)
		}
	}
	return strings.Join(parts, ", ")
}

func podCount(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

func nodeCount(n int) string {
	if n == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", n)
}
