package diff

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestCompare covers each change kind: what is listed, the field paths, and the
// rollout each strategy causes. Sources and hashes are compared elsewhere.
func TestCompare(t *testing.T) {
	job := func(image, parallelism string) string {
		return `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  parallelism: ` + parallelism + `
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: ` + image + "\n"
	}
	pod := func(image string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\nspec:\n  containers:\n    - name: solo\n      image: " + image + "\n"
	}
	cron := func(schedule, suspend string) string {
		return `apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "` + schedule + `"
  suspend: ` + suspend + `
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: report
              image: gantry.test/batch:v1
`
	}
	tests := []struct {
		name       string
		base, head []string
		want       []ObjectChange
	}{
		{
			name: "nothing changes",
			base: []string{deployment("web"), configMap("cfg", "A=1")},
			head: []string{configMap("cfg", "A=1"), deployment("web")},
			want: []ObjectChange{},
		},
		{
			name: "image, rolling update one at a time",
			base: []string{deployment("web", "surge=1", "unavailable=0")},
			head: []string{deployment("web", "surge=1", "unavailable=0", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 3, Replicas: 3, MaxSurge: 1,
					Summary: "web: 3 pods replaced, 1 at a time, surge 1"}}},
		},
		{
			name: "default 25% budget on 10 replicas: surge rounds up, unavailable down",
			base: []string{deployment("web", "replicas=10")},
			head: []string{deployment("web", "replicas=10", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 10, Replicas: 10, MaxSurge: 3, MaxUnavailable: 2,
					Summary: "web: 10 pods replaced, 5 at a time, surge 3, max unavailable 2"}}},
		},
		{
			name: "percentages that round to 0 allow one unavailable",
			base: []string{deployment("web", "replicas=2", "surge=10%", "unavailable=10%")},
			head: []string{deployment("web", "replicas=2", "surge=10%", "unavailable=10%", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 2, Replicas: 2, MaxSurge: 1,
					Summary: "web: 2 pods replaced, 1 at a time, surge 1"}}},
		},
		{
			name: "no surge",
			base: []string{deployment("web", "replicas=4", "surge=0", "unavailable=50%")},
			head: []string{deployment("web", "replicas=4", "surge=0", "unavailable=50%", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 4, Replicas: 4, MaxUnavailable: 2,
					Summary: "web: 4 pods replaced, 2 at a time, surge 0, max unavailable 2"}}},
		},
		{
			name: "recreate",
			base: []string{deployment("web", "strategy=Recreate")},
			head: []string{deployment("web", "strategy=Recreate", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"}},
				Rollout: &Rollout{Strategy: "Recreate", TemplateChanged: true, OldReplicas: 3, Replicas: 3,
					Summary: "web: all 3 pods stopped, then 3 started"}}},
		},
		{
			name: "scale only",
			base: []string{deployment("web", "replicas=2")},
			head: []string{deployment("web", "replicas=5")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields:  []FieldChange{{Path: "spec.replicas", Op: OpChange, Old: "2", New: "5"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", OldReplicas: 2, Replicas: 5, Summary: "web: scale 2 → 5 (3 pods added)"}}},
		},
		{
			name: "scale and image together",
			base: []string{deployment("web", "replicas=2", "surge=1", "unavailable=0")},
			head: []string{deployment("web", "replicas=4", "surge=1", "unavailable=0", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{
					{Path: "spec.replicas", Op: OpChange, Old: "2", New: "4"},
					{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"},
				},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 2, Replicas: 4, MaxSurge: 1,
					Summary: "web: scale 2 → 4, 4 pods replace 2, 1 at a time, surge 1"}}},
		},
		{
			name: "paused",
			base: []string{deployment("web")},
			head: []string{deployment("web", "paused=true", "image=gantry.test/echo:v2")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{
					{Path: "spec.paused", Op: OpAdd, New: "true"},
					{Path: "spec.template.spec.containers[web].image", Op: OpChange, Old: "gantry.test/echo:v1", New: "gantry.test/echo:v2"},
				},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 3, Replicas: 3,
					Summary: "web: paused (spec.paused): no pod is created or stopped until it is resumed"}}},
		},
		{
			name: "metadata only: pods untouched",
			base: []string{deployment("web")},
			head: []string{deployment("web", "label=payments")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "metadata.labels", Op: OpAdd, New: `{"team":"payments"}`}}}},
		},
		{
			name: "ports matched by name, not index",
			base: []string{deployment("web")},
			head: []string{deployment("web", "port=9090")},
			want: []ObjectChange{{Kind: "Deployment", Namespace: "default", Name: "web", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[web].ports[http].containerPort", Op: OpChange, Old: "8080", New: "9090"}},
				Rollout: &Rollout{Strategy: "RollingUpdate", TemplateChanged: true, OldReplicas: 3, Replicas: 3, MaxSurge: 1,
					Summary: "web: 3 pods replaced, 1 at a time, surge 1"}}},
		},
		{
			name: "created and deleted, prune and prune false",
			base: []string{deployment("old"), deployment("kept", "prune=false"), pod("gantry.test/a:v1")},
			head: []string{deployment("new", "replicas=2")},
			want: []ObjectChange{
				{Kind: "Deployment", Namespace: "default", Name: "kept", Action: Deleted,
					Rollout: &Rollout{Strategy: "RollingUpdate", OldReplicas: 3, Summary: `kept: left git, but 3 pods keep running (gantry.io/prune: "false")`}},
				{Kind: "Deployment", Namespace: "default", Name: "new", Action: Created,
					Rollout: &Rollout{Strategy: "RollingUpdate", Replicas: 2, Summary: "new: 2 pods created"},
					Notes:   []string{"images: new=gantry.test/echo:v1"}},
				{Kind: "Deployment", Namespace: "default", Name: "old", Action: Deleted,
					Rollout: &Rollout{Strategy: "RollingUpdate", OldReplicas: 3, Summary: "old: left git, 3 pods stopped"}},
				{Kind: "Pod", Namespace: "default", Name: "solo", Action: Deleted,
					Rollout: &Rollout{Strategy: "Replace", Summary: "solo: left git, 1 pod stopped"}},
			},
		},
		{
			name: "ConfigMap change rolls the Deployments that use it",
			base: []string{configMap("cfg", "A=1", "B=x"), deployment("api", "configmap=cfg"), deployment("web")},
			head: []string{configMap("cfg", "A=2", "B=x"), deployment("api", "configmap=cfg"), deployment("web")},
			want: []ObjectChange{
				{Kind: "ConfigMap", Namespace: "default", Name: "cfg", Action: Changed,
					Fields: []FieldChange{{Path: "data.A", Op: OpChange, Old: "1", New: "2"}},
					Notes:  []string{"rolls deployment default/api"}},
				{Kind: "Deployment", Namespace: "default", Name: "api", Action: Changed,
					Rollout: &Rollout{Strategy: "RollingUpdate", Cause: []string{"configmap cfg"}, OldReplicas: 3, Replicas: 3, MaxSurge: 1,
						Summary: "api: 3 pods replaced, 1 at a time, surge 1"}},
			},
		},
		{
			name: "ConfigMap labels only: nothing rolls",
			base: []string{configMap("cfg", "A=1"), deployment("api", "configmap=cfg")},
			head: []string{configMap("cfg", "A=1") + "---\n", deployment("api", "configmap=cfg")},
			want: []ObjectChange{},
		},
		{
			name: "bare Pod is replaced",
			base: []string{pod("gantry.test/a:v1")},
			head: []string{pod("gantry.test/a:v2")},
			want: []ObjectChange{{Kind: "Pod", Namespace: "default", Name: "solo", Action: Changed,
				Fields:  []FieldChange{{Path: "spec.containers[solo].image", Op: OpChange, Old: "gantry.test/a:v1", New: "gantry.test/a:v2"}},
				Rollout: &Rollout{Strategy: "Replace", TemplateChanged: true, Summary: "solo: replaced: stopped, then started again (pods are immutable)"}}},
		},
		{
			name: "Job spec change is a new run",
			base: []string{job("gantry.test/batch:v1", "1")},
			head: []string{job("gantry.test/batch:v2", "1")},
			want: []ObjectChange{{Kind: "Job", Namespace: "default", Name: "migrate", Action: Changed,
				Fields: []FieldChange{{Path: "spec.template.spec.containers[migrate].image", Op: OpChange, Old: "gantry.test/batch:v1", New: "gantry.test/batch:v2"}},
				Rollout: &Rollout{Strategy: "Run", TemplateChanged: true,
					Summary: "migrate: spec changed → new run migrate-%s (a run of the old spec still going is stopped)"}}},
		},
		{
			name: "Job parallelism applies to the current run",
			base: []string{job("gantry.test/batch:v1", "1")},
			head: []string{job("gantry.test/batch:v1", "3")},
			want: []ObjectChange{{Kind: "Job", Namespace: "default", Name: "migrate", Action: Changed,
				Fields:  []FieldChange{{Path: "spec.parallelism", Op: OpChange, Old: "1", New: "3"}},
				Rollout: &Rollout{Strategy: "Run", Summary: "migrate: no new run; the change applies to the current run migrate-%s"}}},
		},
		{
			name: "CronJob suspended",
			base: []string{cron("*/5 * * * *", "false")},
			head: []string{cron("0 * * * *", "true")},
			want: []ObjectChange{{Kind: "CronJob", Namespace: "default", Name: "report", Action: Changed,
				Fields: []FieldChange{
					{Path: "spec.schedule", Op: OpChange, Old: "*/5 * * * *", New: "0 * * * *"},
					{Path: "spec.suspend", Op: OpChange, Old: "false", New: "true"},
				},
				Rollout: &Rollout{Strategy: "Schedule", Summary: "report: suspended: no new runs; runs going continue"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, head := load(t, tc.base...), load(t, tc.head...)
			got := Compare(base, head).Objects
			for i := range tc.want {
				if r := tc.want[i].Rollout; r != nil && r.Strategy == "Run" {
					// The run name carries batch.SpecHash of head's Job.
					r.Summary = sprintfHash(r.Summary, head)
				}
			}
			if diff := cmp.Diff(tc.want, got,
				cmpopts.IgnoreFields(ObjectChange{}, "Source"),
				cmpopts.IgnoreFields(Rollout{}, "OldHash", "NewHash"),
				cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Compare (-want +got):\n%s", diff)
			}
		})
	}
}
