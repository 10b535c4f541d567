package manifest

import (
	"path/filepath"
	"strings"
)

// Store credentials. A SecretStore's auth.tokenSecretRef, appRole.roleRef and
// appRole.secretRef name a credential with the External Secrets shape {name, key,
// namespace}. In gantry no Secret object holds it (secret values never live in git):
// the gantry server provides it, from a file or from its environment. Validation
// therefore accepts any well-formed reference without looking for a Secret in the
// tree. The conventions below are the contract between manifests and the server:
// package secrets (secrets.ServerCredentials) reads exactly these names, the
// environment variable first, then the file. A SecretStore may only name credentials
// of its own namespace (secrets refuses another namespace at resolution, see
// docs/SECRETS.md); a ClusterSecretStore may name any.

// CredentialNamespace is the namespace a credential reference resolves in: the
// reference's own namespace, else the store's, else "default" (ClusterSecretStores,
// whose storeNamespace is "").
func CredentialNamespace(storeNamespace string, ref SecretKeySelector) string {
	switch {
	case ref.Namespace != nil && *ref.Namespace != "":
		return *ref.Namespace
	case storeNamespace != "":
		return storeNamespace
	}
	return DefaultNamespace
}

// CredentialFile is the file that holds a credential below the server's credentials
// directory dir: dir/<namespace>/<name>/<key>, e.g.
// /var/lib/gantry/credentials/default/vault-token/token.
func CredentialFile(dir, storeNamespace string, ref SecretKeySelector) string {
	return filepath.Join(dir, CredentialNamespace(storeNamespace, ref), ref.Name, ref.Key)
}

// CredentialEnv is the environment variable that may hold a credential instead of
// the file: GANTRY_CREDENTIAL_<NAMESPACE>_<NAME>_<KEY>, upper-cased, with every
// character other than A–Z and 0–9 turned into "_", e.g.
// GANTRY_CREDENTIAL_DEFAULT_VAULT_TOKEN_TOKEN.
func CredentialEnv(storeNamespace string, ref SecretKeySelector) string {
	parts := []string{"GANTRY_CREDENTIAL", CredentialNamespace(storeNamespace, ref), ref.Name, ref.Key}
	s := strings.ToUpper(strings.Join(parts, "_"))
	return strings.Map(func(r rune) rune {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			return r
		}
		return '_'
	}, s)
}
