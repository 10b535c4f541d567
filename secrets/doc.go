// Package secrets resolves SecretStore / ClusterSecretStore / ExternalSecret objects
// (the External Secrets Operator shapes decoded by package manifest) against HashiCorp
// Vault through github.com/hashicorp/vault/api, keeps the values in memory only,
// refreshes them on their refresh interval and redacts them everywhere else.
//
// It owns: one Vault client per store (login with a token or AppRole, token renewal,
// re-login), KV v1 and v2 reads (paths, version pinning, property extraction,
// dataFrom extract), the Cache of resolved values with back-off and change reports by
// hash, the Redactor and the value-free Describe view.
//
// It must never write a value anywhere — not to etcd, logs, events, errors or API
// responses — and never takes credentials from git: they come from the server
// (CredentialLookup). Errors name the store, the Vault path and Vault's reason;
// *UnavailableError marks what a retry may fix (api.ErrUnavailable).
//
// See README.md beside this file for the pipeline and docs/SECRETS.md for the user's
// view.
package secrets
