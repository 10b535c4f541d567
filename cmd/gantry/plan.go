package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/diff"
)

func init() { register(newPlanCmd) }

// maxRevisionBytes bounds the manifest files read from one git revision, as
// gitsync bounds a snapshot.
const maxRevisionBytes = 64 << 20

// planSeed is the planner seed of an offline placement: fixed, so the same
// revision and nodes always give the same report.
const planSeed = 1

type planOptions struct {
	repo, base, head, path string
	nodesFile              string
	nodes                  []string
	server                 string
	online                 bool
	config                 string
	format                 string
	allowPlain             bool
}

func newPlanCmd() *cobra.Command {
	var o planOptions
	cmd := &cobra.Command{
		Use:   "plan [BASE_DIR] HEAD_DIR | --repo DIR --base REF [--head REF] | --server URL (HEAD_DIR | --repo DIR [--head REF])",
		Short: "Show what a change of the manifests would do to the cluster (for pull-request review)",
		Long: `plan compares two revisions of a manifest repository and shows, per object, whether it is
created, changed or deleted, a field-level diff of what changed, and the rollout it causes
("web: 3 pods replaced, 1 at a time, surge 1"). Secret values never appear.

The revisions are two refs of a local git repository (--repo DIR --base REF --head REF,
read with go-git; --path P selects a folder of the repository), or two directories
(plan BASE_DIR HEAD_DIR); with one directory, everything in it counts as created.

With --nodes FILE (a YAML list of v1 Nodes, a v1 List/NodeList, or one Node) or
--node name=n1,cpu=4,mem=8Gi (repeatable), plan also places head's pods on an empty
cluster of those nodes and reports where they would go and which fit nowhere, and why.

With --server URL (or --online: the server of the client config), head — a
directory, or --repo DIR --head REF — is planned by the control plane against the
live cluster: the diff is against the revision the cluster runs, and head is placed
on the cluster's nodes next to its running pods, the rollout simulated to its end:
where new pods go, which fit nowhere and why, how many running pods restart.

Exit status: 0 no changes, 2 changes, 1 head invalid (errors printed with file:line)
or a pod that fits on no node.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := runPlan(cmd.OutOrStdout(), o, args)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.repo, "repo", "", "a local git repository: compare --base and --head in it")
	f.StringVar(&o.base, "base", "", "with --repo: the base revision (branch, tag, commit, HEAD~1, …)")
	f.StringVar(&o.head, "head", "HEAD", "with --repo: the head revision")
	f.StringVar(&o.path, "path", "", "with --repo: the folder of the repository holding the manifests (default: the root)")
	f.StringVar(&o.nodesFile, "nodes", "", "place head's pods on the nodes in this YAML file (offline placement check)")
	f.StringArrayVar(&o.nodes, "node", nil, "a node for the offline placement check: name=N,cpu=Q,mem=Q[,pods=N] (repeatable)")
	f.StringVar(&o.server, "server", "", "plan against the live cluster at this URL (credentials from the client config)")
	f.BoolVar(&o.online, "online", false, "plan against the live cluster of the client config")
	f.StringVar(&o.config, "config", "", "with --server or --online: client config file (default $GANTRY_CONFIG or ~/.config/gantry/config)")
	f.StringVar(&o.format, "format", "text", "output format: text, markdown or json")
	f.BoolVar(&o.allowPlain, "allow-plain-secrets", false, "accept Secret objects with data or stringData (their values are still never shown)")
	return cmd
}

// revision is one side of the comparison, loaded.
type revision struct {
	label   string
	desired *manifest.Desired
	diags   manifest.Diagnostics
	// display maps a file name of the loaded tree to the one shown to the user.
	display func(string) string
}

// runPlan does the work of `gantry plan` and returns the exit code; an error is a
// usage or I/O problem (exit 1, printed by main).
func runPlan(out io.Writer, o planOptions, args []string) (int, error) {
	switch o.format {
	case "text", "markdown", "json":
	default:
		return 1, fmt.Errorf("--format %q: want text, markdown or json: %w", o.format, api.ErrInvalidArgument)
	}
	if o.server != "" || o.online {
		return runOnlinePlan(out, o, args)
	}
	opts := []manifest.Option{manifest.WithAllowPlainSecrets(o.allowPlain)}
	var base, head revision
	var err error
	switch {
	case o.repo != "":
		if len(args) > 0 {
			return 1, fmt.Errorf("--repo compares two refs; directories %v are not expected as well: %w", args, api.ErrInvalidArgument)
		}
		if o.base == "" {
			return 1, fmt.Errorf("--repo needs --base REF (the branch the change is reviewed against): %w", api.ErrInvalidArgument)
		}
		if base, err = loadRevision(o.repo, o.base, o.path, opts); err != nil {
			return 1, err
		}
		if head, err = loadRevision(o.repo, o.head, o.path, opts); err != nil {
			return 1, err
		}
	case len(args) == 2:
		if base, err = loadDir(args[0], opts); err != nil {
			return 1, err
		}
		if head, err = loadDir(args[1], opts); err != nil {
			return 1, err
		}
	case len(args) == 1:
		base = revision{label: "(empty)", display: func(s string) string { return s }}
		if head, err = loadDir(args[0], opts); err != nil {
			return 1, err
		}
	default:
		return 1, fmt.Errorf("plan needs --repo DIR --base REF, or BASE_DIR HEAD_DIR, or HEAD_DIR: %w", api.ErrInvalidArgument)
	}
	nodes, err := planNodes(o)
	if err != nil {
		return 1, err
	}

	report := diff.Report{Base: base.label, Head: head.label, BaseErrors: len(base.diags.Errors())}
	for _, d := range head.diags {
		d.Pos.File = head.display(d.Pos.File)
		report.Diagnostics = append(report.Diagnostics, d)
	}
	if !report.Invalid() {
		report.Changes = diff.Compare(base.desired, head.desired)
		for i := range report.Changes.Objects {
			oc := &report.Changes.Objects[i]
			if oc.Action == diff.Deleted {
				oc.Source.File = base.display(oc.Source.File)
			} else {
				oc.Source.File = head.display(oc.Source.File)
			}
		}
		if nodes != nil {
			plan := planner.Compute(planner.Input{
				Desired: head.desired,
				Nodes:   nodes,
				Now:     time.Now(),
				Seed:    planSeed,
				// Offline, every pod of head is new: place them all in one plan.
				Config: planner.Config{MaxStartsPerNodePerRound: -1},
			})
			report.Placement = diff.PlacementOf(plan, len(nodes))
		}
	}

	return writeReport(out, o.format, report)
}

// writeReport renders report in format (text, markdown or json) and returns its
// exit code.
func writeReport(out io.Writer, format string, report diff.Report) (int, error) {
	var text []byte
	switch format {
	case "json":
		var err error
		if text, err = report.JSON(); err != nil {
			return 1, err
		}
	case "markdown":
		text = []byte(report.Markdown())
	default:
		text = []byte(report.Text())
	}
	if _, err := out.Write(text); err != nil {
		return 1, fmt.Errorf("write plan: %w", err)
	}
	return report.ExitCode(), nil
}

// loadDir loads a directory tree; diagnostics name files below dir.
func loadDir(dir string, opts []manifest.Option) (revision, error) {
	d, diags, err := manifest.Load(dir, opts...)
	if err != nil {
		return revision{}, err
	}
	single := false
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		single = true
	}
	return revision{label: dir, desired: d, diags: diags, display: func(f string) string {
		if single {
			return dir
		}
		return filepath.Join(dir, filepath.FromSlash(f))
	}}, nil
}

// loadRevision reads the manifests under sub at ref of the git repository at dir
// (or a parent of it) with go-git and loads them. File names shown are relative
// to the repository root. A ref or folder that does not exist is api.ErrNotFound.
func loadRevision(dir, ref, sub string, opts []manifest.Option) (revision, error) {
	files, hash, err := readRevision(dir, ref, sub)
	if err != nil {
		return revision{}, err
	}
	d, diags := manifest.LoadFiles(files, opts...)
	sub = cleanSub(sub)
	return revision{label: fmt.Sprintf("%s (%s)", ref, hash[:8]), desired: d, diags: diags, display: func(f string) string {
		if sub == "" {
			return f
		}
		return path.Join(sub, f)
	}}, nil
}

func cleanSub(sub string) string {
	sub = strings.Trim(path.Clean("/"+filepath.ToSlash(sub)), "/")
	if sub == "." {
		return ""
	}
	return sub
}

// readRevision returns the .yaml/.yml files below sub in the tree of ref, keyed
// by their path relative to sub, and the commit hash.
func readRevision(dir, ref, sub string) (map[string][]byte, string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, "", fmt.Errorf("open repository %s: %w: %w", dir, api.ErrNotFound, err)
		}
		return nil, "", fmt.Errorf("open repository %s: %w", dir, err)
	}
	h, err := repo.ResolveRevision(plumbing.Revision(ref))
	if err != nil {
		return nil, "", fmt.Errorf("resolve %q in %s: %w: %w", ref, dir, api.ErrNotFound, err)
	}
	commit, err := repo.CommitObject(*h)
	if err != nil {
		return nil, "", fmt.Errorf("%q (%s) in %s is not a commit: %w", ref, h, dir, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("tree of %q in %s: %w", ref, dir, err)
	}
	if sub = cleanSub(sub); sub != "" {
		if tree, err = tree.Tree(sub); err != nil {
			return nil, "", fmt.Errorf("folder %q at %q in %s: %w: %w", sub, ref, dir, api.ErrNotFound, err)
		}
	}
	files := map[string][]byte{}
	total := 0
	err = tree.Files().ForEach(func(f *object.File) error {
		ext := strings.ToLower(path.Ext(f.Name))
		if f.Mode == filemode.Symlink || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		if total += int(f.Size); total > maxRevisionBytes {
			return fmt.Errorf("manifests at %q exceed %d MiB: %w", ref, maxRevisionBytes>>20, api.ErrInvalidArgument)
		}
		r, err := f.Reader()
		if err != nil {
			return fmt.Errorf("read %s at %q: %w", f.Name, ref, err)
		}
		defer r.Close()
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, r); err != nil {
			return fmt.Errorf("read %s at %q: %w", f.Name, ref, err)
		}
		files[f.Name] = buf.Bytes()
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return files, h.String(), nil
}

// planNodes returns the nodes of --nodes and --node, or nil when neither is given.
func planNodes(o planOptions) ([]*corev1.Node, error) {
	if o.nodesFile == "" && len(o.nodes) == 0 {
		return nil, nil
	}
	var nodes []*corev1.Node
	if o.nodesFile != "" {
		data, err := os.ReadFile(o.nodesFile)
		if err != nil {
			return nil, fmt.Errorf("--nodes: %w", err)
		}
		if nodes, err = parseNodes(data); err != nil {
			return nil, fmt.Errorf("--nodes %s: %w", o.nodesFile, err)
		}
	}
	for _, spec := range o.nodes {
		n, err := parseNodeFlag(spec)
		if err != nil {
			return nil, fmt.Errorf("--node %q: %w", spec, err)
		}
		nodes = append(nodes, n)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.Name == "" {
			return nil, fmt.Errorf("a node has no name: %w", api.ErrInvalidArgument)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("node %q given twice: %w", n.Name, api.ErrInvalidArgument)
		}
		seen[n.Name] = true
		readyByDefault(n)
	}
	return nodes, nil
}

// parseNodes reads a YAML (or JSON) list of Nodes, a List or NodeList with items,
// or a single Node. Unknown fields are errors.
func parseNodes(data []byte) ([]*corev1.Node, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
	}
	js = bytes.TrimSpace(js)
	var list []corev1.Node
	switch {
	case bytes.HasPrefix(js, []byte("[")):
		if err := yaml.UnmarshalStrict(data, &list); err != nil {
			return nil, fmt.Errorf("a list of nodes: %w: %w", api.ErrInvalidArgument, err)
		}
	case bytes.HasPrefix(js, []byte("{")):
		var probe struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(data, &probe); err != nil {
			return nil, fmt.Errorf("%w: %w", api.ErrInvalidArgument, err)
		}
		switch probe.Kind {
		case "List", "NodeList":
			var l corev1.NodeList
			if err := yaml.UnmarshalStrict(data, &l); err != nil {
				return nil, fmt.Errorf("a %s: %w: %w", probe.Kind, api.ErrInvalidArgument, err)
			}
			list = l.Items
		case "Node", "":
			var n corev1.Node
			if err := yaml.UnmarshalStrict(data, &n); err != nil {
				return nil, fmt.Errorf("a Node: %w: %w", api.ErrInvalidArgument, err)
			}
			list = []corev1.Node{n}
		default:
			return nil, fmt.Errorf("kind %q: want a list of Nodes, a List, a NodeList or a Node: %w", probe.Kind, api.ErrInvalidArgument)
		}
	default:
		return nil, fmt.Errorf("want a list of Nodes, a List, a NodeList or a Node: %w", api.ErrInvalidArgument)
	}
	out := make([]*corev1.Node, len(list))
	for i := range list {
		out[i] = &list[i]
	}
	return out, nil
}

// nodeFlagKeys maps the keys of --node to resources.
var nodeFlagKeys = map[string]corev1.ResourceName{
	"cpu": corev1.ResourceCPU, "mem": corev1.ResourceMemory, "memory": corev1.ResourceMemory,
	"pods": corev1.ResourcePods, "ephemeral-storage": corev1.ResourceEphemeralStorage,
}

// parseNodeFlag reads "name=n1,cpu=4,mem=8Gi[,pods=110]" into a Ready node with
// that allocatable.
func parseNodeFlag(spec string) (*corev1.Node, error) {
	n := &corev1.Node{}
	n.Status.Allocatable = corev1.ResourceList{}
	for _, part := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("%q is not key=value: %w", part, api.ErrInvalidArgument)
		}
		if k == "name" {
			n.Name = v
			continue
		}
		res, known := nodeFlagKeys[k]
		if !known {
			keys := []string{"name"}
			for k := range nodeFlagKeys {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			return nil, fmt.Errorf("unknown key %q (known: %s): %w", k, strings.Join(keys, ", "), api.ErrInvalidArgument)
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w: %w", k, v, api.ErrInvalidArgument, err)
		}
		n.Status.Allocatable[res] = q
	}
	if n.Name == "" {
		return nil, fmt.Errorf("no name=: %w", api.ErrInvalidArgument)
	}
	n.Status.Capacity = n.Status.Allocatable.DeepCopy()
	return n, nil
}

// readyByDefault marks a node without a Ready condition Ready: a node described
// for a placement check is one that runs. An explicit condition is kept, so a
// NotReady node can be tried too.
func readyByDefault(n *corev1.Node) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return
		}
	}
	n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue})
}
