// Package secrets resolves SecretStore / ClusterSecretStore / ExternalSecret objects
// against HashiCorp Vault, keeps values in memory only, rotates them on their refresh
// interval and redacts them everywhere else. Values must never reach etcd, logs,
// events, API responses or plan output.
package secrets
