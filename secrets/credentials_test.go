package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialsFromDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop", "vault-token", "token"), "hvs.shop-token\n", 0o600)
	writeFile(t, filepath.Join(dir, "default", "approle", "secret-id"), "  sid-global  ", 0o640)
	writeFile(t, filepath.Join(dir, "shop", "open", "token"), "everyone-reads", 0o644)
	writeFile(t, filepath.Join(dir, "shop", "empty", "token"), "\n", 0o600)
	lookup := CredentialsFromDir(dir)

	if b, err := lookup("shop", "vault-token", "token"); err != nil || string(b) != "hvs.shop-token" {
		t.Errorf("token = %q, %v", b, err)
	}
	if b, err := lookup("default", "approle", "secret-id"); err != nil || string(b) != "sid-global" {
		t.Errorf("secret-id = %q, %v", b, err)
	}
	if _, err := lookup("shop", "vault-token", "secret-id"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := lookup("shop", "empty", "token"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("empty file: %v, want ErrNotFound", err)
	}
	_, err := lookup("shop", "open", "token")
	if !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("world-readable file: %v, want ErrFailedPrecondition", err)
	}
	if err != nil && strings.Contains(err.Error(), "everyone-reads") {
		t.Errorf("error shows the credential: %v", err)
	}
	for _, bad := range [][3]string{{"..", "x", "token"}, {"shop", "../shop/vault-token", "token"}, {"shop", "vault-token", "../token"}, {"shop", "", "token"}, {"", "vault-token", "token"}} {
		if _, err := lookup(bad[0], bad[1], bad[2]); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("lookup%q: %v, want ErrInvalidArgument", bad, err)
		}
	}
}

// TestServerCredentials: the environment variable (manifest.CredentialEnv) comes
// first, then the file (manifest.CredentialFile); a broken file is an error, not a
// reason to look elsewhere.
func TestServerCredentials(t *testing.T) {
	env := map[string]string{
		"GANTRY_CREDENTIAL_SHOP_VAULT_TOKEN_TOKEN":    "env-token",
		"GANTRY_CREDENTIAL_DEFAULT_APPROLE_SECRET_ID": "env-sid",
	}
	getenv := func(k string) string { return env[k] }
	envLookup := CredentialsFromEnv(getenv)
	if b, err := envLookup("shop", "vault-token", "token"); err != nil || string(b) != "env-token" {
		t.Errorf("env token = %q, %v", b, err)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop", "vault-token", "token"), "file-token", 0o600)
	writeFile(t, filepath.Join(dir, "shop", "file-only", "token"), "file-only-token", 0o600)
	writeFile(t, filepath.Join(dir, "shop", "broken", "token"), "world", 0o604)
	chain := FirstCredentials(envLookup, CredentialsFromDir(dir))
	if b, err := chain("shop", "vault-token", "token"); err != nil || string(b) != "env-token" {
		t.Errorf("chain prefers the environment: %q, %v", b, err)
	}
	if b, err := chain("shop", "file-only", "token"); err != nil || string(b) != "file-only-token" {
		t.Errorf("chain falls back to the file: %q, %v", b, err)
	}
	if b, err := chain("default", "approle", "secret-id"); err != nil || string(b) != "env-sid" {
		t.Errorf("env secret-id: %q, %v", b, err)
	}
	if _, err := chain("shop", "broken", "token"); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("a world-readable file: %v, want ErrFailedPrecondition", err)
	}
	_, err := chain("shop", "none", "token")
	if !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "GANTRY_CREDENTIAL_SHOP_NONE_TOKEN") ||
		!strings.Contains(err.Error(), filepath.Join(dir, "shop", "none", "token")) {
		t.Errorf("nothing configured: %v, want ErrNotFound naming the variable and the file", err)
	}

	t.Setenv("GANTRY_CREDENTIAL_SHOP_FROM_OS_TOKEN", " os-token\n")
	if b, err := ServerCredentials(dir)("shop", "from-os", "token"); err != nil || string(b) != "os-token" {
		t.Errorf("ServerCredentials reads the process environment: %q, %v", b, err)
	}
}

// TestStoreCredentialReference: a store asks its lookup for exactly the reference its
// manifest names (namespace, name, key); a SecretStore's reference to another
// namespace is refused before anything is looked up or sent.
func TestStoreCredentialReference(t *testing.T) {
	var asked []string
	lookup := func(ns, name, key string) ([]byte, error) {
		asked = append(asked, ns+"/"+name+"/"+key)
		return nil, api.ErrNotFound
	}
	r := New(WithCredentials(lookup))
	t.Cleanup(func() { _ = r.Close() })
	other := "ops"
	cases := []struct {
		name, kind, storeNS string
		ref                 manifest.SecretKeySelector
		want                string // the lookup asked for; "" = none
		wantErr             string
	}{
		{"own namespace", KindSecretStore, "shop", manifest.SecretKeySelector{Name: "vault-token", Key: "token"}, "shop/vault-token/token", "credential token"},
		{"other namespace", KindSecretStore, "shop", manifest.SecretKeySelector{Name: "vault-token", Key: "token", Namespace: &other}, "", `own namespace "shop", not "ops"`},
		{"cluster store default", KindClusterSecretStore, "", manifest.SecretKeySelector{Name: "vault-token", Key: "tok"}, "default/vault-token/tok", "credential token"},
		{"cluster store namespace", KindClusterSecretStore, "", manifest.SecretKeySelector{Name: "vault-token", Key: "token", Namespace: &other}, "ops/vault-token/token", "credential token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			asked = nil
			ref := tc.ref
			st := &manifest.SecretStore{Spec: manifest.SecretStoreSpec{Provider: manifest.SecretStoreProvider{Vault: &manifest.VaultProvider{
				Server: "http://127.0.0.1:1", Version: "v2", Auth: manifest.VaultAuth{TokenSecretRef: &ref}}}}}
			st.Kind, st.Name, st.Namespace = tc.kind, "vault-"+strings.ReplaceAll(tc.name, " ", "-"), tc.storeNS
			es := &manifest.ExternalSecret{}
			es.Name, es.Namespace = "app", "shop"
			es.Spec.SecretStoreRef = manifest.SecretStoreRef{Name: st.Name, Kind: tc.kind}
			es.Spec.Data = []manifest.ExternalSecretData{{SecretKey: "k", RemoteRef: manifest.RemoteReference{Key: "app", Property: "k"}}}
			_, err := r.Resolve(context.Background(), st, es)
			if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Resolve: %v, want Unavailable containing %q", err, tc.wantErr)
			}
			want := []string(nil)
			if tc.want != "" {
				want = []string{tc.want}
			}
			if diff := cmp.Diff(want, asked); diff != "" {
				t.Errorf("lookups (-want +got):\n%s", diff)
			}
		})
	}
}
