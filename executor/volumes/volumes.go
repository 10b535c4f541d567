package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// Default file modes of projected files when the volume sets no defaultMode.
const (
	// DefaultConfigMapMode is the kubelet's default for configMap files.
	DefaultConfigMapMode os.FileMode = 0o644
	// DefaultSecretMode is gantry's default for secret files: owner-read only. (The
	// kubelet uses 0644; gantry is stricter, a container running as another user needs
	// defaultMode or runAsUser.)
	DefaultSecretMode os.FileMode = 0o400
)

// Data holds the ConfigMaps and Secrets a pod's volumes refer to, already resolved by the
// caller, keyed by name (they are in the pod's namespace). A name that is absent means the
// object does not exist.
type Data struct {
	ConfigMaps map[string]*corev1.ConfigMap
	Secrets    map[string]*corev1.Secret
}

// Layout under podDir: volumes/<kind>/<volume name>.
const (
	kindEmptyDir  = "empty-dir"
	kindConfigMap = "configmap"
	kindSecret    = "secret"
)

// Prepare creates the host side of every volume of pod under podDir and returns, for
// each volume name, the host path the executor bind-mounts into the containers:
//
//   - emptyDir: podDir/volumes/empty-dir/NAME, mode 0777 so any container user can write;
//     medium Memory mounts a tmpfs there, sizeLimit as its size (on disk, sizeLimit is not
//     enforced).
//   - hostPath: the path itself, after the type's check (DirectoryOrCreate and
//     FileOrCreate create it: a directory 0755, an empty file 0644, whose parent must
//     exist).
//   - configMap, secret: podDir/volumes/{configmap,secret}/NAME, files written
//     atomically (see Update); secret volumes are a tmpfs mount. A missing object (or
//     key named in items) is an error wrapping api.ErrNotFound unless the volume is
//     optional, which gives an empty directory (or skips the key).
//
// Other volume types are api.ErrInvalidArgument. Prepare is idempotent: calling it again
// re-checks hostPaths, re-mounts what is missing and rewrites configMap/secret contents
// only if they changed. Errors name the volume (and the path for hostPath). On error,
// what was created stays for Cleanup to remove.
func Prepare(podDir string, pod *corev1.Pod, data Data) (map[string]string, error) {
	root, err := volumesRoot(podDir, pod)
	if err != nil {
		return nil, err
	}
	paths := make(map[string]string, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := validVolumeName(v.Name); err != nil {
			return nil, podErr(pod, err)
		}
		if _, dup := paths[v.Name]; dup {
			return nil, podErr(pod, fmt.Errorf("volume %q is declared twice: %w", v.Name, api.ErrInvalidArgument))
		}
		p, err := prepareOne(root, v, data)
		if err != nil {
			return nil, podErr(pod, fmt.Errorf("volume %q: %w", v.Name, err))
		}
		paths[v.Name] = p
	}
	return paths, nil
}

func prepareOne(root string, v *corev1.Volume, data Data) (string, error) {
	switch {
	case v.EmptyDir != nil:
		return prepareEmptyDir(filepath.Join(root, kindEmptyDir, v.Name), v.EmptyDir)
	case v.HostPath != nil:
		return prepareHostPath(v.HostPath)
	case v.ConfigMap != nil:
		dir := filepath.Join(root, kindConfigMap, v.Name)
		return dir, writeConfigMap(dir, v.ConfigMap, data)
	case v.Secret != nil:
		dir := filepath.Join(root, kindSecret, v.Name)
		return dir, writeSecret(dir, v.Secret, data)
	default:
		return "", fmt.Errorf("volume type is not supported yet (supported: emptyDir, hostPath, configMap, secret): %w",
			api.ErrInvalidArgument)
	}
}

// Update rewrites the files of pod's configMap and secret volumes from data, each
// volume with one atomic ..data swap, without remounting: containers see the new set
// through their existing bind mounts. Files of keys that left the object disappear. A
// volume whose object (or item key) is now missing keeps its old contents and Update
// returns an error wrapping api.ErrNotFound, unless the volume is optional (then it is
// emptied). A volume Prepare did not create is api.ErrFailedPrecondition.
func Update(podDir string, pod *corev1.Pod, data Data) error {
	root, err := volumesRoot(podDir, pod)
	if err != nil {
		return err
	}
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		var kind string
		switch {
		case v.ConfigMap != nil:
			kind = kindConfigMap
		case v.Secret != nil:
			kind = kindSecret
		default:
			continue
		}
		if err := validVolumeName(v.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		dir := filepath.Join(root, kind, v.Name)
		if _, err := os.Stat(dir); err != nil {
			errs = append(errs, fmt.Errorf("volume %q: not prepared (%v): %w", v.Name, err, api.ErrFailedPrecondition))
			continue
		}
		if kind == kindConfigMap {
			err = writeConfigMap(dir, v.ConfigMap, data)
		} else {
			err = writeSecret(dir, v.Secret, data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
		}
	}
	if len(errs) > 0 {
		return podErr(pod, errors.Join(errs...))
	}
	return nil
}

// Cleanup unmounts every mount at or below podDir (tmpfs volumes, and anything else
// mounted there) and removes podDir. Nothing is removed while a mount remains, so a
// bind mount of host data under podDir is never deleted through. A missing podDir is
// not an error.
func Cleanup(podDir string) error {
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return fmt.Errorf("cleaning up %s: %w", podDir, err)
	}
	if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := unmountAll(abs); err != nil {
		return fmt.Errorf("cleaning up %s: %w", abs, err)
	}
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("cleaning up %s: %w", abs, err)
	}
	return nil
}

func volumesRoot(podDir string, pod *corev1.Pod) (string, error) {
	if pod == nil {
		return "", fmt.Errorf("no pod given: %w", api.ErrInvalidArgument)
	}
	if podDir == "" {
		return "", podErr(pod, fmt.Errorf("empty pod dir: %w", api.ErrInvalidArgument))
	}
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return "", podErr(pod, fmt.Errorf("pod dir %s: %w", podDir, err))
	}
	return filepath.Join(abs, "volumes"), nil
}

func podErr(pod *corev1.Pod, err error) error {
	return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
}

// volumeNamePattern is a DNS label, as Kubernetes requires of volume names.
var volumeNamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func validVolumeName(n string) error {
	if len(n) > 63 || !volumeNamePattern.MatchString(n) {
		return fmt.Errorf("volume name %q is not a DNS label: %w", n, api.ErrInvalidArgument)
	}
	return nil
}

func prepareEmptyDir(dir string, src *corev1.EmptyDirVolumeSource) (string, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	switch src.Medium {
	case corev1.StorageMediumDefault:
	case corev1.StorageMediumMemory:
		var size int64
		if src.SizeLimit != nil {
			size = src.SizeLimit.Value()
			if size <= 0 {
				return "", fmt.Errorf("sizeLimit %s must be positive: %w", src.SizeLimit, api.ErrInvalidArgument)
			}
		}
		if err := mountTmpfs(dir, size, false); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("emptyDir medium %q is not supported (use \"\" or Memory): %w", src.Medium, api.ErrInvalidArgument)
	}
	// After the mount, so a tmpfs root is world-writable too; chmod ignores the umask.
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", fmt.Errorf("chmod %s: %w", dir, err)
	}
	return dir, nil
}
