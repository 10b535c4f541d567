package manifest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The External Secrets Operator shapes (external-secrets.io v1beta1 and v1) for the
// subset gantry implements: SecretStore / ClusterSecretStore with provider vault, and
// ExternalSecret with data[].remoteRef and dataFrom[].extract.

// SecretStore is a SecretStore or ClusterSecretStore; Kind tells which.
type SecretStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              SecretStoreSpec `json:"spec"`
}

// SecretStoreSpec names the provider. Only Vault is supported.
type SecretStoreSpec struct {
	Provider        SecretStoreProvider `json:"provider"`
	RefreshInterval int                 `json:"refreshInterval,omitempty"`
}

// SecretStoreProvider holds exactly one provider.
type SecretStoreProvider struct {
	Vault *VaultProvider `json:"vault,omitempty"`
}

// VaultProvider is how to reach Vault and which KV mount to read.
type VaultProvider struct {
	Server    string    `json:"server"`
	Path      *string   `json:"path,omitempty"`
	Version   string    `json:"version,omitempty"` // "v1" or "v2" (default "v2")
	Namespace *string   `json:"namespace,omitempty"`
	CABundle  []byte    `json:"caBundle,omitempty"`
	Auth      VaultAuth `json:"auth"`
}

// VaultAuth selects how gantry's server logs in to Vault.
type VaultAuth struct {
	TokenSecretRef *SecretKeySelector `json:"tokenSecretRef,omitempty"`
	AppRole        *VaultAppRole      `json:"appRole,omitempty"`
}

// VaultAppRole is AppRole login: roleId inline or from a secret, secretId from a secret.
type VaultAppRole struct {
	Path      string             `json:"path,omitempty"` // default "approle"
	RoleID    string             `json:"roleId,omitempty"`
	RoleRef   *SecretKeySelector `json:"roleRef,omitempty"`
	SecretRef SecretKeySelector  `json:"secretRef"`
}

// SecretKeySelector names a key of a Secret.
type SecretKeySelector struct {
	Name      string  `json:"name"`
	Namespace *string `json:"namespace,omitempty"`
	Key       string  `json:"key,omitempty"`
}

// ExternalSecret asks for a Secret named Spec.Target.Name built from store values.
type ExternalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              ExternalSecretSpec `json:"spec"`
}

// ExternalSecretSpec is the subset of the ESO spec gantry implements.
type ExternalSecretSpec struct {
	SecretStoreRef  SecretStoreRef               `json:"secretStoreRef"`
	Target          ExternalSecretTarget         `json:"target,omitempty"`
	RefreshInterval *metav1.Duration             `json:"refreshInterval,omitempty"`
	Data            []ExternalSecretData         `json:"data,omitempty"`
	DataFrom        []ExternalSecretDataFromItem `json:"dataFrom,omitempty"`
}

// SecretStoreRef points at a SecretStore (default) or ClusterSecretStore.
type SecretStoreRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

// ExternalSecretTarget names the Secret that pods consume.
type ExternalSecretTarget struct {
	Name string `json:"name,omitempty"` // default: the ExternalSecret's name
}

// ExternalSecretData maps one remote value to one key of the target Secret.
type ExternalSecretData struct {
	SecretKey string          `json:"secretKey"`
	RemoteRef RemoteReference `json:"remoteRef"`
}

// RemoteReference is a Vault path, optionally one property of it, optionally a version.
type RemoteReference struct {
	Key      string `json:"key"`
	Property string `json:"property,omitempty"`
	Version  string `json:"version,omitempty"`
}

// ExternalSecretDataFromItem copies every property of one remote path.
type ExternalSecretDataFromItem struct {
	Extract *RemoteReference `json:"extract,omitempty"`
}
