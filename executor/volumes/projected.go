package volumes

import (
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// writeConfigMap writes a configMap volume's files into dir.
func writeConfigMap(dir string, src *corev1.ConfigMapVolumeSource, data Data) error {
	optional := src.Optional != nil && *src.Optional
	mode, err := fileMode(src.DefaultMode, DefaultConfigMapMode, "defaultMode")
	if err != nil {
		return err
	}
	var payload map[string]file
	cm := data.ConfigMaps[src.Name]
	switch {
	case cm != nil:
		all := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, v := range cm.Data {
			all[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			if _, dup := all[k]; dup {
				return fmt.Errorf("configMap %q: key %q is in both data and binaryData: %w", src.Name, k, api.ErrInvalidArgument)
			}
			all[k] = v
		}
		if payload, err = project(all, src.Items, mode, optional, "configMap", src.Name); err != nil {
			return err
		}
	case !optional:
		return fmt.Errorf("configMap %q not found (mark the volume optional to start without it): %w", src.Name, api.ErrNotFound)
	}
	_, err = writeAtomic(dir, payload)
	return err
}

// writeSecret writes a secret volume's files into dir, a tmpfs mounted first so the
// values never reach the disk.
func writeSecret(dir string, src *corev1.SecretVolumeSource, data Data) error {
	optional := src.Optional != nil && *src.Optional
	mode, err := fileMode(src.DefaultMode, DefaultSecretMode, "defaultMode")
	if err != nil {
		return err
	}
	var payload map[string]file
	s := data.Secrets[src.SecretName]
	switch {
	case s != nil:
		all := make(map[string][]byte, len(s.Data)+len(s.StringData))
		for k, v := range s.Data {
			all[k] = v
		}
		for k, v := range s.StringData { // stringData wins, as in the Kubernetes API
			all[k] = []byte(v)
		}
		if payload, err = project(all, src.Items, mode, optional, "secret", src.SecretName); err != nil {
			return err
		}
	case !optional:
		return fmt.Errorf("secret %q not found (mark the volume optional to start without it): %w", src.SecretName, api.ErrNotFound)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := mountTmpfs(dir, 0, true); err != nil {
		return err
	}
	_, err = writeAtomic(dir, payload)
	return err
}

// project selects the files of a configMap or secret: every key (at path key, with
// defaultMode) without items, else each item's key at its path with its mode. A key of
// items that is missing is an error unless optional.
func project(all map[string][]byte, items []corev1.KeyToPath, defaultMode os.FileMode, optional bool, kind, name string) (map[string]file, error) {
	out := make(map[string]file, len(all))
	if len(items) == 0 {
		for k, v := range all {
			if err := validRelPath(k); err != nil {
				return nil, fmt.Errorf("%s %q: key %q: %w", kind, name, k, err)
			}
			out[k] = file{data: v, mode: defaultMode}
		}
		return out, nil
	}
	for _, it := range items {
		v, ok := all[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("%s %q has no key %q (named in items): %w", kind, name, it.Key, api.ErrNotFound)
		}
		if err := validRelPath(it.Path); err != nil {
			return nil, fmt.Errorf("%s %q: item %q: %w", kind, name, it.Key, err)
		}
		mode, err := fileMode(it.Mode, defaultMode, "mode of item "+it.Key)
		if err != nil {
			return nil, err
		}
		if _, dup := out[it.Path]; dup {
			return nil, fmt.Errorf("%s %q: two items have path %q: %w", kind, name, it.Path, api.ErrInvalidArgument)
		}
		out[it.Path] = file{data: v, mode: mode}
	}
	return out, nil
}

// fileMode returns *m as a mode (0-0777), or def when m is nil.
func fileMode(m *int32, def os.FileMode, what string) (os.FileMode, error) {
	if m == nil {
		return def, nil
	}
	if *m < 0 || *m > 0o777 {
		return 0, fmt.Errorf("%s %#o is outside 0-0777: %w", what, *m, api.ErrInvalidArgument)
	}
	return os.FileMode(*m), nil
}
