package diff

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/planner/plannertest"
)

func TestTemplateHashes(t *testing.T) {
	base := load(t, deployment("web"), deployment("api"))
	head := load(t, deployment("web", "image=gantry.test/echo:v2"), deployment("api", "replicas=5"))
	got := map[string]*Rollout{}
	for _, o := range Compare(base, head).Objects {
		got[o.Name] = o.Rollout
	}
	web, api := got["web"], got["api"]
	if web.OldHash != planner.TemplateHash(&base.Deployment("default", "web").Spec.Template) ||
		web.NewHash != planner.TemplateHash(&head.Deployment("default", "web").Spec.Template) || web.OldHash == web.NewHash {
		t.Errorf("web hashes %s → %s, want planner.TemplateHash of base and head", web.OldHash, web.NewHash)
	}
	if api.TemplateChanged || api.OldHash != api.NewHash {
		t.Errorf("a scale keeps the template: %+v", api)
	}
}

func TestSecretSources(t *testing.T) {
	ext := func(name, property, restart string) string {
		s := "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: " + name + "\n"
		if restart != "" {
			s += "  annotations:\n    gantry.io/restart-on-change: \"" + restart + "\"\n"
		}
		return s + `spec:
  secretStoreRef:
    name: vault
  target:
    name: ` + name + `-target
  data:
    - secretKey: token
      remoteRef:
        key: web
        property: ` + property + "\n"
	}
	store := "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata:\n  name: vault\nspec:\n  provider:\n    vault:\n      server: http://127.0.0.1:8200\n      auth:\n        tokenSecretRef:\n          name: vault-token\n          key: token\n"
	base := load(t, store, ext("rolling", "a", ""), ext("inplace", "a", "false"),
		deployment("web", "secret=rolling-target"), deployment("api", "secret=inplace-target"))
	head := load(t, store, ext("rolling", "b", ""), ext("inplace", "b", "false"),
		deployment("web", "secret=rolling-target"), deployment("api", "secret=inplace-target"))
	var got []string
	for _, o := range Compare(base, head).Objects {
		line := o.Ref() + ": " + strings.Join(o.Notes, "; ")
		if o.Rollout != nil {
			line += " rollout " + o.Rollout.Summary + " because " + strings.Join(o.Rollout.Cause, ",")
		}
		got = append(got, line)
	}
	want := []string{
		`externalsecret default/inplace: pods using secret inplace-target are not restarted (gantry.io/restart-on-change: "false"): secret files are updated in place`,
		"externalsecret default/rolling: rolls deployment default/web",
		"deployment default/web:  rollout web: 3 pods replaced, 1 at a time, surge 1 because secret rolling-target",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// report is a fixed report with every section, for the rendering tests.
func report() Report {
	return Report{
		Base: "main (1a2b3c4d)", Head: "feature|x (5e6f7a8b)",
		Changes: Changes{Objects: []ObjectChange{
			{Kind: "ConfigMap", Namespace: "default", Name: "cfg", Action: Changed, Source: manifest.Position{File: "cfg.yaml", Line: 3},
				Fields: []FieldChange{{Path: "data.A", Op: OpChange, Old: "a|b", New: "<b>```"}},
				Notes:  []string{"rolls deployment default/web"}},
			{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed, Source: manifest.Position{File: "web.yaml", Line: 1},
				Rollout: &Rollout{Strategy: "RollingUpdate", Cause: []string{"configmap cfg"}, OldHash: "h1", NewHash: "h1", OldReplicas: 3, Replicas: 3,
					MaxSurge: 1, Summary: "web: 3 pods replaced, 1 at a time, surge 1"}},
			{Kind: "Service", Namespace: "default", Name: "web", Action: Deleted, Source: manifest.Position{File: "web.yaml", Line: 30}},
		}},
		Placement: &Placement{Nodes: 2,
			Apps:        []AppPlacement{{App: "deployment/default/web", Pods: 3, Nodes: []NodeCount{{Node: "n1", Pods: 2}, {Node: "n2", Pods: 1}}}},
			Unplaceable: []Unfit{{App: "pod/default/big", Pods: 1, Reason: "0/2 nodes fit: 2 insufficient memory (needs 64Gi, most free 8Gi)"}}},
	}
}

func TestText(t *testing.T) {
	want := `gantry plan: main (1a2b3c4d) → feature|x (5e6f7a8b)

configmap default/cfg: changed (cfg.yaml:3)
    data.A: a|b → <b>` + "```" + `
    rolls deployment default/web
deployment default/web: changed (web.yaml:1)
    rollout: web: 3 pods replaced, 1 at a time, surge 1 (because configmap cfg changed)
service default/web: deleted (web.yaml:30)

0 created, 2 changed, 1 deleted

placement on 2 nodes (offline: an empty cluster of these nodes):
    deployment/default/web: 3 pods → n1 (2), n2
    unplaceable pod/default/big: 1 pod: 0/2 nodes fit: 2 insufficient memory (needs 64Gi, most free 8Gi)

head does not fit: 1 pod fit on no node
`
	if diff := cmp.Diff(want, report().Text()); diff != "" {
		t.Errorf("Text (-want +got):\n%s", diff)
	}
}

func TestMarkdown(t *testing.T) {
	want := "### gantry plan\n\n" +
		"`main (1a2b3c4d)` → `feature\\|x (5e6f7a8b)`: **0 created, 2 changed, 1 deleted; does not fit**\n\n" +
		"| | object | change | effect |\n|:-:|---|---|---|\n" +
		"| ~ | `configmap default/cfg` | changed | rolls deployment default/web |\n" +
		"| ~ | `deployment default/web` | changed | web: 3 pods replaced, 1 at a time, surge 1 |\n" +
		"| − | `service default/web` | deleted |  |\n" +
		"\n<details>\n<summary><code>configmap default/cfg</code> changed · <code>cfg.yaml:3</code></summary>\n\n" +
		"````\ndata.A: a|b → <b>```\n````\n\n" +
		"- rolls deployment default/web\n\n</details>\n" +
		"\n<details>\n<summary><code>deployment default/web</code> changed · <code>web.yaml:1</code></summary>\n\n" +
		"- rollout: web: 3 pods replaced, 1 at a time, surge 1 (because configmap cfg changed)\n\n</details>\n" +
		"\n<details>\n<summary><code>service default/web</code> deleted · <code>web.yaml:30</code></summary>\n\n" +
		"- deleted\n\n</details>\n" +
		"\n#### Placement on 2 nodes\n\nOffline: head on an empty cluster of the given nodes.\n\n" +
		"| app | pods | nodes |\n|---|--:|---|\n| `deployment/default/web` | 3 | n1 (2), n2 |\n" +
		"\n**Does not fit on any node:**\n\n" +
		"- `pod/default/big`: 1 pod: 0/2 nodes fit: 2 insufficient memory (needs 64Gi, most free 8Gi)\n"
	if diff := cmp.Diff(want, report().Markdown()); diff != "" {
		t.Errorf("Markdown (-want +got):\n%s", diff)
	}
}

func TestJSONAndExitCodes(t *testing.T) {
	r := report()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Changes struct {
			Objects []ObjectChange `json:"objects"`
		} `json:"changes"`
		Summary struct {
			Created, Changed, Deleted int
			Valid, Fits               bool
			ExitCode                  int
		} `json:"summary"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	if diff := cmp.Diff(r.Changes.Objects, got.Changes.Objects); diff != "" {
		t.Errorf("objects do not round-trip (-want +got):\n%s", diff)
	}
	if s := got.Summary; s.Created != 0 || s.Changed != 2 || s.Deleted != 1 || !s.Valid || s.Fits || s.ExitCode != ExitInvalid {
		t.Errorf("summary %+v", s)
	}

	cases := []struct {
		name string
		r    Report
		want int
	}{
		{"no changes", Report{}, ExitNoChanges},
		{"changes", Report{Changes: r.Changes}, ExitChanges},
		{"changes that fit", Report{Changes: r.Changes, Placement: &Placement{Nodes: 1}}, ExitChanges},
		{"unplaceable", r, ExitInvalid},
		{"invalid", Report{Diagnostics: manifest.Diagnostics{{Severity: manifest.Error, Message: "bad"}}}, ExitInvalid},
		{"warnings only", Report{Diagnostics: manifest.Diagnostics{{Severity: manifest.Warning, Message: "hm"}}}, ExitNoChanges},
	}
	for _, c := range cases {
		if got := c.r.ExitCode(); got != c.want {
			t.Errorf("%s: exit code %d, want %d", c.name, got, c.want)
		}
	}
}

func TestPlacementOf(t *testing.T) {
	head := load(t, deployment("web", "replicas=3"))
	big := plannertest.Pod("big").Spec(func(p *plannertest.PodSpecBuilder) { p.Requests("1", "64Gi") }).Obj()
	head.Pods = append(head.Pods, big)
	nodes := []*corev1.Node{plannertest.Node("n1").CPU("4").Mem("8Gi").Obj(), plannertest.Node("n2").CPU("4").Mem("8Gi").Obj()}
	plan := planner.Compute(planner.Input{Desired: head, Nodes: nodes, Seed: 1, Config: planner.Config{MaxStartsPerNodePerRound: -1}})
	p := PlacementOf(plan, len(nodes))
	if len(p.Apps) != 1 || p.Apps[0].App != "deployment/default/web" || p.Apps[0].Pods != 3 || len(p.Apps[0].Nodes) != 2 {
		t.Errorf("apps %+v: want web's 3 pods spread over n1 and n2", p.Apps)
	}
	if p.Fits() || len(p.Unplaceable) != 1 || p.Unplaceable[0].App != "pod/default/big" ||
		!strings.Contains(p.Unplaceable[0].Reason, "0/2 nodes fit: 2 insufficient memory (needs 64Gi") {
		t.Errorf("unplaceable %+v", p.Unplaceable)
	}
}
