package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/planner"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

// webDeployment is the Deployment of the online plan test: requests of 500m and
// 1Gi per pod, on nodes of 2 CPUs and 4Gi.
func webDeployment(image string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: %d
  selector:
    matchLabels: {app: web}
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: %s
          envFrom:
            - configMapRef: {name: web-config}
          resources:
            requests: {cpu: 500m, memory: 1Gi}
`, replicas, image)
}

const webConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: hello
`

const bigPod = `apiVersion: v1
kind: Pod
metadata:
  name: big
spec:
  containers:
    - name: big
      image: gantry.test/echo:v1
      resources:
        requests: {cpu: "1", memory: 64Gi}
`

func plainSecret(password string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: " + password + "\n"
}

// onlineCluster is a real control plane (embedded etcd, HTTPS on 127.0.0.1, the
// reconcile loop on a git daemon repository) with two nodes of 2 CPUs and 4Gi. No
// agent runs: the test plays the agents and marks placed pods Running and Ready.
type onlineCluster struct {
	srv    *controlplane.Server
	st     *store.Store
	repo   *testenv.Repo
	config string
}

func startOnlineCluster(t *testing.T) *onlineCluster {
	t.Helper()
	testenv.Integration(t, "git")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "app")
	repo.Commit(t, map[string]string{"deploy/web.yaml": webDeployment("gantry.test/echo:v1", 2), "deploy/config.yaml": webConfig,
		"deploy/secret.yaml": plainSecret("base-value-4b1d")}, "web v1")
	repo.Push(t)

	dir := t.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	etcd, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	st := store.New(etcd)

	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(gitsync.Source{URL: repo.URL, Path: "deploy", PollInterval: time.Hour},
		gitsync.WithDataDir(filepath.Join(dir, "git")), gitsync.WithLogger(quiet),
		gitsync.WithOnError(func(err error, retry time.Duration) { rec.SourceError(err, retry) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syncer.Close() })
	// The server accepts plain Secrets, so the test can check their values never
	// reach a plan.
	rec = controlplane.NewReconciler(st, syncer, controlplane.WithReconcileLogger(quiet), controlplane.WithResync(time.Second),
		controlplane.WithManifestOptions(manifest.WithAllowPlainSecrets(true)))
	c := &onlineCluster{st: st, repo: repo, config: filepath.Join(dir, "config")}
	c.srv = controlplane.New(st, controlplane.WithDataDir(filepath.Join(dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(c.config), controlplane.WithLogger(quiet),
		controlplane.WithNodeGracePeriod(time.Hour), controlplane.WithReconciler(rec))
	if err := c.srv.Start(ctx); err != nil {
		c.srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.srv.Close() })

	for _, name := range []string{"n1", "n2"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name},
			Annotations: map[string]string{api.AnnotationHeartbeat: time.Now().UTC().Format(time.RFC3339Nano)}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("4Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Hour))}},
			}}
		if _, err := st.Nodes().Create(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// converge plays the agents until the web app is Healthy with want pods.
func (c *onlineCluster) converge(t *testing.T, want int) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, fmt.Sprintf("web healthy with %d pods", want), 60*time.Second, func() error {
		pods, err := c.st.Pods().List(ctx, "", store.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				continue
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Now().Add(-time.Minute))}}
			if _, err := c.st.Pods().Update(ctx, p); err != nil && !errors.Is(err, api.ErrConflict) && !errors.Is(err, api.ErrNotFound) {
				return err
			}
		}
		a, err := c.st.Apps().Get(ctx, "default", store.AppObjectName(planner.KindDeployment, "web"))
		if err != nil {
			return err
		}
		if a.Status.Health != planner.Healthy || len(pods.Items) != want {
			return fmt.Errorf("health %s, %d pods", a.Status.Health, len(pods.Items))
		}
		return nil
	})
}

func (c *onlineCluster) podNames(t *testing.T) string {
	t.Helper()
	pods, err := c.st.Pods().List(context.Background(), "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range pods.Items {
		names = append(names, p.Name+"@"+p.Spec.NodeName)
	}
	return strings.Join(names, ",")
}

// TestPlanOnline runs `gantry plan --server` against a real control plane that
// runs web (2 pods) from git: an unchanged head (exit 0), a change that fits
// (exit 2, with where the new pods go and how many running pods restart), a pod
// too large for any node (exit 1 with the reason), an invalid head (exit 1 with
// file:line), a read-only token, and the plan writing nothing to the cluster.
func TestPlanOnline(t *testing.T) {
	c := startOnlineCluster(t)
	c.converge(t, 2)
	repo := c.repo
	repo.Git(t, "checkout", "-q", "-b", "v2")
	repo.Commit(t, map[string]string{"deploy/web.yaml": webDeployment("gantry.test/echo:v2", 3)}, "web v2, 3 replicas")
	repo.Git(t, "checkout", "-q", "-b", "toolarge", "main")
	repo.Commit(t, map[string]string{"deploy/big.yaml": bigPod}, "a pod too large for any node")
	repo.Git(t, "checkout", "-q", "-b", "config", "main")
	repo.Commit(t, map[string]string{"deploy/config.yaml": strings.Replace(webConfig, "hello", "bonjour", 1)}, "greeting")
	repo.Git(t, "checkout", "-q", "-b", "secret", "main")
	repo.Commit(t, map[string]string{"deploy/secret.yaml": plainSecret("head-value-9c2e")}, "new password")
	repo.Git(t, "checkout", "-q", "-b", "invalid", "main")
	repo.Commit(t, map[string]string{"deploy/broken.yaml": "kind: Deployment\nmetadata: [\n"}, "broken")
	repo.Git(t, "checkout", "-q", "main")
	before := c.podNames(t)
	url := c.srv.URL()
	plan := func(args ...string) (string, int) {
		t.Helper()
		out, code, err := runPlanArgs(t, append([]string{"--config", c.config}, args...)...)
		if err != nil {
			t.Fatalf("plan %v: %v", args, err)
		}
		return out, code
	}

	t.Run("no change", func(t *testing.T) {
		out, code := plan("--server", url, "--repo", repo.Dir, "--head", "main", "--path", "deploy")
		if code != 0 || !strings.Contains(out, "\nno changes\n") || !strings.Contains(out, "running pods: 0 restart (replaced by new pods), 0 stop, 2 keep running") {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
	})
	t.Run("a change that fits", func(t *testing.T) {
		out, code := plan("--server", url, "--repo", repo.Dir, "--head", "v2", "--path", "deploy")
		if code != 2 {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
		for _, want := range []string{
			"deployment default/web: changed (deploy/web.yaml:1)",
			"spec.replicas: 2 → 3",
			"spec.template.spec.containers[web].image: gantry.test/echo:v1 → gantry.test/echo:v2",
			"placement on 2 nodes (live: the cluster's nodes and its 2 running pods",
			"deployment/default/web: 3 pods → n1",
			"; 2 running pods restart",
			"running pods: 2 restart (replaced by new pods), 0 stop, 0 keep running",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in:\n%s", want, out)
			}
		}
		js, code := plan("--server", url, "--repo", repo.Dir, "--head", "v2", "--path", "deploy", "--format", "json")
		var r struct {
			Placement struct {
				Live     bool `json:"live"`
				Running  int  `json:"running"`
				Restarts int  `json:"restarts"`
				Apps     []struct {
					App  string `json:"app"`
					Pods int    `json:"pods"`
				} `json:"apps"`
			} `json:"placement"`
			Summary struct {
				ExitCode int `json:"exitCode"`
			} `json:"summary"`
		}
		if err := json.Unmarshal([]byte(js), &r); err != nil || code != 2 {
			t.Fatalf("json: exit %d, %v:\n%s", code, err, js)
		}
		if p := r.Placement; !p.Live || p.Running != 2 || p.Restarts != 2 || len(p.Apps) != 1 || p.Apps[0].Pods != 3 || r.Summary.ExitCode != 2 {
			t.Fatalf("json placement: %+v", r)
		}
	})
	t.Run("a directory as head", func(t *testing.T) {
		dir := t.TempDir()
		for name, content := range map[string]string{"web.yaml": webDeployment("gantry.test/echo:v2", 2), "config.yaml": webConfig, ".hidden.yaml": bigPod} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, code := plan("--server", url, dir)
		if code != 2 || !strings.Contains(out, "deployment default/web: changed ("+filepath.Join(dir, "web.yaml")+":1)") ||
			!strings.Contains(out, "deployment/default/web: 2 pods → ") || strings.Contains(out, "big") {
			t.Fatalf("exit %d, want 2:\n%s", code, out)
		}
	})
	t.Run("a ConfigMap change rolls its pods", func(t *testing.T) {
		out, code := plan("--server", url, "--repo", repo.Dir, "--head", "config", "--path", "deploy")
		if code != 2 || !strings.Contains(out, "because configmap web-config changed") || !strings.Contains(out, "2 running pods restart") {
			t.Fatalf("exit %d, want 2 and a roll of web:\n%s", code, out)
		}
	})
	t.Run("too large for any node", func(t *testing.T) {
		out, code := plan("--server", url, "--repo", repo.Dir, "--head", "toolarge", "--path", "deploy", "--format", "markdown")
		if code != 1 || !strings.Contains(out, "`pod/default/big`: 1 pod: 0/2 nodes fit: 2 insufficient memory (needs 64Gi") ||
			!strings.Contains(out, "1 created, 0 changed, 0 deleted; does not fit") {
			t.Fatalf("exit %d, want 1 with the reason:\n%s", code, out)
		}
	})
	t.Run("secret values never appear", func(t *testing.T) {
		for _, format := range []string{"text", "markdown", "json"} {
			out, code := plan("--server", url, "--repo", repo.Dir, "--head", "secret", "--path", "deploy", "--format", format)
			if code != 2 || !strings.Contains(out, "stringData.password") || !strings.Contains(out, "(secret sha256:") {
				t.Fatalf("%s: exit %d, want 2 and the key with a fingerprint:\n%s", format, code, out)
			}
			for _, v := range []string{"base-value-4b1d", "head-value-9c2e"} {
				if strings.Contains(out, v) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(v))) {
					t.Errorf("%s output shows the secret value %s:\n%s", format, v, out)
				}
			}
		}
	})
	t.Run("invalid head", func(t *testing.T) {
		out, code := plan("--server", url, "--repo", repo.Dir, "--head", "invalid", "--path", "deploy")
		if code != 1 || !strings.Contains(out, "deploy/broken.yaml:2:") || !strings.Contains(out, "head is invalid") {
			t.Fatalf("exit %d, want 1 with file:line:\n%s", code, out)
		}
	})
	t.Run("online from the client config, read-only token", func(t *testing.T) {
		ro, err := c.srv.CreateToken(context.Background(), api.RoleReadOnly, time.Hour, "ci")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := apiclient.LoadConfig(c.config)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Token = ro.Token
		path := filepath.Join(t.TempDir(), "ro.config")
		if err := apiclient.WriteConfig(path, cfg); err != nil {
			t.Fatal(err)
		}
		out, code, err := runPlanArgs(t, "--online", "--config", path, "--repo", repo.Dir, "--head", "v2", "--path", "deploy")
		if err != nil || code != 2 {
			t.Fatalf("exit %d, err %v, want 2:\n%s", code, err, out)
		}
		cfg.Token = ""
		if err := apiclient.WriteConfig(path, cfg); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runPlanArgs(t, "--online", "--config", path, "--repo", repo.Dir, "--head", "v2", "--path", "deploy"); !errors.Is(err, api.ErrUnauthenticated) {
			t.Fatalf("a plan without a token: %v, want unauthenticated", err)
		}
	})
	if after := c.podNames(t); after != before {
		t.Fatalf("planning changed the cluster's pods: %s → %s", before, after)
	}
	if *update {
		writeOnlineExample(t, c, url)
	}
}

// writeOnlineExample writes docs/examples/plan-online-markdown.md from real runs
// (go test ./cmd/gantry -run TestPlanOnline -update). Commit hashes differ per
// run, so the file is not compared with the output afterwards.
func writeOnlineExample(t *testing.T, c *onlineCluster, url string) {
	run := func(head string) string {
		out, _, err := runPlanArgs(t, "--server", url, "--config", c.config, "--repo", c.repo.Dir, "--head", head, "--path", "deploy", "--format", "markdown")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	doc := "# Example: `gantry plan --server URL --format markdown`\n\n" +
		"Real output of `go test ./cmd/gantry -run TestPlanOnline -update` (cmd/gantry/plan_online_test.go): a control plane\n" +
		"on embedded etcd runs `web` (2 pods of 500m CPU / 1Gi, maxSurge 1, maxUnavailable 0) from `deploy/` of a git\n" +
		"repository, on two nodes of 2 CPUs and 4 GiB (the server accepts plain Secrets, for the Secret example). Each\n" +
		"branch below changes `main`; the plan is computed by the server against what it runs. See [docs/PLAN.md](../PLAN.md).\n\n" +
		"## Image change and a third replica (exit 2)\n\n" +
		"    gantry plan --server https://127.0.0.1:6443 --repo . --head v2 --path deploy --format markdown\n\n---\n\n" + run("v2") +
		"\n---\n\n## A ConfigMap change rolls the pods that use it (exit 2)\n\n" +
		"    gantry plan --server https://127.0.0.1:6443 --repo . --head config --path deploy --format markdown\n\n---\n\n" + run("config") +
		"\n---\n\n## A Secret's value changes: its key with fingerprints, never the value (exit 2)\n\n" +
		"    gantry plan --server https://127.0.0.1:6443 --repo . --head secret --path deploy --format markdown\n\n---\n\n" + run("secret") +
		"\n---\n\n## A pod too large for any node (exit 1)\n\n" +
		"    gantry plan --server https://127.0.0.1:6443 --repo . --head toolarge --path deploy --format markdown\n\n---\n\n" + run("toolarge")
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "examples", "plan-online-markdown.md"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
}
