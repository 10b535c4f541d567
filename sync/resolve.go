package gitsync

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"

	"gantry.io/gantry/api"
)

// target is a Source.Ref resolved against a remote's advertised refs.
type target struct {
	// name is the remote ref to fetch; empty for a commit no ref points at.
	name plumbing.ReferenceName
	// hash is what name points to on the remote (a tag object for annotated tags), or
	// the commit itself.
	hash plumbing.Hash
	// commit is the commit hash when known from the advertisement (peeled tags), else
	// equal to hash.
	commit plumbing.Hash
	// pinned: Source.Ref is a commit SHA; the content can never change.
	pinned bool
	// display is Snapshot.Ref: the full ref name, or the SHA for a pinned commit.
	display string
}

const peeledSuffix = "^{}"

// isFullHash reports whether s is a full SHA-1 or SHA-256 hex object name.
func isFullHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return true
}

// resolveRef picks the ref of want (Source.Ref) from a remote's advertised refs,
// following the order documented on Source.Ref.
func resolveRef(refs []*plumbing.Reference, want string) (target, error) {
	hashes := map[plumbing.ReferenceName]plumbing.Hash{}
	peeled := map[plumbing.ReferenceName]plumbing.Hash{}
	var head *plumbing.Reference
	for _, r := range refs {
		name := r.Name().String()
		switch {
		case r.Name() == plumbing.HEAD:
			head = r
		case strings.HasSuffix(name, peeledSuffix):
			peeled[plumbing.ReferenceName(strings.TrimSuffix(name, peeledSuffix))] = r.Hash()
		case r.Type() == plumbing.HashReference:
			hashes[r.Name()] = r.Hash()
		}
	}
	found := func(name plumbing.ReferenceName) (target, bool) {
		h, ok := hashes[name]
		if !ok {
			return target{}, false
		}
		t := target{name: name, hash: h, commit: h, display: name.String()}
		if p, ok := peeled[name]; ok {
			t.commit = p
		}
		return t, true
	}

	switch {
	case want == "":
		if head == nil {
			return target{}, fmt.Errorf("the remote advertises no HEAD; set the source ref to a branch, tag or commit: %w", api.ErrNotFound)
		}
		if head.Type() == plumbing.SymbolicReference {
			if t, ok := found(head.Target()); ok {
				return t, nil
			}
			return target{}, fmt.Errorf("the remote HEAD points to %s, which does not exist (empty default branch?): %w", head.Target(), api.ErrNotFound)
		}
		// No symref capability: fetch HEAD itself.
		return target{name: plumbing.HEAD, hash: head.Hash(), commit: head.Hash(), display: plumbing.HEAD.String()}, nil
	case strings.HasPrefix(want, "refs/"):
		if t, ok := found(plumbing.ReferenceName(want)); ok {
			return t, nil
		}
		return target{}, fmt.Errorf("ref %s not found on the remote (%s): %w", want, available(hashes), api.ErrNotFound)
	case isFullHash(want):
		h := plumbing.NewHash(strings.ToLower(want))
		t := target{hash: h, commit: h, pinned: true, display: h.String()}
		// Prefer fetching through a ref that points at the commit: every server
		// allows that, while fetching an unadvertised commit needs server support.
		var names []string
		for name, rh := range hashes {
			if rh == h || peeled[name] == h {
				names = append(names, name.String())
			}
		}
		sort.Slice(names, func(i, j int) bool {
			return refRank(names[i]) < refRank(names[j]) || (refRank(names[i]) == refRank(names[j]) && names[i] < names[j])
		})
		if len(names) > 0 {
			t.name = plumbing.ReferenceName(names[0])
		}
		return t, nil
	}
	branch, okBranch := found(plumbing.NewBranchReferenceName(want))
	tag, okTag := found(plumbing.NewTagReferenceName(want))
	switch {
	case okBranch && okTag:
		return target{}, fmt.Errorf("ref %q is both a branch and a tag; name it in full (refs/heads/%s or refs/tags/%s): %w", want, want, want, api.ErrInvalidArgument)
	case okBranch:
		return branch, nil
	case okTag:
		return tag, nil
	}
	if len(want) >= 4 && len(want) < 40 && strings.Trim(strings.ToLower(want), "0123456789abcdef") == "" {
		return target{}, fmt.Errorf("ref %q is neither a branch nor a tag; an abbreviated commit is not resolved: give the full 40-digit SHA: %w", want, api.ErrNotFound)
	}
	return target{}, fmt.Errorf("ref %q is neither a branch nor a tag on the remote (%s): %w", want, available(hashes), api.ErrNotFound)
}

func refRank(name string) int {
	switch {
	case strings.HasPrefix(name, "refs/heads/"):
		return 0
	case strings.HasPrefix(name, "refs/tags/"):
		return 1
	}
	return 2
}

// available lists a few branch and tag names, for "not found" errors.
func available(hashes map[plumbing.ReferenceName]plumbing.Hash) string {
	var branches, tags []string
	for name := range hashes {
		switch {
		case name.IsBranch():
			branches = append(branches, name.Short())
		case name.IsTag():
			tags = append(tags, name.Short())
		}
	}
	sort.Strings(branches)
	sort.Strings(tags)
	return fmt.Sprintf("branches: %s; tags: %s", shortList(branches), shortList(tags))
}

func shortList(names []string) string {
	const max = 8
	switch {
	case len(names) == 0:
		return "none"
	case len(names) > max:
		return strings.Join(names[:max], ", ") + fmt.Sprintf(" and %d more", len(names)-max)
	}
	return strings.Join(names, ", ")
}
