package controlplane_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/controlplane/agentclient"
	"gantry.io/gantry/controlplane/apiclient"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/secrets"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countLeaks returns how many times any value (or its base64 forms) occurs in texts.
func countLeaks(t *testing.T, values, texts []string) int {
	t.Helper()
	hits := 0
	for _, v := range values {
		forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawStdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))}
		for _, text := range texts {
			for _, f := range forms {
				if n := strings.Count(text, f); n > 0 {
					hits += n
					t.Errorf("value %q… leaked into: %s", v[:4], strings.ReplaceAll(text, f, "<LEAKED>"))
				}
			}
		}
	}
	return hits
}

// rawGet returns the status code and body of a GET made with c.
func rawGet(t *testing.T, c *apiclient.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Stream(context.Background(), http.MethodGet, path, nil)
	if err != nil {
		// Stream classes non-2xx answers; the message is the body's Status message.
		code := 0
		switch {
		case errors.Is(err, api.ErrPermissionDenied):
			code = http.StatusForbidden
		case errors.Is(err, api.ErrUnavailable):
			code = http.StatusServiceUnavailable
		case errors.Is(err, api.ErrNotFound):
			code = http.StatusNotFound
		case errors.Is(err, api.ErrUnauthenticated):
			code = http.StatusUnauthorized
		}
		return code, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func materialPod(ns, name, node string) *corev1.Pod {
	p := testPod(ns, name, node)
	p.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password"}}},
		{Name: "MODE", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}, Key: "mode"}}},
	}
	p.Spec.Volumes = []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}}}
	return p
}

func vaultStore(addr string) *manifest.SecretStore {
	path := "secret"
	s := &manifest.SecretStore{Spec: manifest.SecretStoreSpec{Provider: manifest.SecretStoreProvider{Vault: &manifest.VaultProvider{
		Server: addr, Path: &path, Version: "v2",
		Auth: manifest.VaultAuth{TokenSecretRef: &manifest.SecretKeySelector{Name: "vault-token", Key: "token"}},
	}}}}
	s.Kind, s.Name, s.Namespace = secrets.KindSecretStore, "vault", "shop"
	return s
}

func extSecret(name, target, key string) *manifest.ExternalSecret {
	es := &manifest.ExternalSecret{}
	es.Name, es.Namespace = name, "shop"
	es.Spec.SecretStoreRef = manifest.SecretStoreRef{Name: "vault", Kind: secrets.KindSecretStore}
	es.Spec.Target.Name = target
	es.Spec.DataFrom = []manifest.ExternalSecretDataFromItem{{Extract: &manifest.RemoteReference{Key: key}}}
	return es
}

// refreshUntil refreshes the cache until ok says the state is reached.
func refreshUntil(t *testing.T, c *secrets.Cache, ref secrets.Ref, ok func(secrets.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.Refresh(context.Background())
		st, _ := c.Status(ref)
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("secret %s: state not reached; last status hash=%q err=%v", ref, st.Hash, st.Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPodMaterialEndpoint runs the material endpoint over real mTLS with a real Vault
// dev server behind the secrets.Cache.
func TestPodMaterialEndpoint(t *testing.T) {
	v := testenv.StartVault(t)
	ctx := context.Background()
	const password, tlsKey, tlsCert = "pw-Vq81-never-logged", "key-Lm03-never-logged", "crt-Zp55-never-logged"
	values := []string{password, tlsKey, tlsCert, v.RootToken()}
	v.WriteKV2(t, "secret", "shop/db", map[string]any{"password": password, "user": "app"})
	v.WriteKV2(t, "secret", "shop/tls", map[string]any{"tls.key": tlsKey, "tls.crt": tlsCert})

	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	red := secrets.NewRedactor()
	creds := func(ns, store, key string) ([]byte, error) {
		if ns == "shop" && store == "vault-token" && key == "token" {
			return []byte(v.RootToken()), nil
		}
		return nil, api.ErrNotFound
	}
	r := secrets.New(secrets.WithCredentials(creds), secrets.WithLogger(logger), secrets.WithRedactor(red), secrets.WithTimeout(3*time.Second))
	t.Cleanup(func() { _ = r.Close() })
	cache := secrets.NewCache(r, secrets.WithDefaultRefresh(50*time.Millisecond), secrets.WithBackoff(10*time.Millisecond, 50*time.Millisecond))

	cm := &corev1.ConfigMap{Data: map[string]string{"mode": "blue"}}
	cm.Name, cm.Namespace = "app-config", "shop"
	var mu sync.Mutex
	desired := &manifest.Desired{
		ConfigMaps:      []*corev1.ConfigMap{cm},
		SecretStores:    []*manifest.SecretStore{vaultStore(v.Addr())},
		ExternalSecrets: []*manifest.ExternalSecret{extSecret("db", "db-credentials", "shop/db"), extSecret("tls", "", "shop/tls")},
	}
	current := func() *manifest.Desired { mu.Lock(); defer mu.Unlock(); return desired }
	cache.Set([]manifest.SecretStore{*desired.SecretStores[0]}, []manifest.ExternalSecret{*desired.ExternalSecrets[0], *desired.ExternalSecrets[1]})
	dbRef := secrets.Ref{Namespace: "shop", Name: "db"}
	refreshUntil(t, cache, dbRef, func(st secrets.Status) bool { return st.Hash != "" && st.Err == nil })

	e := startServer(t, controlplane.WithLogger(logger), controlplane.WithMaterialSource(controlplane.NewDesiredMaterial(current, cache, red)))
	if _, err := e.st.Pods().Create(ctx, materialPod("shop", "web", "node-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Pods().Create(ctx, testPod("shop", "plain", "node-a")); err != nil {
		t.Fatal(err)
	}
	nodeA := e.nodeClient(t, e.join(t, "node-a"))
	nodeB := e.nodeClient(t, e.join(t, "node-b"))
	admin := e.admin(t)
	var texts []string // every response and error text that must not hold a value
	path := agentclient.MaterialPath("node-a", "shop", "web")

	// node A gets the values of its pod: only the objects the pod references.
	code, body := rawGet(t, nodeA, path)
	if code != http.StatusOK {
		t.Fatalf("node-a material: %d %s", code, body)
	}
	var m agentclient.Material
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for name, s := range m.Secrets {
		got["secret/"+name] = map[string]string{}
		for k, val := range s.Data {
			got["secret/"+name][k] = string(val)
		}
	}
	for name, c := range m.ConfigMaps {
		got["configmap/"+name] = c.Data
	}
	want := map[string]map[string]string{
		"secret/db-credentials": {"password": password, "user": "app"},
		"secret/tls":            {"tls.key": tlsKey, "tls.crt": tlsCert},
		"configmap/app-config":  {"mode": "blue"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("node-a material (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(m.Hash, "sha256:") {
		t.Errorf("material hash %q, want sha256:…", m.Hash)
	}
	firstHash := m.Hash

	// A pod that references nothing gets an empty material.
	code, body = rawGet(t, nodeA, agentclient.MaterialPath("node-a", "shop", "plain"))
	if code != http.StatusOK || strings.TrimSpace(body) != `{"hash":""}` {
		t.Errorf("plain pod material: %d %s", code, body)
	}

	// Node B may not read node A's pod, neither under its own path nor under A's;
	// admin tokens may not either (agents only).
	for name, tc := range map[string]struct {
		c    *apiclient.Client
		path string
	}{
		"node-b under node-a's path": {nodeB, path},
		"node-b under its own path":  {nodeB, agentclient.MaterialPath("node-b", "shop", "web")},
		"admin token":                {admin, path},
	} {
		code, body := rawGet(t, tc.c, tc.path)
		texts = append(texts, body)
		if code != http.StatusForbidden {
			t.Errorf("%s: got %d %s, want 403", name, code, body)
		}
	}

	// A ConfigMap change changes the hash.
	mu.Lock()
	cm2 := cm.DeepCopy()
	cm2.Data["mode"] = "green"
	desired = &manifest.Desired{ConfigMaps: []*corev1.ConfigMap{cm2}, SecretStores: desired.SecretStores, ExternalSecrets: desired.ExternalSecrets}
	mu.Unlock()
	if err := nodeA.Do(ctx, http.MethodGet, path, nil, &m); err != nil {
		t.Fatal(err)
	}
	if m.Hash == firstHash || m.ConfigMaps["app-config"].Data["mode"] != "green" {
		t.Errorf("after a ConfigMap change: hash %s (was %s), mode %q", m.Hash, firstHash, m.ConfigMaps["app-config"].Data["mode"])
	}
	greenHash := m.Hash

	// Vault stopped: 503 naming the store and the path, never a value or a token.
	v.Stop(t)
	refreshUntil(t, cache, dbRef, func(st secrets.Status) bool { return st.Err != nil })
	code, body = rawGet(t, nodeA, path)
	texts = append(texts, body)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("Vault stopped: got %d %s, want 503", code, body)
	}
	for _, s := range []string{`"shop/vault"`, `"secret/data/shop/`} {
		if !strings.Contains(body, s) {
			t.Errorf("Vault stopped: reason %q does not name %s", body, s)
		}
	}
	_, err := nodeA.Stream(ctx, http.MethodGet, path, nil)
	if !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("Vault stopped: client error %v, want ErrUnavailable", err)
	}

	// Vault back but empty: the key is missing → still 503, saying so.
	v.Restart(t)
	refreshUntil(t, cache, dbRef, func(st secrets.Status) bool {
		return st.Err != nil && strings.Contains(st.Err.Error(), "no secret at this path")
	})
	code, body = rawGet(t, nodeA, path)
	texts = append(texts, body)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no secret at this path") {
		t.Errorf("key missing: got %d %s, want 503 no secret at this path", code, body)
	}

	// Values written again: 200 with the same hash as before the outage.
	v.WriteKV2(t, "secret", "shop/db", map[string]any{"password": password, "user": "app"})
	v.WriteKV2(t, "secret", "shop/tls", map[string]any{"tls.key": tlsKey, "tls.crt": tlsCert})
	refreshUntil(t, cache, dbRef, func(st secrets.Status) bool { return st.Err == nil })
	refreshUntil(t, cache, secrets.Ref{Namespace: "shop", Name: "tls"}, func(st secrets.Status) bool { return st.Err == nil })
	code, body = rawGet(t, nodeA, path)
	if code != http.StatusOK {
		t.Fatalf("Vault back: %d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if m.Hash != greenHash || string(m.Secrets["db-credentials"].Data["password"]) != password {
		t.Errorf("Vault back: hash %s (want %s), password ok=%v", m.Hash, greenHash, string(m.Secrets["db-credentials"].Data["password"]) == password)
	}

	// Other API responses carry no values: the pod, the pod list, the events.
	for _, p := range []string{"/api/v1/namespaces/shop/pods/web", "/api/v1/pods", "/api/v1/events"} {
		code, body := rawGet(t, admin, p)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
		texts = append(texts, body)
	}
	texts = append(texts, logs.String())
	if st, _ := cache.Status(dbRef); st.Err != nil {
		texts = append(texts, st.Err.Error())
	}
	hits := countLeaks(t, values, texts)
	t.Logf("leak check: %d values × %d texts (%d log bytes): %d hits", len(values), len(texts), len(logs.String()), hits)
}

// countingFetcher passes fetches to an agent and counts the failures.
type countingFetcher struct {
	a        *agentclient.Agent
	mu       sync.Mutex
	failures int
	texts    []string
}

func (f *countingFetcher) FetchMaterial(ctx context.Context, pod *corev1.Pod) (*agentclient.Material, error) {
	m, err := f.a.FetchMaterial(ctx, pod)
	if err != nil {
		f.mu.Lock()
		f.failures++
		f.texts = append(f.texts, err.Error())
		f.mu.Unlock()
	}
	return m, err
}

func (f *countingFetcher) failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failures
}

// fakeExecutor records what the Materializer hands over.
type fakeExecutor struct {
	mu    sync.Mutex
	last  map[string]agentclient.ReadyPod
	calls int
}

func (x *fakeExecutor) sync(pods []agentclient.ReadyPod) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.calls++
	x.last = map[string]agentclient.ReadyPod{}
	for _, p := range pods {
		x.last[p.Pod.Namespace+"/"+p.Pod.Name] = p
	}
}

func (x *fakeExecutor) get(k string) (agentclient.ReadyPod, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.last[k]
	return p, ok
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentHoldsBackPodUntilMaterial runs a real agent against a real server and Vault:
// a pod whose secret is missing is held back with SecretUnavailable (in the store),
// released when the value appears, and left as it is when Vault stops.
func TestAgentHoldsBackPodUntilMaterial(t *testing.T) {
	v := testenv.StartVault(t)
	const password, tlsKey = "agent-pw-Hq27-secret", "agent-key-Wn64-secret"
	values := []string{password, tlsKey, v.RootToken()}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds := func(ns, store, key string) ([]byte, error) {
		if ns == "shop" && store == "vault-token" && key == "token" {
			return []byte(v.RootToken()), nil
		}
		return nil, api.ErrNotFound
	}
	r := secrets.New(secrets.WithCredentials(creds), secrets.WithLogger(logger), secrets.WithTimeout(3*time.Second))
	t.Cleanup(func() { _ = r.Close() })
	cache := secrets.NewCache(r, secrets.WithDefaultRefresh(100*time.Millisecond), secrets.WithBackoff(20*time.Millisecond, 100*time.Millisecond), secrets.WithTick(20*time.Millisecond))
	cm := &corev1.ConfigMap{Data: map[string]string{"mode": "blue"}}
	cm.Name, cm.Namespace = "app-config", "shop"
	store, db, tls := vaultStore(v.Addr()), extSecret("db", "db-credentials", "shop/db"), extSecret("tls", "", "shop/tls")
	desired := &manifest.Desired{ConfigMaps: []*corev1.ConfigMap{cm}, SecretStores: []*manifest.SecretStore{store},
		ExternalSecrets: []*manifest.ExternalSecret{db, tls}}
	cache.Set([]manifest.SecretStore{*store}, []manifest.ExternalSecret{*db, *tls})
	ctx, cancel := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	t.Cleanup(func() { cancel(); bg.Wait() })
	bg.Add(1)
	go func() { defer bg.Done(); cache.Run(ctx, nil) }()

	e := startServer(t, controlplane.WithLogger(logger),
		controlplane.WithMaterialSource(controlplane.NewDesiredMaterial(func() *manifest.Desired { return desired }, cache, r.Redactor())))
	exec := &fakeExecutor{}
	fetcher := &countingFetcher{}
	mat := agentclient.NewMaterializer(fetcher, exec.sync,
		agentclient.WithMaterialPoll(50*time.Millisecond), agentclient.WithMaterialBackoff(20*time.Millisecond, 200*time.Millisecond),
		agentclient.WithMaterialLogger(logger))
	a := startAgent(t, e, e.join(t, "node-a"), nil, mat.Pods)
	fetcher.a = a
	mat.UseAgent(a) // status reports go through the agent
	bg.Add(1)
	go func() { defer bg.Done(); mat.Run(ctx) }()

	// Only one of the two secrets exists: the pod needing both is held back.
	v.WriteKV2(t, "secret", "shop/tls", map[string]any{"tls.key": tlsKey})
	for _, p := range []*corev1.Pod{materialPod("shop", "web", "node-a"), testPod("shop", "plain", "node-a")} {
		if _, err := e.st.Pods().Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the plain pod delivered", func() bool { _, ok := exec.get("shop/plain"); return ok })
	var cond *corev1.PodCondition
	waitFor(t, "SecretUnavailable on shop/web in the store", func() bool {
		p, err := e.st.Pods().Get(ctx, "shop", "web")
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.Status.Conditions {
			if c := p.Status.Conditions[i]; c.Type == agentclient.PodConditionSecretUnavailable && c.Status == corev1.ConditionTrue {
				cond = &c
				return p.Status.Phase == corev1.PodPending
			}
		}
		return false
	})
	t.Logf("held back: %s: %s", cond.Reason, cond.Message)
	for _, s := range []string{`"shop/vault"`, `"secret/data/shop/db"`} {
		if !strings.Contains(cond.Message, s) {
			t.Errorf("SecretUnavailable message %q does not name %s", cond.Message, s)
		}
	}
	if _, ok := exec.get("shop/web"); ok {
		t.Fatalf("shop/web was handed to the executor while its secret is missing")
	}
	if held := mat.Held(); held["shop/web"] == "" {
		t.Errorf("Held() = %v, want shop/web", held)
	}

	// The value appears in Vault: the pod is released with it.
	v.WriteKV2(t, "secret", "shop/db", map[string]any{"password": password})
	waitFor(t, "shop/web delivered", func() bool { _, ok := exec.get("shop/web"); return ok })
	web, _ := exec.get("shop/web")
	if string(web.Secrets["db-credentials"].Data["password"]) != password || string(web.Secrets["tls"].Data["tls.key"]) != tlsKey || web.ConfigMaps["app-config"].Data["mode"] != "blue" {
		t.Errorf("shop/web delivered without its values: secrets %v configmaps %v", len(web.Secrets), len(web.ConfigMaps))
	}
	if len(mat.Held()) != 0 {
		t.Errorf("Held() after release = %v", mat.Held())
	}

	// Vault stops: the running pod keeps its material, untouched.
	before := fetcher.failed()
	v.Stop(t)
	waitFor(t, "two failed refetches", func() bool { return fetcher.failed() >= before+2 })
	after, ok := exec.get("shop/web")
	if !ok || after.Hash != web.Hash || string(after.Secrets["db-credentials"].Data["password"]) != password {
		t.Errorf("Vault stopped: running pod changed: delivered=%v hash %s → %s", ok, web.Hash, after.Hash)
	}

	// No value in logs, errors, the pod's status or events.
	texts := []string{logs.String(), cond.Message}
	fetcher.mu.Lock()
	texts = append(texts, fetcher.texts...)
	fetcher.mu.Unlock()
	admin := e.admin(t)
	for _, p := range []string{"/api/v1/namespaces/shop/pods/web", "/api/v1/events"} {
		_, body := rawGet(t, admin, p)
		texts = append(texts, body)
	}
	hits := countLeaks(t, values, texts)
	t.Logf("leak check: %d values × %d texts (%d log bytes, %d fetch errors): %d hits", len(values), len(texts), len(logs.String()), fetcher.failed(), hits)
}

// TestConfigHash: ConfigMap content and resolved secret hashes change the hash;
// restart-on-change "false", unrelated objects and undefined references do not.
func TestConfigHash(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{Spec: materialPod("shop", "web", "").Spec}
	cm := &corev1.ConfigMap{Data: map[string]string{"mode": "blue"}}
	cm.Name, cm.Namespace = "app-config", "shop"
	other := cm.DeepCopy()
	other.Name = "unrelated"
	db, tls := extSecret("db", "db-credentials", "shop/db"), extSecret("tls", "", "shop/tls")
	d := &manifest.Desired{ConfigMaps: []*corev1.ConfigMap{cm, other}, ExternalSecrets: []*manifest.ExternalSecret{db, tls}}
	hashes := map[secrets.Ref]string{{Namespace: "shop", Name: "db"}: "sha256:1", {Namespace: "shop", Name: "tls"}: "sha256:a"}
	base := controlplane.ConfigHash(tmpl, "shop", d, hashes)
	if !strings.HasPrefix(base, "sha256:") {
		t.Fatalf("ConfigHash = %q", base)
	}
	if again := controlplane.ConfigHash(tmpl.DeepCopy(), "shop", d, hashes); again != base {
		t.Errorf("not deterministic: %s vs %s", base, again)
	}
	with := func(f func(d *manifest.Desired, h map[secrets.Ref]string)) string {
		d2 := &manifest.Desired{}
		for _, c := range d.ConfigMaps {
			d2.ConfigMaps = append(d2.ConfigMaps, c.DeepCopy())
		}
		for _, es := range d.ExternalSecrets {
			cp := *es
			cp.ObjectMeta = *es.ObjectMeta.DeepCopy()
			d2.ExternalSecrets = append(d2.ExternalSecrets, &cp)
		}
		h2 := map[secrets.Ref]string{}
		for k, v := range hashes {
			h2[k] = v
		}
		f(d2, h2)
		return controlplane.ConfigHash(tmpl, "shop", d2, h2)
	}
	for name, tc := range map[string]struct {
		change  func(d *manifest.Desired, h map[secrets.Ref]string)
		changed bool
	}{
		"configmap value": {func(d *manifest.Desired, _ map[secrets.Ref]string) { d.ConfigMaps[0].Data["mode"] = "green" }, true},
		"configmap binary data": {func(d *manifest.Desired, _ map[secrets.Ref]string) {
			d.ConfigMaps[0].BinaryData = map[string][]byte{"x": {1}}
		}, true},
		"secret rotated": {func(_ *manifest.Desired, h map[secrets.Ref]string) {
			h[secrets.Ref{Namespace: "shop", Name: "db"}] = "sha256:2"
		}, true},
		"secret not resolved yet": {func(_ *manifest.Desired, h map[secrets.Ref]string) {
			delete(h, secrets.Ref{Namespace: "shop", Name: "db"})
		}, true},
		"unrelated configmap": {func(d *manifest.Desired, _ map[secrets.Ref]string) { d.ConfigMaps[1].Data["mode"] = "green" }, false},
		"hash of another namespace": {func(_ *manifest.Desired, h map[secrets.Ref]string) {
			h[secrets.Ref{Namespace: "other", Name: "db"}] = "x"
		}, false},
	} {
		if got := with(tc.change); (got != base) != tc.changed {
			t.Errorf("%s: hash changed=%v, want %v", name, got != base, tc.changed)
		}
	}
	// restart-on-change "false": a rotation of tls updates files in place, no roll.
	noRestart := func(d *manifest.Desired, h map[secrets.Ref]string) {
		d.ExternalSecrets[1].Annotations = map[string]string{api.AnnotationRestartOnChange: "false"}
	}
	a := with(noRestart)
	b := with(func(d *manifest.Desired, h map[secrets.Ref]string) {
		noRestart(d, h)
		h[secrets.Ref{Namespace: "shop", Name: "tls"}] = "sha256:b"
	})
	if a != b {
		t.Errorf("restart-on-change false: rotation changed the hash %s → %s", a, b)
	}
	if controlplane.ConfigHash(&corev1.PodTemplateSpec{Spec: testPod("shop", "plain", "").Spec}, "shop", d, hashes) != "" {
		t.Errorf("a template without references has a config hash")
	}
}
