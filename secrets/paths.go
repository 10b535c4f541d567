package secrets

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gantry.io/gantry/api"
)

// KV engine versions accepted in provider.vault.version.
const (
	KVv1 = "v1"
	KVv2 = "v2"
)

// DefaultMount is the KV mount used when provider.vault.path is not set and the
// remote key does not name one itself: Vault dev servers and most installations mount
// KV v2 at "secret".
const DefaultMount = "secret"

// kvPath is one KV secret location.
type kvPath struct {
	mount   string // "secret" or "team/kv"
	secret  string // "app/db", below the mount
	version string // KVv1 or KVv2
}

// readPath is what the Logical API reads: "secret/data/app/db" for KV v2,
// "kv/app/db" for KV v1.
func (p kvPath) readPath() string {
	if p.version == KVv2 {
		return p.mount + "/data/" + p.secret
	}
	return p.mount + "/" + p.secret
}

// splitKey maps a remoteRef.key onto a KV mount as External Secrets Operator does:
// with provider.vault.path set, the key is below that mount (a leading "<mount>/" and,
// on v2, "<mount>/data/" are accepted and removed); without it, the key's first
// segment is the mount ("secret/app/db") — or, for a single-segment key, the key lives
// under DefaultMount. Empty, "." and ".." segments are refused so that a key can never
// leave its mount.
func splitKey(mount *string, version, key string) (kvPath, error) {
	if version == "" {
		version = KVv2
	}
	if version != KVv1 && version != KVv2 {
		return kvPath{}, fmt.Errorf("provider.vault.version %q: want %q or %q: %w", version, KVv1, KVv2, api.ErrInvalidArgument)
	}
	key = strings.Trim(key, "/")
	if key == "" {
		return kvPath{}, fmt.Errorf("remoteRef.key is empty: %w", api.ErrInvalidArgument)
	}
	var p kvPath
	p.version = version
	if mount != nil && strings.Trim(*mount, "/") != "" {
		p.mount = strings.Trim(*mount, "/")
		rest := key
		if r, ok := strings.CutPrefix(rest, p.mount+"/"); ok {
			rest = r
			if version == KVv2 {
				if r2, ok := strings.CutPrefix(rest, "data/"); ok {
					rest = r2
				}
			}
		}
		p.secret = rest
	} else {
		first, rest, ok := strings.Cut(key, "/")
		if !ok {
			p.mount, p.secret = DefaultMount, key
		} else {
			p.mount, p.secret = first, rest
			if version == KVv2 {
				if r, ok := strings.CutPrefix(rest, "data/"); ok {
					p.secret = r
				}
			}
		}
	}
	for _, part := range append(strings.Split(p.mount, "/"), strings.Split(p.secret, "/")...) {
		if part == "" || part == "." || part == ".." {
			return kvPath{}, fmt.Errorf("remoteRef.key %q: empty, \".\" or \"..\" path segment: %w", key, api.ErrInvalidArgument)
		}
	}
	return p, nil
}

// parseVersion checks a remoteRef.version: a positive integer, KV v2 only. An empty
// version means the latest.
func parseVersion(kv string, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	if kv != KVv2 {
		return 0, fmt.Errorf("remoteRef.version %q: versions exist on KV v2 only: %w", v, api.ErrInvalidArgument)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("remoteRef.version %q: want a positive integer: %w", v, api.ErrInvalidArgument)
	}
	return n, nil
}

// lookupProperty finds property in data: first as a top-level key (so "tls.crt" works
// as a plain key), then as a dot-separated path into nested objects and arrays
// ("db.hosts.0"). It reports false when nothing is there.
func lookupProperty(data map[string]any, property string) (any, bool) {
	if v, ok := data[property]; ok {
		return v, true
	}
	var cur any = data
	for _, part := range strings.Split(property, ".") {
		switch node := cur.(type) {
		case map[string]any:
			v, ok := node[part]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			cur = node[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// encodeValue renders one value the way External Secrets Operator does: a string as
// its bytes, anything else (numbers, booleans, null, objects, arrays) as JSON.
func encodeValue(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode value as JSON: %w", err)
	}
	return b, nil
}

// extractAll renders every property of data (dataFrom.extract), or of the object at
// property when one is given.
func extractAll(data map[string]any, property string) (map[string][]byte, error) {
	src := data
	if property != "" {
		v, ok := lookupProperty(data, property)
		if !ok {
			return nil, errPropertyMissing
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("property %q is not an object: %w", property, api.ErrInvalidArgument)
		}
		src = m
	}
	out := make(map[string][]byte, len(src))
	for k, v := range src {
		b, err := encodeValue(v)
		if err != nil {
			return nil, fmt.Errorf("property %q: %w", k, err)
		}
		out[k] = b
	}
	return out, nil
}

// errPropertyMissing marks a property that is not in the secret; callers turn it
// into an UnavailableError that names the property, never the secret's content.
var errPropertyMissing = fmt.Errorf("property missing: %w", api.ErrNotFound)

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
