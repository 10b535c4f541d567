package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gantry.io/gantry/api"
)

func loadOne(t *testing.T, yaml string, opts ...Option) (*Desired, Diagnostics) {
	t.Helper()
	return LoadFiles(map[string][]byte{"m.yaml": []byte(yaml)}, opts...)
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		got  func(d *Desired) any
		want any
	}{{
		name: "deployment",
		yaml: `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: gantry.test/echo:v1
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {port: 8080}}
`,
		got: func(d *Desired) any {
			x := d.Deployments[0]
			c := x.Spec.Template.Spec.Containers[0]
			return []any{x.Namespace, *x.Spec.Replicas, x.Spec.Strategy, *x.Spec.RevisionHistoryLimit,
				*x.Spec.ProgressDeadlineSeconds, x.Spec.Template.Spec.RestartPolicy,
				*x.Spec.Template.Spec.TerminationGracePeriodSeconds, c.ImagePullPolicy, c.Ports[0].Protocol, *c.ReadinessProbe}
		},
		want: []any{"default", int32(1), appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromString("25%")), MaxSurge: ptr(intstr.FromString("25%"))},
		}, int32(10), int32(600), corev1.RestartPolicyAlways, int64(30), corev1.PullIfNotPresent, corev1.ProtocolTCP,
			corev1.Probe{
				ProbeHandler:   corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
				TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3,
			}},
	}, {
		name: "image pull policy from the tag",
		yaml: `
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - {name: a, image: busybox}
    - {name: b, image: "busybox:latest"}
    - {name: c, image: "127.0.0.1:5000/busybox"}
    - {name: d, image: "127.0.0.1:5000/busybox:1.36"}
    - {name: e, image: "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
`,
		got: func(d *Desired) any {
			var out []corev1.PullPolicy
			for _, c := range d.Pods[0].Spec.Containers {
				out = append(out, c.ImagePullPolicy)
			}
			return []any{d.Pods[0].Spec.RestartPolicy, out}
		},
		want: []any{corev1.RestartPolicyAlways, []corev1.PullPolicy{corev1.PullAlways, corev1.PullAlways, corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullIfNotPresent}},
	}, {
		name: "job and cronjob",
		yaml: `
apiVersion: batch/v1
kind: CronJob
metadata: {name: c}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: a, image: gantry.test/batch:v1}]
`,
		got: func(d *Desired) any {
			s := d.CronJobs[0].Spec
			j := s.JobTemplate.Spec
			return []any{s.ConcurrencyPolicy, *s.Suspend, *s.SuccessfulJobsHistoryLimit, *s.FailedJobsHistoryLimit,
				*j.Completions, *j.Parallelism, *j.BackoffLimit, *j.CompletionMode, *j.Suspend}
		},
		want: []any{batchv1.AllowConcurrent, false, int32(3), int32(1), int32(1), int32(1), int32(6), batchv1.NonIndexedCompletion, false},
	}, {
		name: "service",
		yaml: `
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  ports: [{name: a, port: 80}, {name: x, port: 81, targetPort: http}]
`,
		got: func(d *Desired) any {
			s := d.Services[0].Spec
			return []any{s.Type, s.SessionAffinity, *s.IPFamilyPolicy, s.Ports[0].Protocol, s.Ports[0].TargetPort, s.Ports[1].TargetPort}
		},
		want: []any{corev1.ServiceTypeClusterIP, corev1.ServiceAffinityNone, corev1.IPFamilyPolicySingleStack, corev1.ProtocolTCP,
			intstr.FromInt32(80), intstr.FromString("http")},
	}, {
		name: "volumes",
		yaml: `
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: team}
spec:
  containers: [{name: a, image: x:1}]
  volumes:
    - {name: c, configMap: {name: c, optional: true}}
    - {name: s, secret: {secretName: s, optional: true}}
`,
		got: func(d *Desired) any {
			v := d.Pods[0].Spec.Volumes
			return []any{d.Pods[0].Namespace, *v[0].ConfigMap.DefaultMode, *v[1].Secret.DefaultMode}
		},
		want: []any{"team", int32(0o644), int32(0o400)},
	}, {
		name: "external secret and store",
		yaml: `
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata: {name: v}
spec: {provider: {vault: {server: "http://127.0.0.1:8200", auth: {appRole: {roleId: r, secretRef: {name: a, key: b}}}}}}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata: {name: es}
spec:
  secretStoreRef: {name: v}
  data: [{secretKey: k, remoteRef: {key: p}}]
`,
		got: func(d *Desired) any {
			es := d.ExternalSecrets[0].Spec
			v := d.SecretStores[0].Spec.Provider.Vault
			return []any{es.Target.Name, es.SecretStoreRef.Kind, es.RefreshInterval.Duration, v.Version, v.Auth.AppRole.Path}
		},
		want: []any{"es", "SecretStore", time.Hour, "v2", "approle"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, diags := loadOne(t, tt.yaml)
			if len(diags) > 0 {
				t.Fatalf("diagnostics:\n%s", diags)
			}
			if diff := cmp.Diff(tt.want, tt.got(d)); diff != "" {
				t.Errorf("defaults (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExample: the repository's example app validates with zero diagnostics and has
// the shape the quickstart and the e2e tests rely on.
func TestExample(t *testing.T) {
	d, diags, err := Load("../manifests-example")
	if err != nil {
		t.Fatal(err)
	}
	if len(diags) > 0 {
		t.Fatalf("manifests-example has diagnostics:\n%s", diags)
	}
	web := d.Deployment("default", "web")
	if web == nil || *web.Spec.Replicas != 3 {
		t.Fatalf("web Deployment missing or not 3 replicas: %+v", web)
	}
	c := web.Spec.Template.Spec.Containers[0]
	if c.ReadinessProbe.HTTPGet.Path != "/ready" || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.Image != "gantry.test/echo:v1" {
		t.Errorf("web container: %+v", c)
	}
	for _, k := range []struct{ kind, name string }{
		{"Service", "web"}, {"Deployment", "worker"}, {"ConfigMap", "app-config"}, {"SecretStore", "vault"},
		{"ExternalSecret", "web-secrets"}, {"Job", "migrate"}, {"CronJob", "report"},
	} {
		if _, ok := d.Lookup(k.kind, "default", k.name); !ok {
			t.Errorf("%s %s missing", k.kind, k.name)
		}
	}
	if got := d.CronJobs[0].Spec.Schedule; got != "* * * * *" {
		t.Errorf("report schedule = %q, want every minute", got)
	}
}

func TestPositions(t *testing.T) {
	_, diags := loadOne(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: a\n      image: x:1\n      ports:\n        - containerPort: 70000\n")
	want := Position{File: "m.yaml", Line: 10, Col: 26}
	if len(diags) != 1 || diags[0].Pos != want {
		t.Fatalf("got %v, want one diagnostic at %+v", diags, want)
	}
	// Documents after the first keep their file lines.
	_, diags = loadOne(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: B\n")
	if len(diags) != 1 || diags[0].Pos.Line != 10 || diags[0].Pos.Col != 9 {
		t.Fatalf("got %v, want one diagnostic at line 10 col 9", diags)
	}
}

func TestLoadFilesSelection(t *testing.T) {
	cm := func(name string) []byte {
		return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\n")
	}
	d, diags := LoadFiles(map[string][]byte{
		"a.yaml":            cm("a"),
		"sub/b.yml":         cm("b"),
		"sub/deeper/c.YAML": cm("c"),
		".hidden.yaml":      cm("hidden"),
		".git/x.yaml":       cm("git"),
		"sub/.d/y.yaml":     cm("dotdir"),
		"README.md":         []byte("# not yaml"),
		"notes.txt":         []byte(": not yaml"),
		"empty.yaml":        []byte("# only a comment\n---\n---\n"),
	})
	if len(diags) > 0 {
		t.Fatalf("diagnostics:\n%s", diags)
	}
	var names []string
	for _, o := range d.Objects {
		names = append(names, o.Name+"@"+o.Source.File)
	}
	if diff := cmp.Diff([]string{"a@a.yaml", "b@sub/b.yml", "c@sub/deeper/c.YAML"}, names); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "apps", ".skipped"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "apps", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "apps", ".skipped", "bad.yaml"), []byte("{{{"), 0o644))
	d, diags, err := Load(dir)
	must(err)
	if len(diags) > 0 || d.Len() != 1 || d.Objects[0].Source != (Position{File: "apps/cm.yaml", Line: 1, Col: 1}) {
		t.Fatalf("got %d objects %+v, diags %v", d.Len(), d.Objects, diags)
	}
	_, _, err = Load(filepath.Join(dir, "missing"))
	if !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Load of a missing directory: %v, want api.ErrNotFound", err)
	}
}

func TestPlainSecrets(t *testing.T) {
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n"
	d, diags := loadOne(t, secret)
	if !diags.HasErrors() || !strings.Contains(diags.String(), "secret values must not live in git") || len(d.Secrets) != 0 {
		t.Fatalf("plain secret accepted by default: %v", diags)
	}
	if strings.Contains(diags.String(), "hunter2") {
		t.Errorf("a diagnostic repeats the secret value: %s", diags)
	}
	d, diags = loadOne(t, secret, WithAllowPlainSecrets(true))
	if len(diags) > 0 || len(d.Secrets) != 1 || d.Secrets[0].StringData["password"] != "hunter2" {
		t.Fatalf("WithAllowPlainSecrets(true): diags %v, secrets %v", diags, d.Secrets)
	}
	// A Secret without values (e.g. only labels) is fine either way.
	if _, diags = loadOne(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"); len(diags) > 0 {
		t.Errorf("empty Secret: %v", diags)
	}
}

func TestNilDesired(t *testing.T) {
	var d *Desired
	if d.Len() != 0 || d.Deployment("default", "x") != nil {
		t.Error("nil Desired is not empty")
	}
	if _, ok := d.Lookup("Pod", "default", "x"); ok {
		t.Error("nil Desired found an object")
	}
}

func TestAliasBomb(t *testing.T) {
	// 400 containers that all alias one container with 1,000 env entries: a small
	// document that expands to 400,000 nodes. It must be refused, not decoded.
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec:\n  initContainers:\n    - &c\n      name: a\n      image: x:1\n      env:\n")
	for i := 0; i < 1000; i++ {
		b.WriteString("        - {name: E, value: v}\n")
	}
	b.WriteString("  containers: [" + strings.Repeat("*c, ", 399) + "*c]\n")
	_, diags := loadOne(t, b.String())
	if !strings.Contains(diags.String(), "document too large") {
		t.Fatalf("alias expansion not bounded: %d diagnostics, first: %v", len(diags), diags[:min(3, len(diags))])
	}
}

// TestSupportTablePaths: every row of the table names a field that exists in the Go
// type of its kind, so a typo in the table cannot silently support nothing.
func TestSupportTablePaths(t *testing.T) {
	for _, sec := range SupportTable {
		k := kinds[sec.Kind]
		if k == nil {
			t.Errorf("SupportTable kind %s is not registered", sec.Kind)
			continue
		}
		root := reflect.TypeOf(k.newObj())
		paths := []string{}
		for _, f := range sec.Fields {
			paths = append(paths, f.Path)
		}
		if sec.PodSpecAt != "" {
			for _, f := range PodSpecFields {
				paths = append(paths, sec.PodSpecAt+"."+f.Path)
			}
		}
		for _, p := range paths {
			typ := root
			for _, part := range strings.Split(p, ".") {
				for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
					typ = typ.Elem()
				}
				ft, ok := structFields(typ)[strings.TrimSuffix(part, "[]")]
				if !ok {
					t.Errorf("%s: %s: no field %q in %s", sec.Kind, p, part, typ)
					break
				}
				typ = ft
			}
		}
	}
}

func TestCredentialNames(t *testing.T) {
	ref := SecretKeySelector{Name: "vault-token", Key: "token"}
	if got := CredentialEnv("default", ref); got != "GANTRY_CREDENTIAL_DEFAULT_VAULT_TOKEN_TOKEN" {
		t.Errorf("CredentialEnv = %q", got)
	}
	if got := CredentialFile("/var/lib/gantry/credentials", "", ref); got != "/var/lib/gantry/credentials/default/vault-token/token" {
		t.Errorf("CredentialFile = %q", got)
	}
	ns := "ops"
	ref.Namespace = &ns
	if got := CredentialNamespace("team", ref); got != "ops" {
		t.Errorf("CredentialNamespace = %q", got)
	}
}

// TestYAMLFeatures: anchors, merge keys, YAML 1.1 booleans and octal decode the way
// kubectl decodes them.
func TestYAMLFeatures(t *testing.T) {
	d, diags, err := Load("testdata/valid/yaml-features.yaml")
	if err != nil || len(diags) > 0 {
		t.Fatalf("err %v, diags %v", err, diags)
	}
	p := d.Pods[0]
	two := p.Spec.Containers[1]
	got := []any{two.Name, two.Image, *two.SecurityContext.ReadOnlyRootFilesystem, *p.Spec.Volumes[0].ConfigMap.DefaultMode, p.Labels["app"]}
	want := []any{"two", "gantry.test/echo:v1", true, int32(0o644), "yaml-features"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

// TestOneErrorPerMistake: a value rejected while decoding is not reported again by
// validation, and the rest of the document is still checked.
func TestOneErrorPerMistake(t *testing.T) {
	_, diags := loadOne(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector:
    matchLabels: [oops]
  template:
    metadata: {labels: {app: d}}
    spec:
      containers: [{name: Bad_Name, image: x:1}]
`)
	want := []string{
		"m.yaml:6:18: error: spec.selector.matchLabels: expected an object, got a list",
		"m.yaml:10:27: error: spec.template.spec.containers[0].name: Invalid value: \"Bad_Name\"",
	}
	if len(diags) != len(want) {
		t.Fatalf("got %d diagnostics, want %d:\n%s", len(diags), len(want), diags)
	}
	for i, w := range want {
		if !strings.HasPrefix(diags[i].String(), w) {
			t.Errorf("diagnostic %d = %q, want prefix %q", i, diags[i], w)
		}
	}
}

// TestDNSPolicy: ClusterFirst and Default load; a policy gantry's agents do not
// implement is an error at the field.
func TestDNSPolicy(t *testing.T) {
	pod := func(policy string) string {
		return `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  dnsPolicy: ` + policy + `
  containers:
    - name: c
      image: gantry.test/echo:v1
`
	}
	for _, ok := range []string{"ClusterFirst", "Default"} {
		if _, diags := loadOne(t, pod(ok)); diags.HasErrors() {
			t.Errorf("dnsPolicy %s: %v", ok, diags)
		}
	}
	_, diags := loadOne(t, pod("None"))
	if !diags.HasErrors() || !strings.Contains(diags.String(), "dnsPolicy") {
		t.Fatalf("dnsPolicy None: %v, want an error at spec.dnsPolicy", diags)
	}
}
