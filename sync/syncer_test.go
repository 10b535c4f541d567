package gitsync

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
)

const (
	webYAML = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
	dbYAML  = "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newSyncer(t *testing.T, src Source, opts ...Option) *Syncer {
	t.Helper()
	s, err := New(src, append([]Option{WithLogger(quietLogger())}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func fetch(t *testing.T, s *Syncer) (*Snapshot, bool) {
	t.Helper()
	snap, changed, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return snap, changed
}

func fileNames(s *Snapshot) []string {
	var names []string
	for n := range s.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func writeSecret(t *testing.T, value string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFetchOverHTTP covers the initial fetch, the no-op poll (proved with the
// server's request counters: a listing, no upload-pack), a new commit, and the
// path filter (only .yaml/.yml under Path, hidden entries skipped).
func TestFetchOverHTTP(t *testing.T) {
	srv := testenv.StartGitHTTP(t, "deployer", "pa55word")
	repo := srv.NewRepo(t, "app")
	first := repo.Commit(t, map[string]string{
		"deploy/web.yaml":            webYAML,
		"deploy/sub/db.yml":          dbYAML,
		"deploy/notes.md":            "not a manifest",
		"deploy/.hidden.yaml":        "skipped",
		"deploy/.github/ci.yaml":     "skipped",
		"README.md":                  "hello",
		"other/outside.yaml":         "outside the path",
		".github/workflows/ci.yaml":  "skipped",
		"deploy/UPPER.YAML":          "kind: ConfigMap\n",
		"deploy/script.sh":           "#!/bin/sh",
		"deploy/deep/er/nested.yaml": "kind: Pod\n",
	}, "first\n\nbody line")
	repo.Push(t)

	s := newSyncer(t, Source{URL: repo.URL, Path: "deploy", Auth: Auth{Username: "deployer", PasswordFile: writeSecret(t, "pa55word")}})
	snap, changed := fetch(t, s)
	if !changed {
		t.Errorf("first fetch: changed = false")
	}
	if snap.Revision != first || snap.Ref != "refs/heads/main" {
		t.Errorf("snapshot at %s (%s), want %s (refs/heads/main)", snap.Revision, snap.Ref, first)
	}
	if d := cmp.Diff([]string{"UPPER.YAML", "deep/er/nested.yaml", "sub/db.yml", "web.yaml"}, fileNames(snap)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if string(snap.Files["web.yaml"]) != webYAML {
		t.Errorf("web.yaml = %q", snap.Files["web.yaml"])
	}
	if snap.Author != "Gantry Test <test@gantry.invalid>" || snap.Message != "first\n\nbody line\n" || snap.Time.IsZero() {
		t.Errorf("metadata: author %q message %q time %v", snap.Author, snap.Message, snap.Time)
	}
	before := srv.Requests()
	if before.UploadPack == 0 {
		t.Fatalf("the first fetch made no upload-pack request: %+v", before)
	}

	// Head unchanged: one listing, no upload-pack, changed=false, same snapshot.
	again, changed := fetch(t, s)
	after := srv.Requests()
	if changed || again.Revision != first {
		t.Errorf("no-op poll: changed=%v revision %s", changed, again.Revision)
	}
	if after.UploadPack != before.UploadPack || after.ListRefs != before.ListRefs+1 {
		t.Errorf("no-op poll did fetch work: before %+v after %+v (want one more listing, no upload-pack)", before, after)
	}
	if st := s.Status(); st.Checks != 2 || st.Fetches != 1 || st.Revision != first || st.LastError != nil {
		t.Errorf("status after no-op poll: %+v", st)
	}

	// A new commit is detected and fetched.
	second := repo.Commit(t, map[string]string{"deploy/web.yaml": webYAML + "  labels: {v: \"2\"}\n"}, "second")
	repo.Push(t)
	snap, changed = fetch(t, s)
	if !changed || snap.Revision != second {
		t.Errorf("after a push: changed=%v revision %s, want %s", changed, snap.Revision, second)
	}
	if !strings.Contains(string(snap.Files["web.yaml"]), `v: "2"`) {
		t.Errorf("web.yaml not updated: %q", snap.Files["web.yaml"])
	}
	if got := srv.Requests().UploadPack; got <= after.UploadPack {
		t.Errorf("new commit fetched without upload-pack requests (%d → %d)", after.UploadPack, got)
	}
	// Files removed in git leave the snapshot.
	third := repo.Remove(t, "drop db", "deploy/sub/db.yml")
	repo.Push(t)
	snap, _ = fetch(t, s)
	if _, ok := snap.Files["sub/db.yml"]; ok || snap.Revision != third {
		t.Errorf("removed file still in snapshot %s: %v", snap.Revision, fileNames(snap))
	}
}

func TestHTTPCredentials(t *testing.T) {
	const pass = "c0rrect-h0rse"
	srv := testenv.StartGitHTTP(t, "deployer", pass)
	repo := srv.NewRepo(t, "app")
	want := repo.Commit(t, map[string]string{"a.yaml": webYAML}, "one")
	repo.Push(t)

	t.Run("password from env", func(t *testing.T) {
		t.Setenv("GANTRY_TEST_GIT_PASSWORD", pass)
		s := newSyncer(t, Source{URL: repo.URL, Auth: Auth{Username: "deployer", PasswordEnv: "GANTRY_TEST_GIT_PASSWORD"}})
		if snap, _ := fetch(t, s); snap.Revision != want {
			t.Errorf("revision %s, want %s", snap.Revision, want)
		}
	})
	t.Run("token file with user", func(t *testing.T) {
		s := newSyncer(t, Source{URL: repo.URL, Auth: Auth{Username: "deployer", TokenFile: writeSecret(t, pass)}})
		if snap, _ := fetch(t, s); snap.Revision != want {
			t.Errorf("revision %s, want %s", snap.Revision, want)
		}
	})
	for _, tc := range []struct {
		name string
		src  Source
		leak string
	}{
		{"wrong password", Source{URL: repo.URL, Auth: Auth{Username: "deployer", PasswordFile: writeSecret(t, "wr0ng-pa55")}}, "wr0ng-pa55"},
		{"wrong token, default user", Source{URL: repo.URL, Auth: Auth{TokenFile: writeSecret(t, pass)}}, pass},
		{"wrong password in URL", Source{URL: strings.Replace(repo.URL, "http://", "http://deployer:urlpa55@", 1)}, "urlpa55"},
		{"no credentials", Source{URL: repo.URL}, pass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSyncer(t, tc.src)
			_, _, err := s.Fetch(context.Background())
			if !errors.Is(err, api.ErrUnauthenticated) {
				t.Fatalf("Fetch error = %v, want ErrUnauthenticated", err)
			}
			for _, leak := range []string{tc.leak, "qs-secret"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error text contains a secret %q: %v", leak, err)
				}
			}
			if !strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("error does not say which source: %v", err)
			}
		})
	}
	t.Run("missing secret file", func(t *testing.T) {
		s := newSyncer(t, Source{URL: repo.URL, Auth: Auth{Username: "u", PasswordFile: "/nonexistent/pw"}})
		if _, _, err := s.Fetch(context.Background()); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("Fetch error = %v, want ErrNotFound", err)
		}
	})
}

// TestRefKinds resolves branches, annotated and lightweight tags, commits (advertised
// and not) over git daemon, with the server refusing unadvertised commits, as git
// daemon does by default.
func TestRefKinds(t *testing.T) {
	srv := testenv.StartGitDaemon(t)
	repo := srv.NewRepo(t, "refs")
	c0 := repo.Commit(t, map[string]string{"app.yaml": "rev: 0\n"}, "c0")
	c1 := repo.Commit(t, map[string]string{"app.yaml": "rev: 1\n"}, "c1")
	repo.Git(t, "tag", "-a", "-m", "release one", "v1")
	repo.Git(t, "tag", "light")
	repo.Git(t, "checkout", "--quiet", "-b", "dev")
	c2 := repo.Commit(t, map[string]string{"app.yaml": "rev: 2\n"}, "c2")
	repo.Git(t, "checkout", "--quiet", "main")
	c3 := repo.Commit(t, map[string]string{"app.yaml": "rev: 3\n"}, "c3")
	repo.Push(t)

	for _, tc := range []struct {
		ref, rev, display string
	}{
		{"", c3, "refs/heads/main"},
		{"main", c3, "refs/heads/main"},
		{"dev", c2, "refs/heads/dev"},
		{"v1", c1, "refs/tags/v1"},
		{"refs/tags/v1", c1, "refs/tags/v1"},
		{"light", c1, "refs/tags/light"},
		{c2, c2, c2},
		{c0, c0, c0}, // no ref points at c0: full fetch fallback
	} {
		t.Run("ref="+tc.ref, func(t *testing.T) {
			s := newSyncer(t, Source{URL: repo.URL, Ref: tc.ref})
			snap, _ := fetch(t, s)
			if snap.Revision != tc.rev || snap.Ref != tc.display {
				t.Errorf("revision %s ref %s, want %s %s", snap.Revision, snap.Ref, tc.rev, tc.display)
			}
			if got := string(snap.Files["app.yaml"]); got != "rev: "+map[string]string{c0: "0", c1: "1", c2: "2", c3: "3"}[tc.rev]+"\n" {
				t.Errorf("app.yaml = %q", got)
			}
		})
	}

	t.Run("pinned commit needs no network after the first fetch", func(t *testing.T) {
		s := newSyncer(t, Source{URL: repo.URL, Ref: c1})
		fetch(t, s)
		_, changed := fetch(t, s)
		if st := s.Status(); changed || st.Checks != 1 {
			t.Errorf("second fetch of a pinned commit: changed=%v checks=%d, want false and 1", changed, st.Checks)
		}
	})
	t.Run("moved tag is followed", func(t *testing.T) {
		s := newSyncer(t, Source{URL: repo.URL, Ref: "light"})
		fetch(t, s)
		repo.Git(t, "tag", "--force", "light", c3)
		repo.Push(t)
		snap, changed := fetch(t, s)
		if !changed || snap.Revision != c3 {
			t.Errorf("after moving the tag: changed=%v revision %s, want %s", changed, snap.Revision, c3)
		}
	})
	t.Run("ambiguous and missing refs", func(t *testing.T) {
		repo.Git(t, "branch", "v1", c2)
		repo.Push(t)
		for ref, class := range map[string]error{
			"v1":       api.ErrInvalidArgument,
			"nope":     api.ErrNotFound,
			c1[:10]:    api.ErrNotFound,
			"refs/x/y": api.ErrNotFound,
		} {
			s := newSyncer(t, Source{URL: repo.URL, Ref: ref})
			if _, _, err := s.Fetch(context.Background()); !errors.Is(err, class) {
				t.Errorf("ref %q: error %v, want %v", ref, err, class)
			}
		}
		s := newSyncer(t, Source{URL: repo.URL, Ref: "refs/heads/v1"})
		if snap, _ := fetch(t, s); snap.Revision != c2 {
			t.Errorf("refs/heads/v1 at %s, want %s", snap.Revision, c2)
		}
	})
	t.Run("commit that no branch or tag reaches", func(t *testing.T) {
		s := newSyncer(t, Source{URL: repo.URL, Ref: strings.Repeat("ab", 20)})
		if _, _, err := s.Fetch(context.Background()); !errors.Is(err, api.ErrNotFound) {
			t.Errorf("error %v, want ErrNotFound", err)
		}
	})
}

func TestPathInsideRepository(t *testing.T) {
	srv := testenv.StartGitDaemon(t)
	repo := srv.NewRepo(t, "paths")
	repo.Commit(t, map[string]string{"envs/prod/web.yaml": webYAML, "envs/prod/db.yaml": dbYAML, "envs/dev/web.yaml": "dev", "envs/prod/README.md": "x"}, "envs")
	if err := os.Symlink("web.yaml", filepath.Join(repo.Dir, "envs", "prod", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	repo.Commit(t, nil, "symlink")
	repo.Push(t)

	snap, _ := fetch(t, newSyncer(t, Source{URL: repo.URL, Path: "envs/prod"}))
	if d := cmp.Diff([]string{"db.yaml", "web.yaml"}, fileNames(snap)); d != "" {
		t.Errorf("envs/prod files (symlink skipped) (-want +got):\n%s", d)
	}
	snap, _ = fetch(t, newSyncer(t, Source{URL: repo.URL, Path: "/envs/prod/web.yaml"}))
	if d := cmp.Diff([]string{"web.yaml"}, fileNames(snap)); d != "" || string(snap.Files["web.yaml"]) != webYAML {
		t.Errorf("single file path (-want +got):\n%s", d)
	}
	for path, class := range map[string]error{
		"envs/staging":        api.ErrNotFound,
		"envs/prod/README.md": api.ErrInvalidArgument,
		"envs/prod/link.yaml": api.ErrInvalidArgument,
	} {
		_, _, err := newSyncer(t, Source{URL: repo.URL, Path: path}).Fetch(context.Background())
		if !errors.Is(err, class) || !strings.Contains(err.Error(), path) {
			t.Errorf("path %q: error %v, want %v naming the path", path, err, class)
		}
	}
	_, _, err := newSyncer(t, Source{URL: repo.URL, Path: "envs"}, WithMaxSnapshotBytes(10)).Fetch(context.Background())
	if !errors.Is(err, api.ErrInvalidArgument) || !strings.Contains(err.Error(), "exceed") {
		t.Errorf("over the size cap: %v", err)
	}
}

func TestLocalPathAndFileURL(t *testing.T) {
	testenv.Integration(t, "git")
	srv := testenv.StartGitDaemon(t) // only for its isolated git environment
	repo := srv.NewRepo(t, "local")
	want := repo.Commit(t, map[string]string{"a.yaml": webYAML}, "local")
	for _, url := range []string{repo.Dir, "file://" + repo.Bare} {
		if strings.HasPrefix(url, "file://") {
			repo.Push(t)
		}
		snap, _ := fetch(t, newSyncer(t, Source{URL: url}))
		if snap.Revision != want {
			t.Errorf("%s: revision %s, want %s", url, snap.Revision, want)
		}
	}
}

func TestServerDownIsUnavailable(t *testing.T) {
	testenv.Integration(t, "git")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, url := range []string{"git://" + addr + "/app.git", "http://" + addr + "/app.git"} {
		_, _, err := newSyncer(t, Source{URL: url}).Fetch(context.Background())
		if !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("%s: error %v, want ErrUnavailable", url, err)
		}
	}
	srv := testenv.StartGitDaemon(t)
	_, _, err = newSyncer(t, Source{URL: srv.URL("missing")}).Fetch(context.Background())
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing repository: %v, want ErrNotFound", err)
	}
	srv.NewRepo(t, "empty")
	_, _, err = newSyncer(t, Source{URL: srv.URL("empty")}).Fetch(context.Background())
	if !errors.Is(err, api.ErrNotFound) {
		t.Errorf("empty repository: %v, want ErrNotFound", err)
	}
}

// TestDataDirSurvivesRestart: a second Syncer on the same data directory finds the
// commit on disk and fetches no objects.
func TestDataDirSurvivesRestart(t *testing.T) {
	srv := testenv.StartGitHTTP(t, "u", "p")
	repo := srv.NewRepo(t, "persist")
	first := repo.Commit(t, map[string]string{"a.yaml": webYAML}, "one")
	repo.Push(t)
	dataDir := t.TempDir()
	src := Source{URL: repo.URL, Auth: Auth{Username: "u", PasswordFile: writeSecret(t, "p")}}

	s1 := newSyncer(t, src, WithDataDir(dataDir))
	fetch(t, s1)
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "git", src.mustKey(t), "HEAD")); err != nil {
		t.Fatalf("no bare clone on disk: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(dataDir, "git", src.mustKey(t), "config"))
	if err != nil || strings.Contains(string(cfg), "127.0.0.1") {
		t.Errorf("the clone's config should not record the remote URL: %s (%v)", cfg, err)
	}
	before := srv.Requests()
	s2 := newSyncer(t, src, WithDataDir(dataDir))
	snap, changed := fetch(t, s2)
	if !changed || snap.Revision != first {
		t.Errorf("after restart: changed=%v revision %s", changed, snap.Revision)
	}
	if got := srv.Requests(); got.UploadPack != before.UploadPack {
		t.Errorf("restart re-fetched objects already on disk: %+v → %+v", before, got)
	}
	// Incremental: the next commit arrives on top of the on-disk clone.
	second := repo.Commit(t, map[string]string{"b.yaml": dbYAML}, "two")
	repo.Push(t)
	if snap, _ := fetch(t, s2); snap.Revision != second || len(snap.Files) != 2 {
		t.Errorf("incremental fetch: %s %v", snap.Revision, fileNames(snap))
	}
	// A corrupt clone is thrown away and fetched again.
	s2.Close()
	if err := os.WriteFile(filepath.Join(dataDir, "git", src.mustKey(t), "HEAD"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dataDir, "git", src.mustKey(t), "refs"))
	if snap, _ := fetch(t, newSyncer(t, src, WithDataDir(dataDir))); snap.Revision != second {
		t.Errorf("after corrupting the clone: %s", snap.Revision)
	}
}

func (s Source) mustKey(t *testing.T) string {
	t.Helper()
	v, err := s.validate()
	if err != nil {
		t.Fatal(err)
	}
	return v.key()
}

// TestRunWebhookTriggersFetch wires Run, the webhook handler and a real git server:
// a signed push notification fetches at once (the poll interval is an hour), a bad
// signature triggers nothing.
func TestRunWebhookTriggersFetch(t *testing.T) {
	srv := testenv.StartGitDaemon(t)
	repo := srv.NewRepo(t, "hook")
	first := repo.Commit(t, map[string]string{"a.yaml": webYAML}, "one")
	repo.Push(t)
	s := newSyncer(t, Source{URL: repo.URL, Ref: "main", PollInterval: time.Hour})
	snaps := make(chan *Snapshot, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, func(sn *Snapshot) { snaps <- sn }); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	if sn := waitSnapshot(t, snaps); sn.Revision != first {
		t.Fatalf("initial snapshot %s, want %s", sn.Revision, first)
	}
	h, err := NewWebhookHandler(WebhookConfig{Secret: hookSecret, Logger: quietLogger()}, s)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(h)
	t.Cleanup(api.Close)
	post := func(body, sig string) int {
		req, _ := http.NewRequest(http.MethodPost, api.URL, strings.NewReader(body))
		req.Header.Set(HeaderGitHubEvent, "push")
		req.Header.Set(HeaderGitHubSignature, "sha256="+sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	second := repo.Commit(t, map[string]string{"a.yaml": dbYAML}, "two")
	repo.Push(t)
	body := `{"ref":"refs/heads/main"}`
	if code := post(body, SignBody([]byte(body), []byte("wrong"))); code != http.StatusUnauthorized {
		t.Errorf("bad signature: status %d, want 401", code)
	}
	other := `{"ref":"refs/heads/dev"}`
	if code := post(other, SignBody([]byte(other), hookSecret)); code != http.StatusOK {
		t.Errorf("push to another branch: status %d, want 200", code)
	}
	if n := len(s.trigger); n != 0 {
		t.Fatalf("rejected or unrelated deliveries left %d pending triggers", n)
	}
	if code := post(body, SignBody([]byte(body), hookSecret)); code != http.StatusAccepted {
		t.Fatalf("good signature: status %d, want 202", code)
	}
	if sn := waitSnapshot(t, snaps); sn.Revision != second {
		t.Fatalf("after the webhook: %s, want %s", sn.Revision, second)
	}
}

func waitSnapshot(t *testing.T, ch <-chan *Snapshot) *Snapshot {
	t.Helper()
	select {
	case sn := <-ch:
		return sn
	case <-time.After(30 * time.Second):
		t.Fatal("no snapshot within 30 s")
		return nil
	}
}

// TestTriggerBurstCoalesces: 100 triggers sent before Run starts cause one extra
// round; a burst while idle causes at most two rounds, never one per trigger.
func TestTriggerBurstCoalesces(t *testing.T) {
	srv := testenv.StartGitHTTP(t, "u", "p")
	repo := srv.NewRepo(t, "burst")
	repo.Commit(t, map[string]string{"a.yaml": webYAML}, "one")
	repo.Push(t)
	s := newSyncer(t, Source{URL: repo.URL, PollInterval: time.Hour, Auth: Auth{Username: "u", PasswordFile: writeSecret(t, "p")}})
	type idleEvent struct {
		pending  int
		afterAll bool
	}
	var allSent atomic.Bool
	idle := make(chan idleEvent, 100)
	s.waiting = func() { idle <- idleEvent{pending: len(s.trigger), afterAll: allSent.Load()} }
	for range 100 {
		s.Trigger()
	}
	allSent.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, func(*Snapshot) {}); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// settle counts the rounds until Run is idle with no trigger pending and none to come.
	settle := func() int {
		t.Helper()
		for rounds := 1; ; rounds++ {
			select {
			case ev := <-idle:
				if ev.afterAll && ev.pending == 0 {
					return rounds
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not go idle")
			}
		}
	}
	if rounds := settle(); rounds != 2 {
		t.Errorf("100 triggers queued before Run: %d rounds, want 2 (initial + one coalesced)", rounds)
	}
	if st := s.Status(); st.Checks != 2 || st.Fetches != 1 {
		t.Errorf("100 queued triggers: %d checks and %d fetches, want 2 and 1", st.Checks, st.Fetches)
	}

	// A new commit and a concurrent burst of triggers while idle: one object fetch,
	// at most two rounds.
	repo.Commit(t, map[string]string{"a.yaml": dbYAML}, "two")
	repo.Push(t)
	allSent.Store(false)
	checks := s.Status().Checks
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				s.Trigger()
			}
		}()
	}
	wg.Wait()
	allSent.Store(true)
	rounds := settle()
	st := s.Status()
	if rounds > 2 || st.Checks-checks != int64(rounds) {
		t.Errorf("burst of 100 triggers: %d rounds, %d checks; want 1 or 2 of each", rounds, st.Checks-checks)
	}
	if st.Fetches != 2 {
		t.Errorf("%d object fetches in total, want 2", st.Fetches)
	}
	if reqs := srv.Requests(); reqs.UploadPack != 2 {
		t.Errorf("server saw %d upload-pack requests, want 2", reqs.UploadPack)
	}
}

// TestRunBacksOffWhileServerDown: the loop keeps retrying with growing delays and
// reports each error; when the server comes back the snapshot arrives.
func TestRunBacksOffWhileServerDown(t *testing.T) {
	testenv.Integration(t, "git")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newSyncer(t, Source{URL: "git://" + addr + "/app.git", PollInterval: time.Hour}, WithBackoff(5*time.Millisecond, 20*time.Millisecond))
	var mu sync.Mutex
	var delays []time.Duration
	var errs []error
	enough := make(chan struct{})
	s.opts.onError = func(err error, retryIn time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		delays = append(delays, retryIn)
		errs = append(errs, err)
		if len(delays) == 5 {
			close(enough)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx, func(*Snapshot) { t.Error("snapshot from a down server") }); close(done) }()
	select {
	case <-enough:
	case <-time.After(30 * time.Second):
		t.Fatal("fewer than 5 retries")
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i, base := range []time.Duration{5, 10, 20, 20, 20} {
		base *= time.Millisecond
		if d := delays[i]; d < base*9/10 || d > base*11/10 {
			t.Errorf("retry %d after %s, want %s ±10%%", i+1, d, base)
		}
		if !errors.Is(errs[i], api.ErrUnavailable) {
			t.Errorf("error %d = %v, want ErrUnavailable", i+1, errs[i])
		}
	}
	if st := s.Status(); st.Failures < 5 || st.LastError == nil {
		t.Errorf("status %+v, want ≥5 failures and the last error", st)
	}
}

func TestEnsureRepository(t *testing.T) {
	testenv.Integration(t, "git")
	dir := t.TempDir()
	for name, content := range map[string]string{"web.yaml": webYAML, "apps/db.yaml": dbYAML, "local.yaml": "ignored", ".gitignore": "local.yaml\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	created, err := EnsureRepository(dir)
	if err != nil || !created {
		t.Fatalf("EnsureRepository = %v, %v; want created", created, err)
	}
	snap, _ := fetch(t, newSyncer(t, Source{URL: dir}))
	if d := cmp.Diff([]string{"apps/db.yaml", "web.yaml"}, fileNames(snap)); d != "" || snap.Ref != "refs/heads/main" {
		t.Errorf("imported directory at %s (-want +got):\n%s", snap.Ref, d)
	}
	for _, d := range []string{dir, filepath.Join(dir, "apps")} {
		if created, err := EnsureRepository(d); err != nil || created {
			t.Errorf("EnsureRepository(%s) inside a repository = %v, %v; want no change", d, created, err)
		}
	}
	if _, err := EnsureRepository(filepath.Join(dir, "missing")); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing directory: %v", err)
	}
}
