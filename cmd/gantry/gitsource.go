package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/secrets"
	"gantry.io/gantry/store"
	gitsync "gantry.io/gantry/sync"
)

// gitFlags configure the git source of `gantry up` and `gantry server`.
type gitFlags struct {
	repo          string
	ref           string
	branch        string
	path          string
	poll          time.Duration
	resync        time.Duration
	webhookSecret string
	trustedKeys   string
	tokenFile     string
	sshKeyFile    string
	knownHosts    string
	testClock     testClockFlags // hidden, test-only (jobs_clock.go)
}

func (g *gitFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&g.repo, "repo", "", "git repository of the desired state: a URL (https, ssh, git://) or a local directory (made a repository if it is not one)")
	fl.StringVar(&g.ref, "ref", "", "branch, tag or commit to follow (default: the remote's HEAD)")
	fl.StringVar(&g.branch, "branch", "", "branch to follow (same as --ref refs/heads/BRANCH)")
	fl.StringVar(&g.path, "path", "", "directory (or file) inside the repository holding the manifests (default: the root)")
	fl.DurationVar(&g.poll, "poll-interval", gitsync.DefaultPollInterval, "how often the remote head is checked")
	fl.DurationVar(&g.resync, "resync", controlplane.DefaultResync, "periodic reconcile even when nothing changed")
	fl.StringVar(&g.webhookSecret, "webhook-secret-file", "", "file with the shared secret of POST /api/v1/webhooks/git (GitHub, GitLab, Gitea, generic HMAC); without it webhooks are off")
	fl.StringVar(&g.trustedKeys, "trusted-keys", "", "armored OpenPGP keyring: deploy only commits signed by one of its keys")
	fl.StringVar(&g.tokenFile, "git-token-file", "", "file with an HTTPS access token for the repository")
	fl.StringVar(&g.sshKeyFile, "git-ssh-key", "", "SSH private key file for ssh:// repositories")
	fl.StringVar(&g.knownHosts, "git-known-hosts", "", "known_hosts file for ssh:// repositories")
	g.testClock.add(cmd)
}

// source turns the flags into a gitsync.Source. A local directory that is not in a
// git repository is made one (gitsync.EnsureRepository: its files become the first
// commit); a directory inside a repository becomes that repository's root plus a
// path, so `--repo manifests-example` inside a checkout deploys that subdirectory of
// the checkout's committed HEAD.
func (g *gitFlags) source(stderr io.Writer) (gitsync.Source, error) {
	src := gitsync.Source{URL: g.repo, Ref: g.ref, Path: g.path, PollInterval: g.poll, TrustedKeysFile: g.trustedKeys,
		Auth: gitsync.Auth{TokenFile: g.tokenFile, SSHKeyFile: g.sshKeyFile, KnownHostsFile: g.knownHosts}}
	if g.branch != "" {
		if g.ref != "" {
			return src, fmt.Errorf("--branch and --ref are exclusive")
		}
		src.Ref = "refs/heads/" + g.branch
	}
	if !isLocalPath(g.repo) {
		return src, nil
	}
	dir, err := filepath.Abs(strings.TrimPrefix(g.repo, "file://"))
	if err != nil {
		return src, fmt.Errorf("--repo %s: %w", g.repo, err)
	}
	created, err := gitsync.EnsureRepository(dir)
	if err != nil {
		return src, fmt.Errorf("--repo %s: %w", g.repo, err)
	}
	if created {
		fmt.Fprintf(stderr, "gantry: %s was not a git repository: initialized one and committed its files (commit later edits to deploy them)\n", dir)
	}
	root := dir
	for {
		if _, err := os.Stat(filepath.Join(root, ".git")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			root = dir
			break
		}
		root = parent
	}
	if rel, err := filepath.Rel(root, dir); err == nil && rel != "." {
		src.Path = filepath.ToSlash(filepath.Join(rel, g.path))
		fmt.Fprintf(stderr, "gantry: %s is inside the repository %s: following its committed files under %s\n", dir, root, src.Path)
	}
	src.URL = root
	return src, nil
}

// isLocalPath reports whether a --repo value names a directory on this machine.
func isLocalPath(repo string) bool {
	if strings.HasPrefix(repo, "file://") {
		return true
	}
	if strings.Contains(repo, "://") {
		return false
	}
	if fi, err := os.Stat(repo); err == nil && fi.IsDir() {
		return true
	}
	return false
}

// reconciler builds the git syncer and the reconcile loop over st. cache (nil: none)
// is the server's secrets cache: each loaded revision's stores and ExternalSecrets
// are set on it and Deployments get their config hash from its values.
func (g *gitFlags) reconciler(st *store.Store, dataDir string, logger *slog.Logger, gate <-chan struct{}, cache *secrets.Cache) (*controlplane.Reconciler, *gitsync.Syncer, error) {
	src, err := g.source(os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	opts := []controlplane.ReconcileOption{controlplane.WithResync(g.resync), controlplane.WithReconcileLogger(logger)}
	if gate != nil {
		opts = append(opts, controlplane.WithStartGate(gate))
	}
	opts = append(opts, g.testClock.options()...)
	if cache != nil {
		opts = append(opts, controlplane.WithSecretCache(cache))
	}
	if g.webhookSecret != "" {
		secret, err := gitsync.LoadSecret(g.webhookSecret, "")
		if err != nil {
			return nil, nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		opts = append(opts, controlplane.WithWebhookSecret([]byte(secret)))
	}
	var rec *controlplane.Reconciler
	syncer, err := gitsync.New(src, gitsync.WithDataDir(filepath.Join(dataDir, "git")), gitsync.WithLogger(logger),
		gitsync.WithOnError(func(err error, retryIn time.Duration) { rec.SourceError(err, retryIn) }))
	if err != nil {
		return nil, nil, fmt.Errorf("--repo %s: %w", gitsync.SanitizeURL(g.repo), err)
	}
	rec = controlplane.NewReconciler(st, syncer, opts...)
	return rec, syncer, nil
}

func printGitInfo(w io.Writer, g gitFlags) {
	if g.repo == "" {
		fmt.Fprintln(w, "gantry: no --repo: nothing is deployed from git (see `gantry up --help`)")
		return
	}
	fmt.Fprintf(w, "gantry: deploying from %s (poll every %s); see `gantry get apps`, `gantry sync` fetches now\n", gitsync.SanitizeURL(g.repo), g.poll)
}
