package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gantry.io/gantry/api"
)

// A configMap or secret volume directory looks like the kubelet's:
//
//	dir/..data -> ..2026_12_01_19_55_00.123456789     (the current set, swapped atomically)
//	dir/..2026_12_01_19_55_00.123456789/key            (the files, with their modes)
//	dir/key -> ..data/key                              (what containers open)
//
// A new set is written to a fresh timestamped directory, then a symlink ..data_tmp to it
// is renamed over ..data: rename(2) is atomic, so a reader that resolves ..data sees the
// old set or the new one, complete.
const (
	dataLink    = "..data"
	newDataLink = "..data_tmp"
	tsLayout    = "..2006_01_02_15_04_05."
)

// file is one projected file: its contents and permission bits.
type file struct {
	data []byte
	mode os.FileMode
}

// validRelPath checks a projected file path: relative, no "..", and not starting with
// "..", which is reserved for the writer's own entries.
func validRelPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty file path: %w", api.ErrInvalidArgument)
	case filepath.IsAbs(p):
		return fmt.Errorf("file path %q must be relative: %w", p, api.ErrInvalidArgument)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("file path %q must not start with \"..\": %w", p, api.ErrInvalidArgument)
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." || el == "" || el == "." {
			return fmt.Errorf("file path %q must not contain empty, \".\" or \"..\" elements: %w", p, api.ErrInvalidArgument)
		}
	}
	return nil
}

// writeAtomic makes dir hold exactly payload (relative path → file) through a ..data
// swap. If the current set already equals payload nothing is rewritten. It reports
// whether a new set was swapped in.
func writeAtomic(dir string, payload map[string]file) (bool, error) {
	for p := range payload {
		if err := validRelPath(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	current, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading %s: %w", filepath.Join(dir, dataLink), err)
	}
	changed := true
	if current != "" {
		same, err := sameContents(filepath.Join(dir, current), payload)
		if err != nil {
			return false, err
		}
		changed = !same
	}
	if changed {
		if current, err = writeSet(dir, payload); err != nil {
			return false, err
		}
	}
	if err := linkTopLevel(dir, payload); err != nil {
		return false, err
	}
	// Old sets go last: a reader that resolved ..data just before the swap may still be
	// reading one; removing it then makes that reader fail, not read a mix.
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "..") && n != dataLink && n != current {
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return false, fmt.Errorf("removing old set %s: %w", n, err)
			}
		}
	}
	return changed, nil
}

// writeSet writes payload into a new timestamped directory of dir and swaps ..data to
// it; it returns the new directory's name.
func writeSet(dir string, payload map[string]file) (string, error) {
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format(tsLayout))
	if err != nil {
		return "", fmt.Errorf("creating a new set in %s: %w", dir, err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(ts)
		return "", err
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return fail(fmt.Errorf("chmod %s: %w", ts, err))
	}
	for p, f := range payload {
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fail(fmt.Errorf("creating %s: %w", filepath.Dir(full), err))
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return fail(fmt.Errorf("writing %s: %w", p, err))
		}
		// WriteFile's mode is filtered by the umask; the requested bits are the contract.
		if err := os.Chmod(full, f.mode); err != nil {
			return fail(fmt.Errorf("chmod %s: %w", p, err))
		}
	}
	tmp := filepath.Join(dir, newDataLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("removing stale %s: %w", tmp, err))
	}
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return fail(fmt.Errorf("linking the new set: %w", err))
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		os.Remove(tmp)
		return fail(fmt.Errorf("swapping %s: %w", dataLink, err))
	}
	return filepath.Base(ts), nil
}

// linkTopLevel makes dir/top -> ..data/top for each top-level entry of payload and
// removes the user-visible links of entries that are gone.
func linkTopLevel(dir string, payload map[string]file) error {
	tops := map[string]bool{}
	for p := range payload {
		tops[strings.SplitN(p, "/", 2)[0]] = true
	}
	for top := range tops {
		link, want := filepath.Join(dir, top), filepath.Join(dataLink, top)
		if got, err := os.Readlink(link); err == nil && got == want {
			continue
		}
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("replacing %s: %w", link, err)
		}
		if err := os.Symlink(want, link); err != nil {
			return fmt.Errorf("linking %s: %w", top, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if n := e.Name(); !strings.HasPrefix(n, "..") && !tops[n] {
			if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("removing %s: %w", n, err)
			}
		}
	}
	return nil
}

// sameContents reports whether set (a timestamped directory) holds exactly payload.
func sameContents(set string, payload map[string]file) (bool, error) {
	seen := 0
	err := filepath.WalkDir(set, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(set, p)
		if err != nil {
			return err
		}
		want, ok := payload[rel]
		if !ok {
			return errDiffers
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() || info.Mode().Perm() != want.mode {
			return errDiffers
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want.data) {
			return errDiffers
		}
		seen++
		return nil
	})
	switch {
	case errors.Is(err, errDiffers), errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("comparing %s: %w", set, err)
	}
	return seen == len(payload), nil
}

var errDiffers = errors.New("contents differ")
