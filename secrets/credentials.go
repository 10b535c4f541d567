package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"gantry.io/gantry/api"
	"gantry.io/gantry/manifest"
)

// DefaultCredentialsDir is where the server looks for credential files when no
// WithCredentials option is given: "credentials" under gantry's default data
// directory (/var/lib/gantry). `gantry up` and `gantry server` use
// DATA-DIR/credentials unless --vault-credentials-dir says otherwise.
const DefaultCredentialsDir = "/var/lib/gantry/credentials"

// CredentialLookup returns one key of a server-side credential: the value that a
// store's auth.tokenSecretRef, auth.appRole.roleRef or auth.appRole.secretRef
// ({name, key, namespace}, the External Secrets shape) points at. namespace is
// manifest.CredentialNamespace of the reference (never ""), name and key are the
// reference's own. It returns an error wrapping api.ErrNotFound when the credential is
// not configured.
//
// Credentials never come from git: no Secret object holds them. The reference is
// looked up on the server, as if the server held a Secret of that name (the
// convention of manifest.CredentialEnv and manifest.CredentialFile).
type CredentialLookup func(namespace, name, key string) ([]byte, error)

// CredentialsFromDir reads credentials from files on the server,
// DIR/<namespace>/<name>/<key> (manifest.CredentialFile): the token of a store whose
// tokenSecretRef is {name: vault-token, key: token} in namespace default is
// DIR/default/vault-token/token. Leading and trailing white space (a final newline) is
// removed. A file that other users may read (mode o+r) is refused, as ssh refuses a
// readable private key: make it 0600 or 0640.
func CredentialsFromDir(dir string) CredentialLookup {
	return func(ns, name, key string) ([]byte, error) {
		if err := checkNames(ns, name, key); err != nil {
			return nil, err
		}
		file := manifest.CredentialFile(dir, ns, manifest.SecretKeySelector{Name: name, Key: key})
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
// process, named by manifest.CredentialEnv: GANTRY_CREDENTIAL_<NAMESPACE>_<NAME>_<KEY>,
// upper-cased, every character other than A–Z and 0–9 turned into "_" (for example
// GANTRY_CREDENTIAL_DEFAULT_VAULT_TOKEN_TOKEN). getenv is os.Getenv when nil.
func CredentialsFromEnv(getenv func(string) string) CredentialLookup {
	if getenv == nil {
		getenv = os.Getenv
	}
	return func(ns, name, key string) ([]byte, error) {
		if err := checkNames(ns, name, key); err != nil {
			return nil, err
		}
		env := manifest.CredentialEnv(ns, manifest.SecretKeySelector{Name: name, Key: key})
		v := strings.TrimSpace(getenv(env))
		if v == "" {
			return nil, fmt.Errorf("environment variable %s is not set: %w", env, api.ErrNotFound)
		}
		return []byte(v), nil
	}
}

// FirstCredentials asks each lookup in turn and returns the first credential found. A
// lookup error other than api.ErrNotFound (an unreadable file, a file readable by
// everyone) stops the search: a broken credential must be fixed, not silently
// replaced by another source.
func FirstCredentials(lookups ...CredentialLookup) CredentialLookup {
	return func(ns, name, key string) ([]byte, error) {
		var missing []string
		for _, l := range lookups {
			b, err := l(ns, name, key)
			if err == nil {
				return b, nil
			}
			if !errors.Is(err, api.ErrNotFound) {
				return nil, err
			}
			missing = append(missing, err.Error())
		}
		return nil, fmt.Errorf("no credential %s/%s key %q: %s: %w", ns, name, key, strings.Join(missing, "; "), api.ErrNotFound)
	}
}

// ServerCredentials is the lookup of a gantry server: the environment variable first
// (CredentialsFromEnv), then the file under dir (CredentialsFromDir) — the order
// docs/MANIFESTS.md and docs/SECRETS.md give.
func ServerCredentials(dir string) CredentialLookup {
	return FirstCredentials(CredentialsFromEnv(nil), CredentialsFromDir(dir))
}

// DefaultCredentials is the lookup a Resolver uses without WithCredentials:
// ServerCredentials(DefaultCredentialsDir).
func DefaultCredentials() CredentialLookup {
	return ServerCredentials(DefaultCredentialsDir)
}

func checkNames(ns, name, key string) error {
	for _, n := range []string{ns, name, key} {
		if strings.ContainsAny(n, `/\`) || n == "." || n == ".." {
			return fmt.Errorf("credential name %q: must not contain a path separator or be . or ..: %w", n, api.ErrInvalidArgument)
		}
	}
	if ns == "" || name == "" || key == "" {
		return fmt.Errorf("credential lookup needs a namespace, a name and a key: %w", api.ErrInvalidArgument)
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
