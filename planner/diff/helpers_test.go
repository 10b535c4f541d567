package diff

import (
	"fmt"
	"strings"
	"testing"

	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner/batch"
)

// sprintfHash fills the %s of want with batch.SpecHash of head's first Job.
func sprintfHash(want string, head *manifest.Desired) string {
	return fmt.Sprintf(want, batch.SpecHash(head.Jobs[0]))
}

// load decodes YAML documents (one file each, named 0.yaml, 1.yaml, …) the way
// gantry loads a revision, failing the test on any error.
func load(t *testing.T, docs ...string) *manifest.Desired {
	t.Helper()
	files := map[string][]byte{}
	for i, d := range docs {
		files[fmt.Sprintf("%d.yaml", i)] = []byte(d)
	}
	d, diags := manifest.LoadFiles(files, manifest.WithAllowPlainSecrets(true))
	if diags.HasErrors() {
		t.Fatalf("fixture does not load:\n%s", diags)
	}
	return d
}

// deployment is a Deployment fixture; opts are "key=value" strings: replicas,
// image, strategy (Recreate), surge, unavailable, port, configmap (an envFrom),
// secret (a secretKeyRef to key token), label (a metadata label), prune (the
// gantry.io/prune annotation), paused.
func deployment(name string, opts ...string) string {
	o := map[string]string{"replicas": "3", "image": "gantry.test/echo:v1", "port": "8080"}
	for _, kv := range opts {
		k, v, _ := strings.Cut(kv, "=")
		o[k] = v
	}
	strategy := "  strategy:\n    type: RollingUpdate\n"
	if o["strategy"] == "Recreate" {
		strategy = "  strategy:\n    type: Recreate\n"
	} else if o["surge"] != "" || o["unavailable"] != "" {
		strategy += "    rollingUpdate:\n"
		if o["surge"] != "" {
			strategy += "      maxSurge: " + o["surge"] + "\n"
		}
		if o["unavailable"] != "" {
			strategy += "      maxUnavailable: " + o["unavailable"] + "\n"
		}
	}
	var extra, labels, paused string
	if cm := o["configmap"]; cm != "" {
		extra = "          envFrom:\n            - configMapRef:\n                name: " + cm + "\n"
	}
	if s := o["secret"]; s != "" {
		extra += "          env:\n            - name: TOKEN\n              valueFrom:\n                secretKeyRef:\n                  name: " + s + "\n                  key: token\n"
	}
	if l := o["label"]; l != "" {
		labels = "  labels:\n    team: " + l + "\n"
	}
	if p := o["prune"]; p != "" {
		labels += "  annotations:\n    gantry.io/prune: \"" + p + "\"\n"
	}
	if o["paused"] == "true" {
		paused = "  paused: true\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
%sspec:
  replicas: %s
%s%s  selector:
    matchLabels:
      app: %s
  template:
    metadata:
      labels:
        app: %s
    spec:
      containers:
        - name: %s
          image: %s
          ports:
            - name: http
              containerPort: %s
%s`, name, labels, o["replicas"], paused, strategy, name, name, name, o["image"], o["port"], extra)
}

func configMap(name string, kv ...string) string {
	s := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n"
	for _, x := range kv {
		k, v, _ := strings.Cut(x, "=")
		s += fmt.Sprintf("  %s: %q\n", k, v)
	}
	return s
}
