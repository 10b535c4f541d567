package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files of the plan tests and docs/examples/plan-markdown.md")

// runPlanArgs runs `gantry plan args...` in-process; it returns stdout, the exit
// code run() would return, and a usage error if any.
func runPlanArgs(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"plan"}, args...))
	err := root.Execute()
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return out.String(), ee.code, nil
	case err != nil:
		return out.String(), 1, err
	}
	return out.String(), 0, nil
}

// planRepo makes a git repository in a temporary directory with the CLI: the
// manifests under deploy/, branch main with testdata/plan/base (annotated tag
// v1), and branches
// feature, invalid and toolarge off main with the trees of the same names
// (feature = testdata/plan/head). Author, committer and dates are fixed, so the
// commit hashes in the goldens are stable.
func planRepo(t *testing.T) string {
	t.Helper()
	testenv.Integration(t, "git")
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=Gantry Test", "GIT_AUTHOR_EMAIL=test@gantry.test", "GIT_AUTHOR_DATE=2026-01-02T03:04:05Z",
			"GIT_COMMITTER_NAME=Gantry Test", "GIT_COMMITTER_EMAIL=test@gantry.test", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	commitTree := func(fixture, msg string) {
		t.Helper()
		deploy := filepath.Join(dir, "deploy")
		if err := os.RemoveAll(deploy); err != nil {
			t.Fatal(err)
		}
		copyTree(t, filepath.Join("testdata", "plan", fixture), deploy)
		git("add", "-A")
		git("commit", "-q", "-m", msg)
	}
	git("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("manifests live in deploy/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	commitTree("base", "base")
	for _, branch := range []string{"feature", "invalid", "toolarge"} {
		git("checkout", "-q", "-b", branch, "main")
		fixture := branch
		if branch == "feature" {
			fixture = "head"
		}
		commitTree(fixture, branch)
	}
	git("tag", "-a", "-m", "release 1", "v1", "main")
	git("checkout", "-q", "main")
	return dir
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// planGolden compares got with testdata/plan/name, or rewrites it with -update.
func planGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "plan", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/gantry -run TestPlan -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

// TestPlanGit runs every git-based case on one real repository made with the git
// CLI (planRepo).
func TestPlanGit(t *testing.T) {
	repo := planRepo(t)
	t.Run("formats", func(t *testing.T) { testPlanRepo(t, repo) })
	t.Run("json", func(t *testing.T) { testPlanRepoJSON(t, repo) })
	t.Run("whole repository", func(t *testing.T) { testPlanWholeRepo(t, repo) })
	t.Run("no changes", func(t *testing.T) { testPlanNoChanges(t, repo) })
	t.Run("refs", func(t *testing.T) { testPlanRefs(t, repo) })
	t.Run("invalid", func(t *testing.T) { testPlanInvalid(t, repo) })
	t.Run("too large", func(t *testing.T) { testPlanTooLarge(t, repo) })
	t.Run("example", func(t *testing.T) { testPlanExample(t, repo) })
	t.Run("usage errors", func(t *testing.T) { testPlanUsageErrors(t, repo) })
}

// testPlanRepo runs the offline plan on two branches in each format, with the
// placement check on two nodes: exit 2 (changes, all fit).
func testPlanRepo(t *testing.T, repo string) {
	for _, format := range []string{"text", "markdown", "json"} {
		t.Run(format, func(t *testing.T) {
			out, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "feature", "--path", "deploy",
				"--nodes", "testdata/plan/nodes.yaml", "--format", format)
			if err != nil || code != 2 {
				t.Fatalf("exit %d, err %v, want exit 2; output:\n%s", code, err, out)
			}
			ext := map[string]string{"text": "txt", "markdown": "md", "json": "json"}[format]
			planGolden(t, "repo."+ext+".golden", out)
		})
	}
}

// testPlanRepoJSON checks the JSON output's meaning, beyond the golden file.
func testPlanRepoJSON(t *testing.T, repo string) {
	out, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "feature", "--path", "deploy", "--format", "json")
	if err != nil || code != 2 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	var rep struct {
		Changes struct {
			Objects []struct {
				Kind, Name, Action string
				Source             struct{ File string }
				Rollout            *struct{ Summary string }
			}
		}
		Summary struct{ Created, Changed, Deleted, ExitCode int }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, o := range rep.Changes.Objects {
		s := o.Action + " " + o.Source.File
		if o.Rollout != nil {
			s += ": " + o.Rollout.Summary
		}
		got[o.Kind+"/"+o.Name] = s
	}
	for k, want := range map[string]string{
		"Deployment/web":    "changed deploy/web.yaml: web: 3 pods replaced, 1 at a time, surge 1",
		"Deployment/worker": "changed deploy/worker.yaml: worker: scale 2 → 3, all 2 pods stopped, then 3 started",
		"Deployment/legacy": "deleted deploy/legacy.yaml: legacy: left git, 1 pod stopped",
		"Deployment/api":    "created deploy/api.yaml: api: 2 pods created",
	} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	if s := rep.Summary; s.Created != 1 || s.Deleted != 1 || s.ExitCode != 2 {
		t.Errorf("summary %+v", s)
	}
}

// testPlanWholeRepo: without --path the whole tree is read (README.md is not a
// manifest), and file names are the same.
func testPlanWholeRepo(t *testing.T, repo string) {
	args := []string{"--repo", repo, "--base", "main", "--head", "feature", "--format", "json"}
	whole, code, err := runPlanArgs(t, args...)
	if err != nil || code != 2 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	sub, _, _ := runPlanArgs(t, append(args, "--path", "./deploy/")...)
	if diff := cmp.Diff(sub, whole); diff != "" {
		t.Errorf("--path deploy and the whole repository differ (-path +whole):\n%s", diff)
	}
}

// TestPlanSecretValues: a plain Secret (with --allow-plain-secrets) changed
// between two directories shows its keys and fingerprints, never its values.
func TestPlanSecretValues(t *testing.T) {
	base, head := t.TempDir(), t.TempDir()
	secret := func(v string) []byte {
		return []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: " + v + "\n")
	}
	if err := os.WriteFile(filepath.Join(base, "s.yaml"), secret("base-value-4b1d"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(head, "s.yaml"), secret("head-value-9c2e"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "markdown", "json"} {
		out, code, err := runPlanArgs(t, "--allow-plain-secrets", "--format", format, base, head)
		if err != nil || code != 2 {
			t.Fatalf("%s: exit %d, err %v:\n%s", format, code, err, out)
		}
		if strings.Contains(out, "base-value-4b1d") || strings.Contains(out, "head-value-9c2e") {
			t.Errorf("%s output shows a secret value:\n%s", format, out)
		}
		if !strings.Contains(out, "stringData.password") || !strings.Contains(out, "(secret sha256:") {
			t.Errorf("%s output does not show the changed key with a fingerprint:\n%s", format, out)
		}
	}
	if out, code, _ := runPlanArgs(t, base, head); code != 1 || !strings.Contains(out, "s.yaml:") {
		t.Errorf("without --allow-plain-secrets a Secret with values is an error with file:line; exit %d:\n%s", code, out)
	}
}

// TestPlanDirs compares two directories; one directory alone is all created.
func TestPlanDirs(t *testing.T) {
	out, code, err := runPlanArgs(t, "testdata/plan/base", "testdata/plan/head")
	if err != nil || code != 2 {
		t.Fatalf("exit %d, err %v, want 2:\n%s", code, err, out)
	}
	planGolden(t, "dirs.txt.golden", out)

	out, code, err = runPlanArgs(t, "testdata/plan/base", "testdata/plan/base")
	if err != nil || code != 0 || !strings.Contains(out, "\nno changes\n") {
		t.Errorf("same directory twice: exit %d, err %v, want 0 and \"no changes\":\n%s", code, err, out)
	}

	out, code, err = runPlanArgs(t, "testdata/plan/base", "--node", "name=n1,cpu=8,mem=16Gi")
	if err != nil || code != 2 || !strings.Contains(out, "8 created, 0 changed, 0 deleted") ||
		!strings.Contains(out, "deployment/default/web: 3 pods → n1 (3)") {
		t.Errorf("one directory: exit %d, err %v:\n%s", code, err, out)
	}
}

// testPlanNoChanges: the same ref twice is exit 0.
func testPlanNoChanges(t *testing.T, repo string) {
	out, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "main", "--path", "deploy", "--node", "name=n1,cpu=8,mem=16Gi")
	if err != nil || code != 0 || !strings.Contains(out, "\nno changes\n") {
		t.Errorf("exit %d, err %v, want 0 and \"no changes\":\n%s", code, err, out)
	}
}

// testPlanRefs: an annotated tag and a relative ref resolve to the same commits
// as the branches.
func testPlanRefs(t *testing.T, repo string) {
	want, _, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "feature", "--path", "deploy")
	if err != nil {
		t.Fatal(err)
	}
	got, code, err := runPlanArgs(t, "--repo", filepath.Join(repo, "deploy"), "--base", "v1", "--head", "feature~0", "--path", "deploy")
	if err != nil || code != 2 {
		t.Fatalf("exit %d, err %v", code, err)
	}
	got = strings.Replace(strings.Replace(got, "v1 (", "main (", 1), "feature~0 (", "feature (", 1)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tag and relative ref, from a subdirectory (-branches +refs):\n%s", diff)
	}
}

// testPlanInvalid: head with validation errors prints them with file:line, exit 1.
func testPlanInvalid(t *testing.T, repo string) {
	out, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "invalid", "--path", "deploy")
	if err != nil || code != 1 {
		t.Fatalf("exit %d, err %v, want 1:\n%s", code, err, out)
	}
	if !strings.Contains(out, "deploy/api.yaml:6:13: error: spec.replicas") {
		t.Errorf("no file:line error for deploy/api.yaml:\n%s", out)
	}
	planGolden(t, "invalid.txt.golden", out)
}

// testPlanTooLarge is the merge gate: a branch that adds a pod too large for any
// node → exit 1 with the reason, in the markdown a CI job would post.
func testPlanTooLarge(t *testing.T, repo string) {
	out, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "toolarge", "--path", "deploy",
		"--nodes", "testdata/plan/nodes.yaml", "--format", "markdown")
	if err != nil || code != 1 {
		t.Fatalf("exit %d, err %v, want 1:\n%s", code, err, out)
	}
	if !strings.Contains(out, "`pod/default/big`: 1 pod: 0/2 nodes fit: 2 insufficient memory (needs 64Gi") {
		t.Errorf("no reason for pod big:\n%s", out)
	}
	planGolden(t, "toolarge.md.golden", out)
}

// testPlanExample keeps docs/examples/plan-markdown.md the output of real runs.
func testPlanExample(t *testing.T, repo string) {
	feature, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "feature", "--path", "deploy",
		"--nodes", "testdata/plan/nodes.yaml", "--format", "markdown")
	if err != nil || code != 2 {
		t.Fatalf("feature: exit %d, err %v", code, err)
	}
	tooLarge, code, err := runPlanArgs(t, "--repo", repo, "--base", "main", "--head", "toolarge", "--path", "deploy",
		"--nodes", "testdata/plan/nodes.yaml", "--format", "markdown")
	if err != nil || code != 1 {
		t.Fatalf("toolarge: exit %d, err %v", code, err)
	}
	got := `# Example: ` + "`gantry plan --format markdown`" + `

Real output, kept up to date by a test: ` + "`go test ./cmd/gantry -run TestPlanExample -update`" + ` writes
this file and the test fails when it is stale. The repository is the one ` + "`cmd/gantry/plan_test.go`" + `
builds with the git CLI: branch ` + "`main`" + ` holds ` + "`cmd/gantry/testdata/plan/base`" + ` under ` + "`deploy/`" + `, and
each branch below changes it. The nodes are ` + "`cmd/gantry/testdata/plan/nodes.yaml`" + ` (two nodes of 4 CPUs
and 8 GiB). See [docs/PLAN.md](../PLAN.md) for what each part means.

## A feature branch (exit 2: changes, everything fits)

    gantry plan --repo . --base main --head feature --path deploy --nodes nodes.yaml --format markdown

---

` + feature + `
---

## A branch that adds a pod too large for any node (exit 1)

    gantry plan --repo . --base main --head toolarge --path deploy --nodes nodes.yaml --format markdown

---

` + tooLarge
	path := filepath.Join("..", "..", "docs", "examples", "plan-markdown.md")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/gantry -run TestPlanExample -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("docs/examples/plan-markdown.md is stale (-want +got):\n%s", diff)
	}
}

// testPlanUsageErrors: bad flags and missing refs are errors with a class.
func testPlanUsageErrors(t *testing.T, repo string) {
	cases := []struct {
		name string
		args []string
		want string
		is   error
	}{
		{"online base", []string{"--server", "https://127.0.0.1:6443", "--repo", repo, "--base", "main"}, "--base is for an offline plan", api.ErrInvalidArgument},
		{"online nodes", []string{"--online", "--node", "name=n1,cpu=1", "testdata/plan/head"}, "--nodes and --node are for an offline plan", api.ErrInvalidArgument},
		{"online no head", []string{"--online"}, "an online plan needs the head revision", api.ErrInvalidArgument},
		{"online no config", []string{"--online", "--config", filepath.Join(t.TempDir(), "none"), "testdata/plan/head"}, "client config", api.ErrNotFound},
		{"format", []string{"--format", "yaml", "testdata/plan/head"}, `--format "yaml"`, api.ErrInvalidArgument},
		{"no base", []string{"--repo", repo}, "--repo needs --base", api.ErrInvalidArgument},
		{"unknown ref", []string{"--repo", repo, "--base", "nope"}, `resolve "nope"`, api.ErrNotFound},
		{"missing folder", []string{"--repo", repo, "--base", "main", "--path", "manifests"}, `folder "manifests"`, api.ErrNotFound},
		{"not a repository", []string{"--repo", t.TempDir(), "--base", "main"}, "open repository", api.ErrNotFound},
		{"node key", []string{"--node", "name=n1,gpu=1", "testdata/plan/head"}, `unknown key "gpu"`, api.ErrInvalidArgument},
		{"node quantity", []string{"--node", "name=n1,mem=lots", "testdata/plan/head"}, "mem=lots", api.ErrInvalidArgument},
		{"node name", []string{"--node", "cpu=1", "testdata/plan/head"}, "no name=", api.ErrInvalidArgument},
		{"node twice", []string{"--node", "name=n1,cpu=1", "--node", "name=n1,cpu=2", "testdata/plan/head"}, `node "n1" given twice`, api.ErrInvalidArgument},
		{"nodes file", []string{"--nodes", "testdata/plan/base/web.yaml", "testdata/plan/head"}, `kind "Deployment"`, api.ErrInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code, err := runPlanArgs(t, c.args...)
			if err == nil || code != 1 {
				t.Fatalf("exit %d, err %v, want a usage error; output:\n%s", code, err, out)
			}
			if !strings.Contains(err.Error(), c.want) || !errors.Is(err, c.is) {
				t.Errorf("error %q: want it to contain %q and be %v", err, c.want, c.is)
			}
		})
	}
}

func TestParseNodes(t *testing.T) {
	list := []byte(`kind: NodeList
apiVersion: v1
items:
  - metadata: {name: a}
    status: {allocatable: {cpu: "2", memory: 4Gi}}
  - metadata: {name: b}
    status:
      allocatable: {cpu: "2", memory: 4Gi}
      conditions: [{type: Ready, status: "False"}]
`)
	nodes, err := parseNodes(list)
	if err != nil || len(nodes) != 2 {
		t.Fatalf("parseNodes: %v, %d nodes", err, len(nodes))
	}
	for _, n := range nodes {
		readyByDefault(n)
	}
	ready := func(i int) string {
		return string(nodes[i].Status.Conditions[len(nodes[i].Status.Conditions)-1].Status)
	}
	if ready(0) != "True" || ready(1) != "False" || len(nodes[1].Status.Conditions) != 1 {
		t.Errorf("Ready: a=%s b=%s; want a node without a condition Ready and an explicit NotReady kept", ready(0), ready(1))
	}
	if _, err := parseNodes([]byte("- metadata: {name: a}\n  spec: {unschedulablee: true}\n")); err == nil || !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("unknown field: %v, want ErrInvalidArgument", err)
	}
	n, err := parseNodeFlag("name=n1,cpu=4,mem=8Gi,pods=20")
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Status.Allocatable.Memory().String() + " " + n.Status.Allocatable.Cpu().String() + " " + n.Status.Allocatable.Pods().String(); got != "8Gi 4 20" {
		t.Errorf("allocatable %s", got)
	}
}
