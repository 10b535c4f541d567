package secrets_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/manifest"
	"gantry.io/gantry/secrets"
)

// leakWatch collects every log line and error text a test produces and, at cleanup,
// searches them for every secret value and credential the test used (and their
// base64 forms): there must be zero hits.
type leakWatch struct {
	t      *testing.T
	mu     sync.Mutex
	logs   bytes.Buffer
	texts  []string
	values []string
}

func newLeakWatch(t *testing.T) *leakWatch {
	w := &leakWatch{t: t}
	t.Cleanup(w.check)
	return w
}

func (w *leakWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.Write(p)
}

func (w *leakWatch) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// secret registers values that must never show up.
func (w *leakWatch) secret(values ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.values = append(w.values, values...)
}

// err records an error's text (and returns the error).
func (w *leakWatch) err(err error) error {
	if err != nil {
		w.mu.Lock()
		w.texts = append(w.texts, err.Error())
		w.mu.Unlock()
	}
	return err
}

func (w *leakWatch) logText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

func (w *leakWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	corpus := append([]string{w.logs.String()}, w.texts...)
	hits := 0
	for _, v := range w.values {
		forms := []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v))}
		for _, text := range corpus {
			for _, f := range forms {
				if strings.Contains(text, f) {
					hits++
					w.t.Errorf("secret %q… (or its base64) appears in test output: %s", v[:min(4, len(v))], strings.ReplaceAll(text, f, "<LEAKED>"))
				}
			}
		}
	}
	if len(w.values) == 0 {
		w.t.Error("leak check ran without any secret value registered")
	}
	w.t.Logf("leak check: %d values × %d texts (%d log bytes, %d errors): %d hits", len(w.values), len(corpus), w.logs.Len(), len(w.texts), hits)
}

// credMap is an in-memory CredentialLookup: "ns/name/key" → value.
type credMap struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *credMap) set(ns, store, key, v string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[ns+"/"+store+"/"+key] = v
}

func (c *credMap) lookup(ns, store, key string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[ns+"/"+store+"/"+key]
	if !ok {
		return nil, api.ErrNotFound
	}
	return []byte(v), nil
}

func ptr[T any](v T) *T { return &v }

// tokenStore is a SecretStore "name" in namespace shop whose token is the server-side
// credential shop/<name>/token (each test store has its own).
func tokenStore(name, server string, path *string, version string) *manifest.SecretStore {
	s := &manifest.SecretStore{Spec: manifest.SecretStoreSpec{Provider: manifest.SecretStoreProvider{Vault: &manifest.VaultProvider{
		Server: server, Path: path, Version: version,
		Auth: manifest.VaultAuth{TokenSecretRef: &manifest.SecretKeySelector{Name: name, Key: "token"}},
	}}}}
	s.Kind, s.Name, s.Namespace = secrets.KindSecretStore, name, "shop"
	return s
}

func externalSecret(name, store string, data ...manifest.ExternalSecretData) *manifest.ExternalSecret {
	es := &manifest.ExternalSecret{}
	es.Name, es.Namespace = name, "shop"
	es.Spec.SecretStoreRef = manifest.SecretStoreRef{Name: store, Kind: secrets.KindSecretStore}
	es.Spec.Data = data
	return es
}

func item(secretKey, key, property, version string) manifest.ExternalSecretData {
	return manifest.ExternalSecretData{SecretKey: secretKey, RemoteRef: manifest.RemoteReference{Key: key, Property: property, Version: version}}
}

func strData(r *secrets.Resolved) map[string]string {
	out := map[string]string{}
	for k, v := range r.Data {
		out[k] = string(v)
	}
	return out
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// setup starts a dev server and a Resolver whose logs and errors are leak-checked.
func setup(t *testing.T) (*testenv.Vault, *secrets.Resolver, *credMap, *leakWatch) {
	t.Helper()
	v := testenv.StartVault(t)
	w := newLeakWatch(t)
	w.secret(v.RootToken())
	creds := &credMap{}
	creds.set("shop", "vault", "token", v.RootToken())
	r := secrets.New(secrets.WithCredentials(creds.lookup), secrets.WithLogger(w.logger()), secrets.WithTimeout(5*time.Second))
	t.Cleanup(func() { _ = r.Close() })
	return v, r, creds, w
}

func TestVaultKVv1AndV2(t *testing.T) {
	v, r, creds, w := setup(t)
	ctx := ctxT(t)
	w.secret("kv2-password-Zq81", "kv1-password-Lm03", "db-host-internal-77")
	v.WriteKV2(t, "secret", "shop/db", map[string]any{
		"user": "app", "password": "kv2-password-Zq81", "port": 5432, "tls": true,
		"config": map[string]any{"db": map[string]any{"host": "db-host-internal-77", "pool": 8}},
	})
	v.EnableKV1(t, "kv1")
	v.WriteKV1(t, "kv1", "shop/db", map[string]any{"password": "kv1-password-Lm03", "user": "legacy"})
	creds.set("shop", "legacy", "token", v.RootToken())

	es := externalSecret("db", "vault",
		item("user", "shop/db", "user", ""),
		item("password", "shop/db", "password", ""),
		item("port", "shop/db", "port", ""),
		item("tls", "shop/db", "tls", ""),
		item("host", "shop/db", "config.db.host", ""),
		item("db.json", "shop/db", "config.db", ""),
	)
	es.Spec.Target.Name = "db-credentials"
	got, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v2"), es)
	if w.err(err) != nil {
		t.Fatalf("resolve KV v2: %v", err)
	}
	want := map[string]string{
		"user": "app", "password": "kv2-password-Zq81", "port": "5432", "tls": "true",
		"host": "db-host-internal-77", "db.json": `{"host":"db-host-internal-77","pool":8}`,
	}
	if d := cmp.Diff(want, strData(got)); d != "" {
		t.Errorf("KV v2 data (-want +got):\n%s", d)
	}
	if got.Name != "db-credentials" || got.Store != "shop/vault" || got.Versions["password"] != "1" {
		t.Errorf("KV v2: name %q store %q version %q", got.Name, got.Store, got.Versions["password"])
	}
	if s := got.Sources["host"]; s.Path != "secret/data/shop/db" || s.Property != "config.db.host" {
		t.Errorf("source of host: %+v", s)
	}
	// The key may repeat the mount; no property gives the whole secret as JSON.
	whole, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v2"),
		externalSecret("whole", "vault", item("all", "secret/shop/db", "", "")))
	if w.err(err) != nil {
		t.Fatalf("resolve whole secret: %v", err)
	}
	var all map[string]any
	if err := json.Unmarshal(whole.Data["all"], &all); err != nil || all["password"] != "kv2-password-Zq81" {
		t.Errorf("whole secret: %v, %v", all, err)
	}

	legacy, err := r.Resolve(ctx, tokenStore("legacy", v.Addr(), ptr("kv1"), "v1"),
		externalSecret("legacy", "legacy", item("password", "shop/db", "password", ""), item("user", "shop/db", "user", "")))
	if w.err(err) != nil {
		t.Fatalf("resolve KV v1: %v", err)
	}
	if d := cmp.Diff(map[string]string{"password": "kv1-password-Lm03", "user": "legacy"}, strData(legacy)); d != "" {
		t.Errorf("KV v1 data (-want +got):\n%s", d)
	}
	if legacy.Versions["password"] != "" || legacy.Sources["password"].Path != "kv1/shop/db" {
		t.Errorf("KV v1: version %q source %+v", legacy.Versions["password"], legacy.Sources["password"])
	}
	// No provider path: the key names the mount.
	nomount, err := r.Resolve(ctx, tokenStore("legacy", v.Addr(), nil, "v1"),
		externalSecret("legacy", "legacy", item("password", "kv1/shop/db", "password", "")))
	if w.err(err) != nil || string(nomount.Data["password"]) != "kv1-password-Lm03" {
		t.Errorf("KV v1 without provider path: %v", err)
	}

	// A missing property and a missing path are UnavailableErrors with ErrNotFound.
	for _, es := range []*manifest.ExternalSecret{
		externalSecret("db", "vault", item("x", "shop/db", "nope", "")),
		externalSecret("db", "vault", item("x", "shop/absent", "user", "")),
	} {
		_, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v2"), es)
		var uerr *secrets.UnavailableError
		if !errors.As(w.err(err), &uerr) || !errors.Is(err, api.ErrNotFound) || !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("missing %s: %v, want *UnavailableError with ErrNotFound", es.Spec.Data[0].RemoteRef.Key, err)
			continue
		}
		if uerr.Store != "shop/vault" || !strings.HasPrefix(uerr.Path, "secret/data/shop/") {
			t.Errorf("UnavailableError fields: %+v", uerr)
		}
	}
	// Reading a KV v1 mount as v2 fails clearly.
	if _, err := r.Resolve(ctx, tokenStore("legacy", v.Addr(), ptr("kv1"), "v2"),
		externalSecret("legacy", "legacy", item("password", "shop/db", "password", ""))); !errors.Is(w.err(err), api.ErrUnavailable) {
		t.Errorf("KV v1 mount read as v2: %v", err)
	}
}

func TestVaultVersionPinning(t *testing.T) {
	v, r, _, w := setup(t)
	ctx := ctxT(t)
	w.secret("rotating-value-one", "rotating-value-two", "rotating-value-three")
	for _, val := range []string{"rotating-value-one", "rotating-value-two", "rotating-value-three"} {
		v.WriteKV2(t, "secret", "shop/rot", map[string]any{"v": val})
	}
	store := tokenStore("vault", v.Addr(), ptr("secret"), "")
	got, err := r.Resolve(ctx, store, externalSecret("rot", "vault",
		item("latest", "shop/rot", "v", ""), item("pinned", "shop/rot", "v", "2"), item("first", "shop/rot", "v", "1")))
	if w.err(err) != nil {
		t.Fatalf("resolve: %v", err)
	}
	if d := cmp.Diff(map[string]string{"latest": "rotating-value-three", "pinned": "rotating-value-two", "first": "rotating-value-one"}, strData(got)); d != "" {
		t.Errorf("pinned versions (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"latest": "3", "pinned": "2", "first": "1"}, got.Versions); d != "" {
		t.Errorf("versions (-want +got):\n%s", d)
	}
	if d := secrets.Describe(got); d["key:pinned"] != "secret/data/shop/rot#v@2" {
		t.Errorf("Describe key:pinned = %q", d["key:pinned"])
	}
	if _, err := r.Resolve(ctx, store, externalSecret("rot", "vault", item("x", "shop/rot", "v", "9"))); !errors.Is(w.err(err), api.ErrNotFound) {
		t.Errorf("version 9 of 3: %v, want ErrNotFound", err)
	}
	v.DeleteKV2(t, "secret", "shop/rot")
	if _, err := r.Resolve(ctx, store, externalSecret("rot", "vault", item("x", "shop/rot", "v", ""))); !errors.Is(w.err(err), api.ErrNotFound) {
		t.Errorf("deleted latest version: %v, want ErrNotFound", err)
	}
	if got, err := r.Resolve(ctx, store, externalSecret("rot", "vault", item("x", "shop/rot", "v", "2"))); w.err(err) != nil || string(got.Data["x"]) != "rotating-value-two" {
		t.Errorf("a pinned version survives deleting the latest: %v", err)
	}
	if _, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v1"),
		externalSecret("rot", "vault", item("x", "shop/rot", "v", "2"))); !errors.Is(w.err(err), api.ErrInvalidArgument) {
		t.Errorf("version on a KV v1 store: %v, want ErrInvalidArgument", err)
	}
}

func TestVaultDataFromExtract(t *testing.T) {
	v, r, _, w := setup(t)
	ctx := ctxT(t)
	w.secret("extract-pass-9931", "override-pass-5521", "nested-token-abcdef")
	v.WriteKV2(t, "secret", "shop/app", map[string]any{
		"DB_USER": "app", "DB_PASS": "extract-pass-9931", "RETRIES": 3,
		"nested": map[string]any{"API_TOKEN": "nested-token-abcdef", "LEVEL": "debug"},
	})
	v.WriteKV2(t, "secret", "shop/override", map[string]any{"p": "override-pass-5521"})
	es := externalSecret("app", "vault", item("DB_PASS", "shop/override", "p", ""))
	es.Spec.DataFrom = []manifest.ExternalSecretDataFromItem{
		{Extract: &manifest.RemoteReference{Key: "shop/app"}},
		{Extract: &manifest.RemoteReference{Key: "shop/app", Property: "nested"}},
	}
	got, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v2"), es)
	if w.err(err) != nil {
		t.Fatalf("resolve: %v", err)
	}
	want := map[string]string{
		"DB_USER": "app", "DB_PASS": "override-pass-5521", "RETRIES": "3",
		"nested":    `{"API_TOKEN":"nested-token-abcdef","LEVEL":"debug"}`,
		"API_TOKEN": "nested-token-abcdef", "LEVEL": "debug",
	}
	if d := cmp.Diff(want, strData(got)); d != "" {
		t.Errorf("dataFrom extract (-want +got):\n%s", d)
	}
	if s := got.Sources["API_TOKEN"]; s.Property != "nested.API_TOKEN" || s.Version != "1" {
		t.Errorf("source of an extracted key: %+v", s)
	}
	es.Spec.DataFrom = []manifest.ExternalSecretDataFromItem{{Extract: &manifest.RemoteReference{Key: "shop/app", Property: "DB_USER"}}}
	if _, err := r.Resolve(ctx, tokenStore("vault", v.Addr(), ptr("secret"), "v2"), es); !errors.Is(w.err(err), api.ErrInvalidArgument) {
		t.Errorf("extract of a string property: %v, want ErrInvalidArgument", err)
	}
}

// appRoleSetup enables AppRole with a read policy on secret/data/shop/*.
func appRoleSetup(t *testing.T, v *testenv.Vault, role string, settings map[string]any) (roleID, secretID string) {
	t.Helper()
	v.WritePolicy(t, "shop-read", `path "secret/data/shop/*" { capabilities = ["read"] }`)
	v.EnableAppRole(t, "approle")
	if settings == nil {
		settings = map[string]any{}
	}
	settings["token_policies"] = "shop-read"
	return v.CreateAppRole(t, "approle", role, settings)
}

// appRoleStore is an AppRole SecretStore "name" in namespace shop: its secret ID (and
// role ID without an inline roleID) are the server-side credential shop/<name>/secret-id
// (and role-id).
func appRoleStore(name, server, roleID string) *manifest.SecretStore {
	s := &manifest.SecretStore{Spec: manifest.SecretStoreSpec{Provider: manifest.SecretStoreProvider{Vault: &manifest.VaultProvider{
		Server: server, Path: ptr("secret"), Version: "v2",
		Auth: manifest.VaultAuth{AppRole: &manifest.VaultAppRole{
			Path: "approle", RoleID: roleID, SecretRef: manifest.SecretKeySelector{Name: name, Key: "secret-id"},
		}},
	}}}}
	if roleID == "" {
		s.Spec.Provider.Vault.Auth.AppRole.RoleRef = &manifest.SecretKeySelector{Name: name, Key: "role-id"}
	}
	s.Kind, s.Name, s.Namespace = secrets.KindSecretStore, name, "shop"
	return s
}

func TestVaultAppRoleLogin(t *testing.T) {
	v := testenv.StartVault(t)
	w := newLeakWatch(t)
	ctx := ctxT(t)
	roleID, secretID := appRoleSetup(t, v, "shop", nil)
	w.secret(v.RootToken(), secretID, "approle-read-value-42")
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "approle-read-value-42"})
	v.WriteKV2(t, "secret", "other/app", map[string]any{"k": "not-for-shop"})

	// Credentials from files on the server, as the server flag --vault-credentials-dir does.
	dir := t.TempDir()
	for store, files := range map[string]map[string]string{
		"inline": {"secret-id": secretID},
		"byref":  {"secret-id": secretID, "role-id": roleID},
		"wrong":  {"secret-id": "00000000-0000-0000-0000-000000000000"},
	} {
		for name, content := range files {
			p := filepath.Join(dir, "shop", store, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := secrets.New(secrets.WithCredentials(secrets.CredentialsFromDir(dir)), secrets.WithLogger(w.logger()))
	t.Cleanup(func() { _ = r.Close() })

	for _, store := range []*manifest.SecretStore{appRoleStore("inline", v.Addr(), roleID), appRoleStore("byref", v.Addr(), "")} {
		got, err := r.Resolve(ctx, store, externalSecret("app", store.Name, item("k", "shop/app", "k", "")))
		if w.err(err) != nil {
			t.Fatalf("AppRole store %s: %v", store.Name, err)
		}
		if string(got.Data["k"]) != "approle-read-value-42" {
			t.Errorf("AppRole store %s: k = %q", store.Name, got.Data["k"])
		}
	}
	if n := strings.Count(w.logText(), "vault approle login"); n != 2 {
		t.Errorf("%d AppRole logins logged, want 2 (one per store, the client is cached)", n)
	}
	// The policy is enforced: a path outside it is refused.
	_, err := r.Resolve(ctx, appRoleStore("inline", v.Addr(), roleID), externalSecret("app", "inline", item("k", "other/app", "k", "")))
	if !errors.Is(w.err(err), api.ErrUnavailable) || !strings.Contains(err.Error(), "403") {
		t.Errorf("read outside the policy: %v, want Unavailable with HTTP 403", err)
	}
	// A wrong secret ID: the login fails, the text shows neither ID.
	_, err = r.Resolve(ctx, appRoleStore("wrong", v.Addr(), roleID), externalSecret("app", "wrong", item("k", "shop/app", "k", "")))
	var uerr *secrets.UnavailableError
	if !errors.As(w.err(err), &uerr) || uerr.Path != "auth/approle/login" {
		t.Errorf("wrong secret ID: %v, want UnavailableError on auth/approle/login", err)
	}
	if err != nil && (strings.Contains(err.Error(), "00000000-0000") || strings.Contains(err.Error(), roleID)) {
		t.Errorf("login error shows a credential: %v", err)
	}
	// No credential file at all.
	_, err = r.Resolve(ctx, appRoleStore("absent", v.Addr(), roleID), externalSecret("app", "absent", item("k", "shop/app", "k", "")))
	if !errors.Is(w.err(err), api.ErrUnavailable) || !strings.Contains(err.Error(), "secret-id") {
		t.Errorf("missing credential file: %v", err)
	}
}

func TestVaultTokenRenewal(t *testing.T) {
	v, r, creds, w := setup(t)
	ctx := ctxT(t)
	v.WritePolicy(t, "shop-read", `path "secret/data/shop/*" { capabilities = ["read"] }`)
	short := v.CreateToken(t, []string{"shop-read"}, "3s", "")
	w.secret(short, "renewed-value-1234")
	creds.set("shop", "short", "token", short)
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "renewed-value-1234"})
	store := tokenStore("short", v.Addr(), ptr("secret"), "v2")
	es := externalSecret("app", "short", item("k", "shop/app", "k", ""))

	if _, err := r.Resolve(ctx, store, es); w.err(err) != nil {
		t.Fatalf("first resolve: %v", err)
	}
	first := tokenExpiry(t, v, short)
	// The renewer extends the token before it expires: its expiry moves forward.
	deadline := time.Now().Add(30 * time.Second)
	for !tokenExpiry(t, v, short).After(first) {
		if time.Now().After(deadline) {
			t.Fatalf("token expiry never moved past %v: not renewed; log:\n%s", first, w.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Past the token's original expiry it still works.
	time.Sleep(time.Until(first) + time.Second)
	if _, err := r.Resolve(ctx, store, es); w.err(err) != nil {
		t.Fatalf("resolve after the original TTL: %v; log:\n%s", err, w.logText())
	}
	if !strings.Contains(w.logText(), "vault token renewed") {
		t.Errorf("no renewal logged:\n%s", w.logText())
	}
}

// tokenExpiry looks the token up with the root token.
func tokenExpiry(t *testing.T, v *testenv.Vault, token string) time.Time {
	t.Helper()
	s, err := v.Client().Auth().Token().Lookup(token)
	if err != nil {
		t.Fatalf("token lookup: %v", err)
	}
	exp, err := s.TokenTTL()
	if err != nil {
		t.Fatalf("token ttl: %v", err)
	}
	et, _ := s.Data["expire_time"].(string)
	when, err := time.Parse(time.RFC3339Nano, et)
	if err != nil {
		t.Fatalf("expire_time %q (ttl %v): %v", et, exp, err)
	}
	return when
}

func TestVaultAppRoleReloginAfterMaxTTL(t *testing.T) {
	v := testenv.StartVault(t)
	w := newLeakWatch(t)
	ctx := ctxT(t)
	roleID, secretID := appRoleSetup(t, v, "brief", map[string]any{"token_ttl": "2s", "token_max_ttl": "3s"})
	w.secret(v.RootToken(), secretID, "relogin-value-5678")
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "relogin-value-5678"})
	creds := &credMap{}
	creds.set("shop", "brief", "secret-id", secretID)
	r := secrets.New(secrets.WithCredentials(creds.lookup), secrets.WithLogger(w.logger()))
	t.Cleanup(func() { _ = r.Close() })
	store := appRoleStore("brief", v.Addr(), roleID)
	es := externalSecret("app", "brief", item("k", "shop/app", "k", ""))
	if _, err := r.Resolve(ctx, store, es); w.err(err) != nil {
		t.Fatalf("first resolve: %v", err)
	}
	// Past the token's max TTL it is dead; the client logs in again.
	time.Sleep(4 * time.Second)
	got, err := r.Resolve(ctx, store, es)
	if w.err(err) != nil {
		t.Fatalf("resolve after max TTL: %v; log:\n%s", err, w.logText())
	}
	if string(got.Data["k"]) != "relogin-value-5678" {
		t.Errorf("k = %q", got.Data["k"])
	}
	if n := strings.Count(w.logText(), "vault approle login"); n != 2 {
		t.Errorf("%d logins logged, want 2:\n%s", n, w.logText())
	}
}

func TestVaultStoppedKeepsLastValueAndRecovers(t *testing.T) {
	v := testenv.StartVault(t)
	w := newLeakWatch(t)
	ctx := ctxT(t)
	w.secret(v.RootToken(), "survives-outage-3141", "after-outage-2718")
	creds := &credMap{}
	creds.set("shop", "vault", "token", v.RootToken())
	clk := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clkMu sync.Mutex
	now := func() time.Time { clkMu.Lock(); defer clkMu.Unlock(); return clk }
	advance := func(d time.Duration) { clkMu.Lock(); clk = clk.Add(d); clkMu.Unlock() }
	r := secrets.New(secrets.WithCredentials(creds.lookup), secrets.WithLogger(w.logger()), secrets.WithClock(now), secrets.WithTimeout(3*time.Second))
	t.Cleanup(func() { _ = r.Close() })
	cache := secrets.NewCache(r, secrets.WithBackoff(time.Second, 4*time.Second))

	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "survives-outage-3141"})
	store := tokenStore("vault", v.Addr(), ptr("secret"), "v2")
	es := externalSecret("app", "vault", item("k", "shop/app", "k", ""))
	es.Spec.RefreshInterval = &metav1.Duration{Duration: 10 * time.Second}
	cache.Set([]manifest.SecretStore{*store}, []manifest.ExternalSecret{*es})
	ref := secrets.Ref{Namespace: "shop", Name: "app"}
	rep := cache.Refresh(ctx)
	if len(rep.Changed) != 1 || len(rep.Failed) != 0 {
		t.Fatalf("first refresh: %+v", rep)
	}
	good, _ := cache.Get(ref)

	v.Stop(t)
	advance(10 * time.Second)
	rep = cache.Refresh(ctx)
	err := rep.Failed[ref]
	var uerr *secrets.UnavailableError
	if !errors.As(w.err(err), &uerr) || !errors.Is(err, api.ErrUnavailable) {
		t.Fatalf("refresh with Vault stopped: %v, want *UnavailableError", err)
	}
	if strings.Contains(err.Error(), v.RootToken()) || uerr.Store != "shop/vault" || uerr.Path != "secret/data/shop/app" {
		t.Errorf("UnavailableError: %q %+v", err, uerr)
	}
	t.Logf("Vault stopped: %v", err)
	got, gerr := cache.Get(ref)
	if got == nil || got.Hash != good.Hash || string(got.Data["k"]) != "survives-outage-3141" {
		t.Errorf("last good value not kept: %v", got)
	}
	if !errors.Is(w.err(gerr), api.ErrUnavailable) {
		t.Errorf("Get while Vault is down: err %v", gerr)
	}
	// A second failure backs off further.
	advance(time.Second)
	w.err(cache.Refresh(ctx).Failed[ref])
	if st, _ := cache.Status(ref); st.Failures != 2 || !st.Next.Equal(now().Add(2*time.Second)) {
		t.Errorf("status after two failures: %+v", st)
	}

	// Vault is back (a dev server starts empty: the value is written again).
	v.Restart(t)
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "survives-outage-3141"})
	advance(2 * time.Second)
	rep = cache.Refresh(ctx)
	if len(rep.Failed) != 0 || len(rep.Changed) != 0 {
		t.Errorf("recovery with the same value: %+v", rep)
	}
	if got, err := cache.Get(ref); w.err(err) != nil || got.Hash != good.Hash {
		t.Errorf("after recovery: %v, %v", got, err)
	}
	// And a rotation is seen at the next interval.
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "after-outage-2718"})
	advance(10 * time.Second)
	rep = cache.Refresh(ctx)
	if len(rep.Changed) != 1 || rep.Changed[0].OldHash != good.Hash {
		t.Fatalf("rotation after recovery: %+v", rep)
	}
	if got, _ := cache.Get(ref); string(got.Data["k"]) != "after-outage-2718" {
		t.Errorf("rotated value = %q", got.Data["k"])
	}
	// Everything the test logged, redacted by the resolver's own Redactor, is unchanged:
	// the logs held no value to begin with.
	if logs := w.logText(); r.Redactor().String(logs) != logs {
		t.Errorf("the resolver's logs contain values it knows")
	}
}

// TestVaultNamespaceAndCABundle puts a TLS proxy on 127.0.0.1 in front of the dev
// server: the store trusts it only through caBundle, and the proxy records the
// namespace header the client sends.
func TestVaultNamespaceAndCABundle(t *testing.T) {
	v, r, creds, w := setup(t)
	ctx := ctxT(t)
	w.secret("tls-only-value-8080")
	v.WriteKV2(t, "secret", "shop/app", map[string]any{"k": "tls-only-value-8080"})
	target, err := url.Parse(v.Addr())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var namespaces []string
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		mu.Lock()
		namespaces = append(namespaces, req.Header.Get("X-Vault-Namespace"))
		mu.Unlock()
		// Vault OSS has no namespaces: drop the header before it reaches the dev server.
		req.Header.Del("X-Vault-Namespace")
		proxy.ServeHTTP(rw, req)
	}))
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	creds.set("shop", "tls", "token", v.RootToken())
	store := tokenStore("tls", srv.URL, ptr("secret"), "v2")
	store.Spec.Provider.Vault.Namespace = ptr("team-a")
	es := externalSecret("app", "tls", item("k", "shop/app", "k", ""))

	// Without the CA the certificate is not trusted.
	if _, err := r.Resolve(ctx, store, es); !errors.Is(w.err(err), api.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("TLS without caBundle: %v, want an Unavailable certificate error", err)
	}
	store.Spec.Provider.Vault.CABundle = ca
	got, err := r.Resolve(ctx, store, es)
	if w.err(err) != nil {
		t.Fatalf("TLS with caBundle: %v", err)
	}
	if string(got.Data["k"]) != "tls-only-value-8080" {
		t.Errorf("k = %q", got.Data["k"])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(namespaces) == 0 {
		t.Fatal("no request reached the proxy")
	}
	for _, ns := range namespaces {
		if ns != "team-a" {
			t.Errorf("X-Vault-Namespace = %q, want team-a on every request", ns)
		}
	}
	// A bad bundle is a manifest error.
	store.Spec.Provider.Vault.CABundle = []byte("not a certificate")
	if _, err := r.Resolve(ctx, store, es); !errors.Is(w.err(err), api.ErrInvalidArgument) {
		t.Errorf("bad caBundle: %v, want ErrInvalidArgument", err)
	}
}
