package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/e2e/testenv"
)

// upProcess is a `gantry up` binary running for one test on its own data dir, its own
// containerd (none answers at the socket it is given), bridge and pod CIDRs.
type upProcess struct {
	bin, dir, data, config string
	cmd                    *exec.Cmd
	log                    *logFile
}

// startUpProcess builds gantry into a temporary directory and runs `gantry up` with
// the common flags plus args. Cleanup deletes the pods, stops gantry, removes every
// container it left (with the containerd it started), the bridge, mounts and the
// directory.
func startUpProcess(t *testing.T, prefix, node, cidr4, cidr6 string, args ...string) *upProcess {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		t.Fatal(err)
	}
	u := &upProcess{bin: gantryBinary(t), dir: dir, data: filepath.Join(dir, "d"), config: filepath.Join(dir, "config")}
	bridge := strings.TrimSuffix(prefix, "-") + strconv.Itoa(os.Getpid()%10000)
	cleanupDir := func() {
		_ = exec.Command("ip", "link", "del", bridge).Run()
		_ = exec.Command("nft", "delete", "table", "inet", bridge).Run() // the service table gantry leaves by design
		unmountUnder(dir)
		_ = os.RemoveAll(dir)
	}
	all := append([]string{"up", "--data-dir", u.data, "--listen", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--agent-listen", "127.0.0.1:0", "--containerd-address", filepath.Join(dir, "none.sock"),
		"--node-name", node, "--bridge", bridge, "--service-table", bridge, "--client-config", u.config,
		"--cluster-cidr-v4", cidr4, "--cluster-cidr-v6", cidr6}, args...)
	u.cmd = exec.Command(u.bin, all...)
	if u.log, err = startLogged(u.cmd, filepath.Join(dir, "up.log")); err != nil {
		cleanupDir()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deletePods(t, u.config)
		time.Sleep(3 * time.Second)
		if u.cmd.ProcessState == nil {
			_ = u.cmd.Process.Signal(syscall.SIGTERM)
			_ = u.cmd.Wait()
		}
		cfg, sock := filepath.Join(u.data, "containerd", "config.toml"), filepath.Join(u.data, "containerd", "c.sock")
		removeAllContainersOf(cfg, sock, "gantry")
		stopContainerdOf(t, cfg)
		if t.Failed() {
			t.Logf("gantry up log:\n%s", u.log.String())
		}
		cleanupDir()
	})
	return u
}

// gantry runs a CLI verb against the process's API with its admin config.
func (u *upProcess) gantry(args ...string) (string, error) {
	c := exec.Command(u.bin, args...)
	c.Env = append(os.Environ(), "GANTRY_CONFIG="+u.config)
	out, err := c.CombinedOutput()
	return string(out), err
}

// pods lists every pod (nil while the API does not answer).
func (u *upProcess) pods() []corev1.Pod {
	var list corev1.PodList
	if out, err := u.gantry("get", "pods", "-o", "json"); err == nil {
		_ = json.Unmarshal([]byte(out), &list)
	}
	return list.Items
}

func secretsManifests(vaultAddr string) string {
	return fmt.Sprintf(`apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: vault
spec:
  provider:
    vault:
      server: %s
      path: secret
      version: v2
      auth:
        tokenSecretRef: {name: vault-token, key: token}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: web-secrets
spec:
  refreshInterval: 2s
  secretStoreRef: {name: vault, kind: SecretStore}
  data:
    - secretKey: api-token
      remoteRef: {key: web, property: api-token}
    - secretKey: db-password
      remoteRef: {key: web, property: db-password}
`, vaultAddr)
}

// secretWeb uses web-secrets as env (API_TOKEN) and as files (/etc/secrets/*).
func secretWeb(image string, replicas int) string {
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
          env:
            - name: API_TOKEN
              valueFrom:
                secretKeyRef: {name: web-secrets, key: api-token}
          readinessProbe:
            httpGet: {path: /ready, port: 8080}
            periodSeconds: 1
          resources:
            requests: {cpu: 50m, memory: 16Mi}
          volumeMounts:
            - {name: secrets, mountPath: /etc/secrets, readOnly: true}
      volumes:
        - name: secrets
          secret: {secretName: web-secrets}
`, replicas, image)
}

func randomValue(t *testing.T, prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// podGet asks a pod's echo server for path ("" on failure).
func podGet(ip, path string) string {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(ip, "8080") + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

func podIsReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// servesSecrets checks that a pod has apiToken in its environment and dbPassword in
// its secret file.
func servesSecrets(p corev1.Pod, apiToken, dbPassword string) error {
	if p.Status.PodIP == "" {
		return fmt.Errorf("pod %s has no IP", p.Name)
	}
	if env := podGet(p.Status.PodIP, "/env"); !strings.Contains(env, "API_TOKEN="+apiToken+"\n") {
		return fmt.Errorf("pod %s: env lacks the expected API_TOKEN", p.Name)
	}
	if got := podGet(p.Status.PodIP, "/file?path=/etc/secrets/db-password"); got != dbPassword {
		return fmt.Errorf("pod %s: /etc/secrets/db-password is not the expected value", p.Name)
	}
	if got := podGet(p.Status.PodIP, "/file?path=/etc/secrets/api-token"); got != apiToken {
		return fmt.Errorf("pod %s: /etc/secrets/api-token is not the expected value", p.Name)
	}
	return nil
}

// webPods are the pods of Deployment web: ready ones by UID, and all of them.
func webPods(pods []corev1.Pod) (ready map[string]corev1.Pod, all []corev1.Pod) {
	ready = map[string]corev1.Pod{}
	for _, p := range pods {
		if p.Labels["app"] != "web" || p.DeletionTimestamp != nil {
			continue
		}
		all = append(all, p)
		if podIsReady(p) {
			ready[string(p.UID)] = p
		}
	}
	return ready, all
}

func uids(m map[string]corev1.Pod) string {
	var out []string
	for u := range m {
		out = append(out, u)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestSecretsEndToEnd: gantry up on a git repository whose app takes a Vault secret
// as env and as a file → a value changed in Vault rolls the pods, which serve the new
// value → Vault stopped: the running pods are untouched and a newly scaled pod waits
// with SecretUnavailable → Vault back: it starts. At the end no secret value (or its
// base64) is in the etcd data dir, gantry's log, get/describe output or plan output.
func TestSecretsEndToEnd(t *testing.T) {
	testenv.Integration(t, "containerd", "runc", "containerd-shim-runc-v2", "go", "git")
	images := testenv.Images(t)
	vault := testenv.StartVault(t)
	apiToken1, dbPassword1 := randomValue(t, "e2e-api-token-1-"), randomValue(t, "e2e-db-password-1-")
	apiToken2, dbPassword2 := randomValue(t, "e2e-api-token-2-"), randomValue(t, "e2e-db-password-2-")
	values := []string{apiToken1, dbPassword1, apiToken2, dbPassword2, vault.RootToken()}
	vault.WriteKV2(t, "secret", "web", map[string]any{"api-token": apiToken1, "db-password": dbPassword1})

	git := testenv.StartGitDaemon(t)
	repo := git.NewRepo(t, "secrets")
	repo.Commit(t, map[string]string{
		"deploy/secrets.yaml": secretsManifests(vault.Addr()),
		"deploy/web.yaml":     secretWeb(images.EchoV1.Ref, 2),
	}, "web with secrets from vault")
	repo.Push(t)

	// The store's tokenSecretRef {vault-token, token} in namespace default is this file.
	creds, err := os.MkdirTemp("", "gse-creds-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(creds) })
	tokenFile := filepath.Join(creds, "default", "vault-token", "token")
	if err := os.MkdirAll(filepath.Dir(tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(vault.RootToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	up := startUpProcess(t, "gse-", "secrets-node", "10.253.0.0/16", "fd00:10:253::/56",
		"--repo", repo.URL, "--path", "deploy", "--poll-interval", "1s", "--vault-credentials-dir", creds,
		"--import", images.EchoV1.Archive)

	// 1. Both pods get the value as env and as a file.
	var first map[string]corev1.Pod
	waitFor(t, "web: 2 ready pods serving the first values", 150*time.Second, func() error {
		ready, all := webPods(up.pods())
		if len(ready) != 2 || len(all) != 2 {
			return fmt.Errorf("%d ready of %d web pods", len(ready), len(all))
		}
		for _, p := range ready {
			if err := servesSecrets(p, apiToken1, dbPassword1); err != nil {
				return err
			}
		}
		first = ready
		return nil
	})

	// 2. A new value in Vault rolls the pods (refreshInterval 2s); the new pods serve it.
	vault.WriteKV2(t, "secret", "web", map[string]any{"api-token": apiToken2, "db-password": dbPassword2})
	var second map[string]corev1.Pod
	waitFor(t, "web rolled to the rotated values", 150*time.Second, func() error {
		ready, all := webPods(up.pods())
		if len(ready) != 2 || len(all) != 2 {
			return fmt.Errorf("%d ready of %d web pods", len(ready), len(all))
		}
		for uid, p := range ready {
			if _, old := first[uid]; old {
				return fmt.Errorf("pod %s of the first values still runs", p.Name)
			}
			if err := servesSecrets(p, apiToken2, dbPassword2); err != nil {
				return err
			}
		}
		second = ready
		return nil
	})

	// 3. Vault stops: the refresh fails, the running pods stay as they are.
	vault.Stop(t)
	waitFor(t, "a failed refresh in gantry's log", 60*time.Second, func() error {
		if !strings.Contains(up.log.String(), "external secret refresh failed") {
			return fmt.Errorf("no failed refresh logged yet")
		}
		return nil
	})
	// A scaled-up pod cannot get its secret: it waits, Pending with SecretUnavailable.
	repo.Commit(t, map[string]string{"deploy/web.yaml": secretWeb(images.EchoV1.Ref, 3)}, "web: 3 replicas")
	repo.Push(t)
	var waiting corev1.Pod
	waitFor(t, "the third pod waits with SecretUnavailable", 90*time.Second, func() error {
		_, all := webPods(up.pods())
		for _, p := range all {
			if _, running := second[string(p.UID)]; running {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == agentclient.PodConditionSecretUnavailable && c.Status == corev1.ConditionTrue {
					if p.Status.Phase != corev1.PodPending {
						return fmt.Errorf("pod %s is %s with SecretUnavailable, want Pending", p.Name, p.Status.Phase)
					}
					waiting = p
					return nil
				}
			}
		}
		return fmt.Errorf("%d web pods, none waiting with SecretUnavailable", len(all))
	})
	cond := ""
	for _, c := range waiting.Status.Conditions {
		if c.Type == agentclient.PodConditionSecretUnavailable {
			cond = c.Message
		}
	}
	t.Logf("pod %s waits: %s", waiting.Name, cond)
	// The app shows Degraded (not Progressing) while one of its pods waits on Vault.
	waitFor(t, "web Degraded while a pod waits on Vault", 30*time.Second, func() error {
		out, err := up.gantry("get", "apps")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "web") && strings.Contains(line, "Degraded") {
				t.Logf("while Vault is down:\n%s", out)
				return nil
			}
		}
		return fmt.Errorf("web is not Degraded:\n%s", out)
	})
	if !strings.Contains(cond, "web-secrets") || !strings.Contains(cond, "secret/data/web") {
		t.Errorf("SecretUnavailable message %q does not name the ExternalSecret and the Vault path", cond)
	}
	ready, _ := webPods(up.pods())
	if uids(ready) != uids(second) {
		t.Fatalf("Vault down changed the running pods: %s → %s", uids(second), uids(ready))
	}
	for _, p := range ready {
		if err := servesSecrets(p, apiToken2, dbPassword2); err != nil {
			t.Fatalf("running pod while Vault is down: %v", err)
		}
	}

	// 4. Vault is back (a new dev server with the same values): the third pod starts,
	// the other two are still the same pods.
	vault.Restart(t)
	vault.WriteKV2(t, "secret", "web", map[string]any{"api-token": apiToken2, "db-password": dbPassword2})
	waitFor(t, "3 ready web pods after Vault is back", 150*time.Second, func() error {
		ready, all := webPods(up.pods())
		if len(ready) != 3 || len(all) != 3 {
			return fmt.Errorf("%d ready of %d web pods", len(ready), len(all))
		}
		for uid := range second {
			if _, ok := ready[uid]; !ok {
				return fmt.Errorf("pod %s was replaced", second[uid].Name)
			}
		}
		for _, p := range ready {
			if err := servesSecrets(p, apiToken2, dbPassword2); err != nil {
				return err
			}
		}
		return nil
	})

	// 5. No value anywhere: etcd's files, gantry's log, get/describe output, plan output.
	var outputs []string
	for _, args := range [][]string{
		{"get", "pods", "-o", "yaml"}, {"get", "apps", "-o", "yaml"}, {"get", "events", "-o", "yaml"},
		{"get", "nodes", "-o", "yaml"}, {"get", "pods", "-o", "wide"}, {"get", "apps"},
		{"describe", "app", "web"}, {"sync"},
	} {
		out, err := up.gantry(args...)
		if err != nil {
			t.Errorf("gantry %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		outputs = append(outputs, "gantry "+strings.Join(args, " ")+"\n"+out)
	}
	ready, _ = webPods(up.pods())
	for _, p := range ready {
		out, err := up.gantry("describe", "pod", p.Name)
		if err != nil {
			t.Errorf("describe pod %s: %v\n%s", p.Name, err, out)
		}
		outputs = append(outputs, out)
	}
	plan := exec.Command(up.bin, "plan", "--repo", repo.Dir, "--path", "deploy", "--base", "HEAD~1", "--head", "HEAD")
	planOut, _ := plan.CombinedOutput() // exit 2: changes
	if !strings.Contains(string(planOut), "web") {
		t.Errorf("plan output does not mention web:\n%s", planOut)
	}
	outputs = append(outputs, string(planOut), up.log.String())
	forms := leakForms(values)
	hits := 0
	for _, text := range outputs {
		for _, f := range forms {
			if strings.Contains(text, f) {
				hits++
				t.Errorf("a secret value (form %.6s…) appears in output starting %.60q", f, text)
			}
		}
	}
	files, found := 0, false
	etcdDir := filepath.Join(up.data, "etcd")
	err = filepath.WalkDir(etcdDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		found = found || bytes.Contains(b, []byte("web-secrets"))
		for _, f := range forms {
			if bytes.Contains(b, []byte(f)) {
				hits++
				t.Errorf("a secret value (form %.6s…) is in etcd file %s", f, path)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("etcd data dir %s: %d files, %v", etcdDir, files, err)
	}
	if !found {
		t.Errorf("no etcd file holds the pod spec's reference %q: the search cannot see the store's data", "web-secrets")
	}
	t.Logf("leak search: %d values (%d forms with base64) in %d outputs (%d bytes of log) and %d etcd files: %d hits",
		len(values), len(forms), len(outputs), len(up.log.String()), files, hits)
}

// leakForms are the texts a value could leak as: itself and its base64 forms.
func leakForms(values []string) []string {
	var out []string
	for _, v := range values {
		b := []byte(v)
		out = append(out, v, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
			base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	return out
}

// TestVaultCredentialsDirFlag: --vault-credentials-dir defaults to DATA-DIR/credentials
// for both up and server, and an explicit value wins.
func TestVaultCredentialsDirFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--data-dir", "/srv/g"}, "/srv/g/credentials"},
		{nil, "/var/lib/gantry/credentials"},
		{[]string{"--data-dir", "/srv/g", "--vault-credentials-dir", "/etc/gantry/vault"}, "/etc/gantry/vault"},
	} {
		var f serverFlags
		cmd := &cobra.Command{Use: "server"}
		f.add(cmd, "/var/lib/gantry", "127.0.0.1:0")
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got := f.credentialsDir(); got != tc.want {
			t.Errorf("%v: credentials dir %q, want %q", tc.args, got, tc.want)
		}
	}
}
