package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gantry.io/gantry/api"
)

// Credential names: what a store's auth asks its CredentialLookup for.
const (
	// CredToken is the Vault token of a store with auth.tokenSecretRef.
	CredToken = "token"
	// CredRoleID is the AppRole role ID of a store with auth.appRole.roleRef (an inline
	// auth.appRole.roleId needs no lookup).
	CredRoleID = "role-id"
	// CredSecretID is the AppRole secret ID of a store with auth.appRole.
	CredSecretID = "secret-id"
)

// DefaultCredentialsDir is where the server looks for store credentials when no
// WithCredentials option is given (see CredentialsFromDir).
const DefaultCredentialsDir = "/etc/gantry/vault"

// ClusterStoreDir is the directory (and the namespace part of the environment variable)
// that holds a ClusterSecretStore's credentials. The underscore cannot start a
// Kubernetes namespace name, so it never collides with one.
const ClusterStoreDir = "_cluster"

// CredentialLookup returns the credential key (CredToken, CredRoleID, CredSecretID) of
// the store named storeName in storeNamespace; storeNamespace is "" for a
// ClusterSecretStore. It returns an error wrapping api.ErrNotFound when the credential
// is not configured. Credentials never come from git: manifests only say which auth
// method a store uses, the server supplies the material.
type CredentialLookup func(storeNamespace, storeName, key string) ([]byte, error)

// CredentialsFromDir reads credentials from files on the server:
//
//	DIR/<namespace>/<store>/<key>      a SecretStore
//	DIR/_cluster/<store>/<key>         a ClusterSecretStore
//
// where key is "token", "role-id" or "secret-id". Leading and trailing white space
// (a final newline) is removed. A file that other users may read (mode o+r) is refused,
// as ssh refuses a readable private key: make it 0600 or 0640.
func CredentialsFromDir(dir string) CredentialLookup {
	return func(ns, store, key string) ([]byte, error) {
		if err := checkNames(ns, store, key); err != nil {
			return nil, err
		}
		if ns == "" {
			ns = ClusterStoreDir
		}
		file := filepath.Join(dir, ns, store, key)
		st, err := os.Stat(file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("credential file %s: %w", file, api.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("credential file %s: %w", file, err)
		}
		if st.Mode().Perm()&0o004 != 0 {
			return nil, fmt.Errorf("credential file %s is readable by every user (mode %v); chmod o-r it: %w",
				file, st.Mode().Perm(), api.ErrFailedPrecondition)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("credential file %s: %w", file, err)
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return nil, fmt.Errorf("credential file %s is empty: %w", file, api.ErrNotFound)
		}
		return b, nil
	}
}

// CredentialsFromEnv reads credentials from environment variables of the server
// process, named by EnvName. getenv is os.Getenv when nil.
func CredentialsFromEnv(getenv func(string) string) CredentialLookup {
	if getenv == nil {
		getenv = os.Getenv
	}
	return func(ns, store, key string) ([]byte, error) {
		if err := checkNames(ns, store, key); err != nil {
			return nil, err
		}
		name := EnvName(ns, store, key)
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is not set: %w", name, api.ErrNotFound)
		}
		return []byte(v), nil
	}
}

// EnvName is the environment variable that holds a store credential:
// GANTRY_VAULT_<NAMESPACE>__<STORE>__<KEY>, upper-cased, with "-" and "." turned into
// "_"; a ClusterSecretStore uses "_CLUSTER" as its namespace. For example the token of
// SecretStore "vault-backend" in namespace "shop" is GANTRY_VAULT_SHOP__VAULT_BACKEND__TOKEN.
func EnvName(ns, store, key string) string {
	if ns == "" {
		ns = ClusterStoreDir
	}
	up := strings.NewReplacer("-", "_", ".", "_")
	return "GANTRY_VAULT_" + strings.ToUpper(up.Replace(ns)+"__"+up.Replace(store)+"__"+up.Replace(key))
}

// FirstCredentials asks each lookup in turn and returns the first credential found. A
// lookup error other than api.ErrNotFound (an unreadable file, a file readable by
// everyone) stops the search: a broken credential must be fixed, not silently
// replaced by another source.
func FirstCredentials(lookups ...CredentialLookup) CredentialLookup {
	return func(ns, store, key string) ([]byte, error) {
		var missing []string
		for _, l := range lookups {
			b, err := l(ns, store, key)
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, api.ErrNotFound) {
				return nil, err
			}
			missing = append(missing, err.Error())
		}
		return nil, fmt.Errorf("no %s credential for store %s: %s: %w", key, storeName(ns, store), strings.Join(missing, "; "), api.ErrNotFound)
	}
}

// DefaultCredentials is the lookup a Resolver uses without WithCredentials: files under
// DefaultCredentialsDir first, then environment variables.
func DefaultCredentials() CredentialLookup {
	return FirstCredentials(CredentialsFromDir(DefaultCredentialsDir), CredentialsFromEnv(nil))
}

func checkNames(ns, store, key string) error {
	for _, n := range []string{ns, store, key} {
		if strings.ContainsAny(n, `/\`) || n == "." || n == ".." {
			return fmt.Errorf("credential name %q: must not contain a path separator or be . or ..: %w", n, api.ErrInvalidArgument)
		}
	}
	if store == "" || key == "" {
		return fmt.Errorf("credential lookup needs a store name and a key: %w", api.ErrInvalidArgument)
	}
	return nil
}

// storeName is how errors and logs name a store: "namespace/name" or, for a
// ClusterSecretStore, its name.
func storeName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
