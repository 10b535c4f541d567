package diff

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sort"
)

// redacted stands in for a value that must never be shown; render prints it as
// it is ("(secret sha256:3f9a0c1b2d4e)"), so two versions of a value can be told
// apart in a review without the value itself appearing.
type redacted string

// fingerprint is the marker of a secret value: the first 12 hex digits of the
// SHA-256 of the value. It tells a reviewer whether a value changed; like any
// unsalted hash it does not hide a value that is easy to guess, which is one more
// reason secret values belong in Vault, not in git.
func fingerprint(value []byte) redacted {
	sum := sha256.Sum256(value)
	return redacted("(secret sha256:" + hex.EncodeToString(sum[:])[:12] + ")")
}

// lastApplied is the annotation kubectl writes with a copy of the whole object,
// values included.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// redact replaces, in the JSON tree of an object of kind, every value that may be
// secret by its fingerprint: a Secret's data (base64 in JSON, decoded before
// hashing) and stringData; a SecretStore's inline AppRole roleId and CA bundle; on
// any object, kubectl's last-applied-configuration annotation.
func redact(kind string, obj map[string]any) {
	if md, ok := obj["metadata"].(map[string]any); ok {
		if ann, ok := md["annotations"].(map[string]any); ok {
			if v, ok := ann[lastApplied].(string); ok {
				ann[lastApplied] = fingerprint([]byte(v))
			}
		}
	}
	switch kind {
	case "Secret":
		if data, ok := obj["data"].(map[string]any); ok {
			for k, v := range data {
				s, _ := v.(string)
				raw, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					raw = []byte(s)
				}
				data[k] = fingerprint(raw)
			}
		}
		if data, ok := obj["stringData"].(map[string]any); ok {
			for k, v := range data {
				s, _ := v.(string)
				data[k] = fingerprint([]byte(s))
			}
		}
	case "SecretStore", "ClusterSecretStore":
		vault := dig(obj, "spec", "provider", "vault")
		if vault == nil {
			return
		}
		if s, ok := vault["caBundle"].(string); ok {
			vault["caBundle"] = fingerprint([]byte(s))
		}
		if role := dig(vault, "auth", "appRole"); role != nil {
			if s, ok := role["roleId"].(string); ok {
				role["roleId"] = fingerprint([]byte(s))
			}
		}
	}
}

// dig walks nested maps; nil if a step is missing.
func dig(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
