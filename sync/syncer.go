package gitsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/memory"

	"gantry.io/gantry/api"
)

// Defaults of the Options.
const (
	// DefaultDepth: fetches are shallow, one commit deep.
	DefaultDepth = 1
	// DefaultFetchTimeout bounds one Fetch (ls-remote plus fetch).
	DefaultFetchTimeout = 2 * time.Minute
	// DefaultBackoffInitial and DefaultBackoffMax bound Run's retry delay after errors.
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
)

// fetchedRef is the local ref a fetch writes the source's head to.
const fetchedRef = plumbing.ReferenceName("refs/gantry/fetched")

// Option configures a Syncer.
type Option func(*options)

type options struct {
	dataDir        string
	logger         *slog.Logger
	depth          int
	timeout        time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	maxBytes       int64
	onError        func(err error, retryIn time.Duration)
}

// WithDataDir keeps the clone on disk, as a bare repository under
// <dir>/git/<source-hash>, so it survives restarts and fetches stay incremental.
// Default: the clone lives in memory and is fetched again after a restart.
func WithDataDir(dir string) Option { return func(o *options) { o.dataDir = dir } }

// WithLogger sets the logger. Default slog.Default(). Lines carry the sanitized URL,
// never a credential.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDepth sets the fetch depth: 1 (the default) fetches only the head commit, 0 the
// full history. A shallow fetch that the server cannot serve is retried in full.
func WithDepth(n int) Option { return func(o *options) { o.depth = n } }

// WithTimeout bounds each Fetch. Default DefaultFetchTimeout (2 min).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithBackoff sets Run's retry delays after a failed Fetch: initial, doubling per
// consecutive failure (with ±10% jitter), capped at max. Defaults 1 s and 5 min. An
// *UnverifiedError is not retried faster than the poll interval: it needs a new commit.
func WithBackoff(initial, max time.Duration) Option {
	return func(o *options) { o.backoffInitial, o.backoffMax = initial, max }
}

// WithMaxSnapshotBytes caps the total size of a snapshot's files; a larger revision
// fails with api.ErrInvalidArgument. Default DefaultMaxSnapshotBytes (64 MiB).
func WithMaxSnapshotBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// WithOnError makes Run report each failed Fetch and the delay before its retry, so
// the caller can show the source as Waiting (or Stalled for *UnverifiedError).
// Default: errors are only logged.
func WithOnError(fn func(err error, retryIn time.Duration)) Option {
	return func(o *options) { o.onError = fn }
}

// Status is a Syncer's state, for status pages and metrics.
type Status struct {
	// Revision and Ref of the last snapshot Fetch returned; empty before the first.
	Revision, Ref string
	// LastSuccess is when Fetch last succeeded; LastAttempt when it last ran.
	LastSuccess, LastAttempt time.Time
	// LastError is the error of the last Fetch, nil if it succeeded.
	LastError error
	// Failures counts consecutive failed Fetches.
	Failures int
	// Checks counts remote head checks (ls-remote); Fetches counts object fetches.
	// A poll that finds the head unchanged adds a check and no fetch.
	Checks, Fetches int64
}

// Syncer follows one Source. Its methods are safe for concurrent use; fetches are
// serialized.
type Syncer struct {
	src  Source
	opts options

	trigger chan struct{}

	mu      sync.Mutex // serializes fetches; guards st
	st      storage.Storer
	closeSt func() error

	stateMu    sync.Mutex
	last       *Snapshot
	lastRemote plumbing.Hash
	lastRef    plumbing.ReferenceName
	status     Status

	// waiting, if set (tests), is called each time Run starts to wait.
	waiting func()
}

// New validates src and returns a Syncer for it. It has no side effects: the data
// directory is created by the first Fetch. It returns api.ErrInvalidArgument for a
// malformed source and the keyring's error if TrustedKeysFile cannot be read.
func New(src Source, opts ...Option) (*Syncer, error) {
	src, err := src.validate()
	if err != nil {
		return nil, err
	}
	o := options{
		logger:         slog.Default(),
		depth:          DefaultDepth,
		timeout:        DefaultFetchTimeout,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
		maxBytes:       DefaultMaxSnapshotBytes,
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.depth < 0:
		return nil, fmt.Errorf("git source %s: depth %d is negative: %w", SanitizeURL(src.URL), o.depth, api.ErrInvalidArgument)
	case o.timeout <= 0, o.backoffInitial <= 0, o.backoffMax < o.backoffInitial, o.maxBytes <= 0:
		return nil, fmt.Errorf("git source %s: timeout, back-off and size limits must be positive (and back-off max ≥ initial): %w",
			SanitizeURL(src.URL), api.ErrInvalidArgument)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if src.TrustedKeysFile != "" {
		if _, err := readKeyringFile(src.TrustedKeysFile); err != nil {
			return nil, fmt.Errorf("git source %s: %w", SanitizeURL(src.URL), err)
		}
	}
	if k, _, _ := classifyURL(src.URL); k == kindLocal && !strings.Contains(src.URL, "://") {
		if abs, err := filepath.Abs(src.URL); err == nil {
			src.URL = abs
		}
	}
	return &Syncer{src: src, opts: o, trigger: make(chan struct{}, 1)}, nil
}

// Source returns the validated source with defaults applied.
func (s *Syncer) Source() Source { return s.src }

// Status returns the current state.
func (s *Syncer) Status() Status {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.status
}

// Close releases the on-disk clone's open files. It is safe to call more than once,
// and before any Fetch.
func (s *Syncer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeSt == nil {
		return nil
	}
	err := s.closeSt()
	s.st, s.closeSt = nil, nil
	return err
}

// Trigger asks Run to fetch now (webhooks call it). It never blocks: triggers that
// arrive while one is pending or a fetch is running coalesce into one more fetch.
func (s *Syncer) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Wants reports whether a push to the full ref name (e.g. "refs/heads/main") can move
// what this source deploys; webhooks ignore other pushes. A source pinned to a commit
// wants none; an empty ref always matches (the payload did not say).
func (s *Syncer) Wants(ref string) bool {
	if ref == "" {
		return true
	}
	if isFullHash(s.src.Ref) {
		return false
	}
	s.stateMu.Lock()
	resolved := s.lastRef
	s.stateMu.Unlock()
	switch {
	case resolved != "" && resolved != plumbing.HEAD:
		return ref == resolved.String()
	case s.src.Ref == "":
		return true
	case strings.HasPrefix(s.src.Ref, "refs/"):
		return ref == s.src.Ref
	}
	return ref == plumbing.NewBranchReferenceName(s.src.Ref).String() || ref == plumbing.NewTagReferenceName(s.src.Ref).String()
}

// Run polls the source every PollInterval until ctx is done, and fetches at once on
// Trigger. It calls onSnapshot (from Run's goroutine, never concurrently) with each
// new revision, starting with the first successful fetch. After a failed fetch it
// waits with exponential back-off (see WithBackoff) and reports the error through
// WithOnError; the caller keeps what is running. Call Run once per Syncer.
func (s *Syncer) Run(ctx context.Context, onSnapshot func(*Snapshot)) {
	failures := 0
	for {
		snap, changed, err := s.Fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		delay := s.src.PollInterval
		if err != nil {
			failures++
			var uv *UnverifiedError
			if !errors.As(err, &uv) {
				delay = s.backoff(failures)
			}
			s.opts.logger.Warn("git source fetch failed", "url", SanitizeURL(s.src.URL), "ref", s.src.Ref, "error", err, "retry_in", delay)
			if s.opts.onError != nil {
				s.opts.onError(err, delay)
			}
		} else {
			failures = 0
			if changed && onSnapshot != nil {
				onSnapshot(snap)
			}
		}
		if s.waiting != nil {
			s.waiting()
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		}
	}
}

func (s *Syncer) backoff(failures int) time.Duration {
	d := s.opts.backoffInitial
	for i := 1; i < failures && d < s.opts.backoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.backoffMax)
	jitter := time.Duration(float64(d) * 0.1 * (2*rand.Float64() - 1))
	return d + jitter
}

// Fetch checks the remote head and returns the snapshot at it. changed says whether
// its revision differs from the last snapshot this Syncer returned (always true on
// the first success). When the head has not moved since the last success, Fetch does
// no work beyond listing the remote's refs and returns the previous snapshot with
// changed=false; a source pinned to a commit does not even list refs.
//
// Errors are classed: api.ErrUnavailable (network, server; retry later),
// api.ErrUnauthenticated / api.ErrPermissionDenied (credentials), api.ErrNotFound
// (repository, ref or path missing), api.ErrInvalidArgument (bad source or content),
// *UnverifiedError (head not signed by a trusted key). No error text contains a
// credential.
func (s *Syncer) Fetch(ctx context.Context) (*Snapshot, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.opts.timeout)
	defer cancel()

	snap, remote, ref, err := s.fetch(ctx)

	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	now := time.Now()
	s.status.LastAttempt = now
	s.status.LastError = err
	if err != nil {
		s.status.Failures++
		return nil, false, err
	}
	changed := s.last == nil || s.last.Revision != snap.Revision
	if changed {
		s.opts.logger.Info("git source at new revision", "url", SanitizeURL(s.src.URL), "ref", snap.Ref, "revision", snap.Revision)
	}
	s.last, s.lastRemote, s.lastRef = snap, remote, ref
	s.status.Failures = 0
	s.status.LastSuccess = now
	s.status.Revision, s.status.Ref = snap.Revision, snap.Ref
	return snap, changed, nil
}

func (s *Syncer) count(checks, fetches int64) {
	s.stateMu.Lock()
	s.status.Checks += checks
	s.status.Fetches += fetches
	s.stateMu.Unlock()
}

func (s *Syncer) previous() (*Snapshot, plumbing.Hash) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.last, s.lastRemote
}

// fetch returns the snapshot, the remote hash it came from and the resolved ref name.
func (s *Syncer) fetch(ctx context.Context) (*Snapshot, plumbing.Hash, plumbing.ReferenceName, error) {
	url := s.src.URL
	last, lastRemote := s.previous()
	pinned := isFullHash(s.src.Ref)
	if pinned && last != nil {
		return last, lastRemote, "", nil
	}
	auth, secrets, err := s.src.authMethod()
	if err != nil {
		return nil, plumbing.ZeroHash, "", wrapErr(url, "credentials", err)
	}
	st, err := s.storage()
	if err != nil {
		return nil, plumbing.ZeroHash, "", wrapErr(url, "local clone", err, secrets...)
	}
	if pinned {
		// A commit's content never changes: if it is here already, no network at all.
		h := plumbing.NewHash(strings.ToLower(s.src.Ref))
		if hasCommit(st, h) {
			snap, err := s.build(st, h, h.String())
			return snap, h, "", err
		}
	}
	remote := git.NewRemote(st, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	s.count(1, 0)
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return nil, plumbing.ZeroHash, "", wrapErr(url, "list refs", err, secrets...)
	}
	t, err := resolveRef(refs, s.src.Ref)
	if err != nil {
		return nil, plumbing.ZeroHash, "", wrapErr(url, "resolve ref", err, secrets...)
	}
	if last != nil && t.hash == lastRemote && !t.pinned {
		s.opts.logger.Debug("git source unchanged", "url", SanitizeURL(url), "ref", t.display, "revision", last.Revision)
		return last, lastRemote, t.name, nil
	}
	remoteHash, commit := t.hash, t.commit
	if !hasCommit(st, t.commit) {
		got, err := s.fetchObjects(ctx, st, remote, auth, t)
		if err != nil {
			return nil, plumbing.ZeroHash, "", wrapErr(url, "fetch "+t.display, err, secrets...)
		}
		if !t.pinned {
			// The ref may have moved between listing and fetching: deploy what arrived.
			remoteHash = got
			if commit, err = peelToCommit(st, got); err != nil {
				return nil, plumbing.ZeroHash, "", wrapErr(url, "read "+t.display, err, secrets...)
			}
		}
	}
	snap, err := s.build(st, commit, t.display)
	if err != nil {
		return nil, plumbing.ZeroHash, "", wrapErr(url, "read "+t.display, err, secrets...)
	}
	return snap, remoteHash, t.name, nil
}

// fetchObjects fetches the objects of t into st and returns the hash the fetched ref
// points to locally.
func (s *Syncer) fetchObjects(ctx context.Context, st storage.Storer, remote *git.Remote, auth transport.AuthMethod, t target) (plumbing.Hash, error) {
	depth := s.opts.depth
	var spec config.RefSpec
	switch {
	case t.name != "":
		spec = config.RefSpec("+" + t.name.String() + ":" + fetchedRef.String())
	default: // a pinned commit no ref points at
		spec = config.RefSpec(t.hash.String() + ":" + fetchedRef.String())
	}
	err := s.fetchSpecs(ctx, remote, auth, depth, spec)
	if errors.Is(err, git.ErrExactSHA1NotSupported) {
		// The server does not serve unadvertised commits: fetch every branch and tag
		// in full and look for it there.
		s.opts.logger.Info("git server cannot fetch a commit by SHA; fetching all branches and tags",
			"url", SanitizeURL(s.src.URL), "commit", t.hash.String())
		err = s.fetchSpecs(ctx, remote, auth, 0,
			config.RefSpec("+refs/heads/*:refs/gantry/all/heads/*"), config.RefSpec("+refs/tags/*:refs/gantry/all/tags/*"))
		if err == nil && !hasCommit(st, t.hash) {
			return plumbing.ZeroHash, fmt.Errorf("commit %s is not reachable from any branch or tag of the remote: %w", t.hash, api.ErrNotFound)
		}
		return t.hash, err
	}
	if err != nil && depth > 0 && isShallowTrouble(err) {
		s.opts.logger.Info("shallow fetch failed; fetching full history", "url", SanitizeURL(s.src.URL), "error", scrub(err.Error(), s.src.URL))
		err = s.fetchSpecs(ctx, remote, auth, 0, spec)
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if t.pinned {
		if !hasCommit(st, t.hash) {
			return plumbing.ZeroHash, fmt.Errorf("commit %s did not arrive (the ref pointing at it moved?): %w", t.hash, api.ErrUnavailable)
		}
		return t.hash, nil
	}
	ref, err := st.Reference(fetchedRef)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("after fetch: %w", err)
	}
	return ref.Hash(), nil
}

func (s *Syncer) fetchSpecs(ctx context.Context, remote *git.Remote, auth transport.AuthMethod, depth int, specs ...config.RefSpec) error {
	s.count(0, 1)
	err := remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs,
		Depth:    depth,
		Auth:     auth,
		Tags:     git.NoTags,
		Force:    true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return err
}

// isShallowTrouble reports whether a fetch error looks like a server or go-git
// problem with shallow history rather than a network or credentials problem.
func isShallowTrouble(err error) bool {
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return true
	}
	return strings.Contains(strings.ToLower(err.Error()), "shallow")
}

// build reads the snapshot at commit h and verifies its signature if required.
func (s *Syncer) build(st storage.Storer, h plumbing.Hash, ref string) (*Snapshot, error) {
	c, err := object.GetCommit(st, h)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", h, err)
	}
	var signer string
	if s.src.TrustedKeysFile != "" {
		keys, err := readKeyringFile(s.src.TrustedKeysFile)
		if err != nil {
			return nil, err
		}
		if signer, err = VerifyCommit(c, keys); err != nil {
			return nil, err
		}
	}
	snap, err := snapshotOf(c, ref, s.src.Path, s.opts.maxBytes)
	if err != nil {
		return nil, err
	}
	snap.SignedBy = signer
	return snap, nil
}

// storage opens (once) the local clone: in memory, or a bare repository on disk.
func (s *Syncer) storage() (storage.Storer, error) {
	if s.st != nil {
		return s.st, nil
	}
	if s.opts.dataDir == "" {
		s.st = memory.NewStorage()
		s.closeSt = func() error { return nil }
		return s.st, nil
	}
	dir := filepath.Join(s.opts.dataDir, "git", s.src.key())
	repo, err := git.PlainOpen(dir)
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
		}
		repo, err = git.PlainInit(dir, true)
	case err != nil:
		// A clone we cannot open (interrupted write, disk trouble) is a cache: start over.
		s.opts.logger.Warn("local git clone unreadable; re-cloning", "dir", dir, "error", err)
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			return nil, fmt.Errorf("remove unreadable clone %s: %w", dir, rmErr)
		}
		repo, err = git.PlainInit(dir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open local clone %s: %w", dir, err)
	}
	s.st = repo.Storer
	s.closeSt = func() error {
		if c, ok := repo.Storer.(interface{ Close() error }); ok {
			return c.Close()
		}
		return nil
	}
	return s.st, nil
}

func hasCommit(st storage.Storer, h plumbing.Hash) bool {
	if h.IsZero() {
		return false
	}
	_, err := object.GetCommit(st, h)
	return err == nil
}

// peelToCommit follows annotated tags from h to the commit they name.
func peelToCommit(st storage.Storer, h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		obj, err := st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("object %s: %w", h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return h, nil
		case plumbing.TagObject:
			tag, err := object.DecodeTag(st, obj)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("tag %s: %w", h, err)
			}
			h = tag.Target
		default:
			return plumbing.ZeroHash, fmt.Errorf("%s points to a %s, not a commit: %w", h, obj.Type(), api.ErrInvalidArgument)
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("tag chain at %s is too deep: %w", h, api.ErrInvalidArgument)
}
