package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gantry.io/gantry/api"
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
	writeFile(t, filepath.Join(dir, "shop", "vault", "token"), "hvs.shop-token\n", 0o600)
	writeFile(t, filepath.Join(dir, ClusterStoreDir, "global", "secret-id"), "  sid-global  ", 0o640)
	writeFile(t, filepath.Join(dir, "shop", "open", "token"), "everyone-reads", 0o644)
	writeFile(t, filepath.Join(dir, "shop", "empty", "token"), "\n", 0o600)
	lookup := CredentialsFromDir(dir)

	if b, err := lookup("shop", "vault", CredToken); err != nil || string(b) != "hvs.shop-token" {
		t.Errorf("namespaced token = %q, %v", b, err)
	}
	if b, err := lookup("", "global", CredSecretID); err != nil || string(b) != "sid-global" {
		t.Errorf("cluster store secret-id = %q, %v", b, err)
	}
	if _, err := lookup("shop", "vault", CredSecretID); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing file: %v, want ErrNotFound", err)
	}
	if _, err := lookup("shop", "empty", CredToken); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("empty file: %v, want ErrNotFound", err)
	}
	_, err := lookup("shop", "open", CredToken)
	if !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("world-readable file: %v, want ErrFailedPrecondition", err)
	}
	if err != nil && strings.Contains(err.Error(), "everyone-reads") {
		t.Errorf("error shows the credential: %v", err)
	}
	for _, bad := range [][3]string{{"..", "x", CredToken}, {"shop", "../shop/vault", CredToken}, {"shop", "vault", "../token"}, {"shop", "", CredToken}} {
		if _, err := lookup(bad[0], bad[1], bad[2]); !errors.Is(err, api.ErrInvalidArgument) {
			t.Errorf("lookup%q: %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestCredentialsFromEnvAndChain(t *testing.T) {
	env := map[string]string{
		"GANTRY_VAULT_SHOP__VAULT_BACKEND__TOKEN":  "env-token",
		"GANTRY_VAULT__CLUSTER__GLOBAL__SECRET_ID": "env-sid",
	}
	getenv := func(k string) string { return env[k] }
	if got := EnvName("shop", "vault-backend", CredToken); got != "GANTRY_VAULT_SHOP__VAULT_BACKEND__TOKEN" {
		t.Errorf("EnvName = %s", got)
	}
	if got := EnvName("", "global", CredSecretID); got != "GANTRY_VAULT__CLUSTER__GLOBAL__SECRET_ID" {
		t.Errorf("EnvName(cluster) = %s", got)
	}
	envLookup := CredentialsFromEnv(getenv)
	if b, err := envLookup("shop", "vault-backend", CredToken); err != nil || string(b) != "env-token" {
		t.Errorf("env token = %q, %v", b, err)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "shop", "vault-backend", "token"), "file-token", 0o600)
	writeFile(t, filepath.Join(dir, "shop", "broken", "token"), "world", 0o604)
	env["GANTRY_VAULT_SHOP__BROKEN__TOKEN"] = "env-broken"
	chain := FirstCredentials(CredentialsFromDir(dir), envLookup)
	if b, err := chain("shop", "vault-backend", CredToken); err != nil || string(b) != "file-token" {
		t.Errorf("chain prefers the file: %q, %v", b, err)
	}
	if b, err := chain("", "global", CredSecretID); err != nil || string(b) != "env-sid" {
		t.Errorf("chain falls back to env: %q, %v", b, err)
	}
	if _, err := chain("shop", "broken", CredToken); !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("a broken file must not fall back to env: %v", err)
	}
	if _, err := chain("shop", "none", CredToken); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("nothing configured: %v, want ErrNotFound", err)
	}
}
