package gitsync

import (
	"errors"
	"fmt"
	"os"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"gantry.io/gantry/api"
)

// EnsureRepository makes a local directory usable as a Source URL (`gantry up --repo
// DIR`). If dir is inside a git repository already it changes nothing and returns
// created=false. Otherwise it initializes a repository in dir (default branch main) and
// commits every file not excluded by .gitignore as "gantry <gantry@localhost>", so the
// directory's current content becomes the first revision. Later edits deploy only
// once committed. Returns api.ErrNotFound if dir does not exist.
func EnsureRepository(dir string) (created bool, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("repository directory %s: %w", dir, api.ErrNotFound)
		}
		return false, fmt.Errorf("repository directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("repository path %s is not a directory: %w", dir, api.ErrInvalidArgument)
	}
	_, err = git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, git.ErrRepositoryNotExists):
		return false, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		return false, fmt.Errorf("git init %s: %w", dir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return true, fmt.Errorf("git init %s: %w", dir, err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return true, fmt.Errorf("git add in %s: %w", dir, err)
	}
	_, err = wt.Commit("Initial import by gantry\n", &git.CommitOptions{
		Author:            &object.Signature{Name: "gantry", Email: "gantry@localhost", When: time.Now()},
		AllowEmptyCommits: true,
	})
	if err != nil {
		return true, fmt.Errorf("git commit in %s: %w", dir, err)
	}
	return true, nil
}
