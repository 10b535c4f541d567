package gitsync

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"gantry.io/gantry/api"
)

// DefaultMaxSnapshotBytes caps the total size of the manifest files of one snapshot.
const DefaultMaxSnapshotBytes = 64 << 20

// Snapshot is the desired state at one commit: the manifest files under Source.Path.
type Snapshot struct {
	// Revision is the commit SHA (hex).
	Revision string
	// Ref is the full name of the ref it was resolved from ("refs/heads/main",
	// "refs/tags/v1"), or the commit SHA when Source.Ref is a commit.
	Ref string
	// Files maps paths relative to Source.Path (slash-separated, e.g. "apps/web.yaml")
	// to contents. Only regular files ending in .yaml or .yml (any case) are included;
	// files and directories whose name starts with "." (like .github/) are skipped, and
	// so are symlinks and submodules. If Source.Path names a file, the map holds that
	// one file under its base name.
	Files map[string][]byte
	// Author is the commit author as "Name <email>".
	Author string
	// Message is the full commit message.
	Message string
	// Time is the committer time (when the commit was made, not authored).
	Time time.Time
	// SignedBy is the fingerprint of the key that signed the commit, when signature
	// verification is on; empty otherwise.
	SignedBy string
}

func isManifestName(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")
}

func hidden(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// snapshotOf reads the manifest files of commit c under dir. It returns ErrNotFound
// if dir does not exist at that commit and ErrInvalidArgument if it names a file that
// is not a manifest or the files exceed maxBytes.
func snapshotOf(c *object.Commit, ref, dir string, maxBytes int64) (*Snapshot, error) {
	snap := &Snapshot{
		Revision: c.Hash.String(),
		Ref:      ref,
		Files:    map[string][]byte{},
		Author:   fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Message:  c.Message,
		Time:     c.Committer.When,
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("commit %s: read tree: %w", snap.Revision, err)
	}
	var total int64
	add := func(name string, f *object.File) error {
		total += f.Size
		if total > maxBytes {
			return fmt.Errorf("commit %s: manifest files under %q exceed %d bytes: %w", snap.Revision, displayPath(dir), maxBytes, api.ErrInvalidArgument)
		}
		b, err := readBlob(f)
		if err != nil {
			return fmt.Errorf("commit %s: read %s: %w", snap.Revision, path.Join(dir, name), err)
		}
		snap.Files[name] = b
		return nil
	}
	tree := root
	if dir != "" {
		entry, err := root.FindEntry(dir)
		if err != nil {
			if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
				return nil, fmt.Errorf("commit %s: path %q does not exist: %w", snap.Revision, dir, api.ErrNotFound)
			}
			return nil, fmt.Errorf("commit %s: path %q: %w", snap.Revision, dir, err)
		}
		switch {
		case entry.Mode == filemode.Dir:
			tree, err = root.Tree(dir)
			if err != nil {
				return nil, fmt.Errorf("commit %s: path %q: %w", snap.Revision, dir, err)
			}
		case entry.Mode.IsFile() && entry.Mode != filemode.Symlink:
			if !isManifestName(dir) {
				return nil, fmt.Errorf("commit %s: path %q is a file but not a .yaml/.yml manifest: %w", snap.Revision, dir, api.ErrInvalidArgument)
			}
			f, err := root.File(dir)
			if err != nil {
				return nil, fmt.Errorf("commit %s: path %q: %w", snap.Revision, dir, err)
			}
			if err := add(path.Base(dir), f); err != nil {
				return nil, err
			}
			return snap, nil
		default:
			return nil, fmt.Errorf("commit %s: path %q is a %s, not a directory or a manifest file: %w", snap.Revision, dir, modeName(entry.Mode), api.ErrInvalidArgument)
		}
	}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("commit %s: walk %q: %w", snap.Revision, displayPath(dir), err)
		}
		if entry.Mode != filemode.Regular && entry.Mode != filemode.Executable {
			continue
		}
		if hidden(name) || !isManifestName(name) {
			continue
		}
		f, err := tree.TreeEntryFile(&entry)
		if err != nil {
			return nil, fmt.Errorf("commit %s: read %s: %w", snap.Revision, path.Join(dir, name), err)
		}
		if err := add(name, f); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

func readBlob(f *object.File) ([]byte, error) {
	r, err := f.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func displayPath(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

func modeName(m filemode.FileMode) string {
	switch m {
	case filemode.Symlink:
		return "symlink"
	case filemode.Submodule:
		return "submodule"
	}
	return m.String()
}
