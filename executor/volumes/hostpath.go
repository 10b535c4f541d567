package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
)

// prepareHostPath checks (or creates) a hostPath volume's path according to its type and
// returns it. A path that fails its check is api.ErrFailedPrecondition (the node lacks
// it; the pod may start once it appears); a malformed volume is api.ErrInvalidArgument.
func prepareHostPath(src *corev1.HostPathVolumeSource) (string, error) {
	p := src.Path
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hostPath %q must be absolute: %w", p, api.ErrInvalidArgument)
	}
	p = filepath.Clean(p)
	typ := corev1.HostPathUnset
	if src.Type != nil {
		typ = *src.Type
	}
	info, statErr := os.Stat(p)
	missing := errors.Is(statErr, fs.ErrNotExist)
	if statErr != nil && !missing {
		return "", fmt.Errorf("hostPath %s: %w", p, statErr)
	}
	mismatch := func(want string) error {
		if missing {
			return fmt.Errorf("hostPath %s (type %s): nothing exists there, want %s: %w", p, typ, want, api.ErrFailedPrecondition)
		}
		return fmt.Errorf("hostPath %s (type %s): is a %s, want %s: %w", p, typ, describe(info.Mode()), want, api.ErrFailedPrecondition)
	}
	switch typ {
	case corev1.HostPathUnset:
		return p, nil
	case corev1.HostPathDirectoryOrCreate:
		if missing {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", fmt.Errorf("hostPath %s (type %s): creating it: %w", p, typ, err)
			}
			return p, nil
		}
		if !info.IsDir() {
			return "", mismatch("a directory")
		}
	case corev1.HostPathDirectory:
		if missing || !info.IsDir() {
			return "", mismatch("a directory")
		}
	case corev1.HostPathFileOrCreate:
		if missing {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("hostPath %s (type %s): creating it (its directory must exist): %w", p, typ, err)
			}
			if f != nil {
				f.Close()
			}
			return p, nil
		}
		if !info.Mode().IsRegular() {
			return "", mismatch("a file")
		}
	case corev1.HostPathFile:
		if missing || !info.Mode().IsRegular() {
			return "", mismatch("a file")
		}
	case corev1.HostPathSocket:
		if missing || info.Mode().Type() != fs.ModeSocket {
			return "", mismatch("a socket")
		}
	case corev1.HostPathCharDev:
		if missing || info.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice {
			return "", mismatch("a character device")
		}
	case corev1.HostPathBlockDev:
		if missing || info.Mode().Type() != fs.ModeDevice {
			return "", mismatch("a block device")
		}
	default:
		return "", fmt.Errorf("hostPath %s: unknown type %q (want \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice or BlockDevice): %w",
			p, typ, api.ErrInvalidArgument)
	}
	return p, nil
}

func describe(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "file"
	case t&fs.ModeDir != 0:
		return "directory"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeCharDevice != 0:
		return "character device"
	case t&fs.ModeDevice != 0:
		return "block device"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	default:
		return "special file"
	}
}
