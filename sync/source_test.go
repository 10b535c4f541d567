package gitsync

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"

	"gantry.io/gantry/api"
)

func TestSanitizeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://user:tok3n@git.example.test/org/repo.git?private_token=abc#frag", "https://git.example.test/org/repo.git"},
		{"http://tok3n@127.0.0.1:8080/r.git", "http://127.0.0.1:8080/r.git"},
		{"ssh://git@host.test:2222/org/r.git", "ssh://host.test:2222/org/r.git"},
		{"git@host.test:org/r.git", "host.test:org/r.git"},
		{"git://127.0.0.1:9418/r.git", "git://127.0.0.1:9418/r.git"},
		{"/srv/git/r.git", "/srv/git/r.git"},
		{"./manifests", "./manifests"},
		{"file:///srv/git/r.git", "file:///srv/git/r.git"},
		// Unparseable URL (bad escape in the password): userinfo still goes.
		{"https://u:p%zz@host.test/r.git?x=1", "https://host.test/r.git"},
	} {
		if got := SanitizeURL(tc.in); got != tc.want {
			t.Errorf("SanitizeURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestScrubRemovesSecretsFromErrorText(t *testing.T) {
	raw := "https://bob:hunter22@git.example.test/r.git?token=qq"
	text := `Get "https://bob:hunter22@git.example.test/r.git/info/refs?service=git-upload-pack&token=qq": dial tcp: refused; password hunter22`
	got := scrub(text, raw, "hunter22")
	for _, bad := range []string{"hunter22", "token=qq", "bob:"} {
		if strings.Contains(got, bad) {
			t.Errorf("scrubbed text %q still contains %q", got, bad)
		}
	}
	if !strings.Contains(got, "git.example.test/r.git/info/refs") {
		t.Errorf("scrubbed text lost the useful part: %q", got)
	}
}

func TestWrapErrKeepsClassesNotText(t *testing.T) {
	cause := errors.New("authentication required for https://u:topsecret@h.test/r.git")
	err := wrapErr("https://u:topsecret@h.test/r.git", "list refs", errors.Join(cause, api.ErrUnauthenticated), "topsecret")
	if !errors.Is(err, api.ErrUnauthenticated) {
		t.Errorf("class lost: %v", err)
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("secret in error: %v", err)
	}
	if errors.Is(err, cause) {
		t.Errorf("the raw cause (whose text holds the secret) is still in the chain")
	}
	// Unknown trouble is worth retrying.
	if err := wrapErr("git://h.test/r.git", "fetch", errors.New("connection reset")); !errors.Is(err, api.ErrUnavailable) {
		t.Errorf("plain error not classed unavailable: %v", err)
	}
}

func TestValidateSource(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want string // substring of the error; "" = valid
	}{
		{"empty url", Source{}, "URL is empty"},
		{"bad scheme", Source{URL: "ftp://h.test/r.git"}, "unsupported scheme"},
		{"path escapes", Source{URL: "/r.git", Path: "../etc"}, "leaves the repository"},
		{"ssh creds on https", Source{URL: "https://h.test/r.git", Auth: Auth{SSHKeyFile: "/k"}}, "need an ssh"},
		{"http creds on ssh", Source{URL: "git@h.test:r.git", Auth: Auth{TokenEnv: "T"}}, "need an http"},
		{"both", Source{URL: "https://h.test/r.git", Auth: Auth{SSHKeyFile: "/k", TokenEnv: "T"}}, "use one"},
		{"creds over plain http", Source{URL: "http://h.test/r.git", Auth: Auth{TokenEnv: "T"}}, "plain http"},
		{"userinfo over plain http", Source{URL: "http://u:p@h.test/r.git"}, "plain http"},
		{"bad ref", Source{URL: "/r.git", Ref: "a..b"}, "not a valid"},
		{"negative poll", Source{URL: "/r.git", PollInterval: -time.Second}, "negative"},
		{"creds over loopback http", Source{URL: "http://127.0.0.1:1/r.git", Auth: Auth{TokenEnv: "T"}}, ""},
		{"insecure allowed", Source{URL: "http://h.test/r.git", Auth: Auth{TokenEnv: "T"}, AllowInsecureHTTP: true}, ""},
		{"scp-like", Source{URL: "git@h.test:org/r.git", Auth: Auth{SSHKeyFile: "/k"}}, ""},
		{"local", Source{URL: "./repo", Path: "./deploy/"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.src.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if got.PollInterval == 0 {
					t.Errorf("poll interval default not applied")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, api.ErrInvalidArgument) {
				t.Fatalf("validate error = %v, want ErrInvalidArgument containing %q", err, tc.want)
			}
		})
	}
	got, err := Source{URL: "/r.git", Path: "/deploy//apps/"}.validate()
	if err != nil || got.Path != "deploy/apps" || got.PollInterval != DefaultPollInterval {
		t.Errorf("validate = %+v, %v; want path deploy/apps and poll 15s", got, err)
	}
}

func TestResolveRef(t *testing.T) {
	c1 := plumbing.NewHash("1111111111111111111111111111111111111111")
	c2 := plumbing.NewHash("2222222222222222222222222222222222222222")
	tagObj := plumbing.NewHash("3333333333333333333333333333333333333333")
	refs := []*plumbing.Reference{
		plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main"),
		plumbing.NewHashReference("refs/heads/main", c2),
		plumbing.NewHashReference("refs/heads/dev", c1),
		plumbing.NewHashReference("refs/heads/both", c1),
		plumbing.NewHashReference("refs/tags/both", c2),
		plumbing.NewHashReference("refs/tags/v1", tagObj),
		plumbing.NewHashReference("refs/tags/v1^{}", c1),
	}
	type res struct {
		Name, Hash, Commit, Display string
		Pinned                      bool
	}
	conv := func(t target) res {
		return res{t.name.String(), t.hash.String(), t.commit.String(), t.display, t.pinned}
	}
	for _, tc := range []struct {
		ref  string
		want res
		err  error
	}{
		{"", res{"refs/heads/main", c2.String(), c2.String(), "refs/heads/main", false}, nil},
		{"main", res{"refs/heads/main", c2.String(), c2.String(), "refs/heads/main", false}, nil},
		{"refs/heads/dev", res{"refs/heads/dev", c1.String(), c1.String(), "refs/heads/dev", false}, nil},
		{"v1", res{"refs/tags/v1", tagObj.String(), c1.String(), "refs/tags/v1", false}, nil},
		{"refs/tags/both", res{"refs/tags/both", c2.String(), c2.String(), "refs/tags/both", false}, nil},
		// A commit is fetched through a branch pointing at it, preferred over tags.
		{c1.String(), res{"refs/heads/both", c1.String(), c1.String(), c1.String(), true}, nil},
		{strings.ToUpper(c2.String()), res{"refs/heads/main", c2.String(), c2.String(), c2.String(), true}, nil},
		{"4444444444444444444444444444444444444444", res{"", "4444444444444444444444444444444444444444", "4444444444444444444444444444444444444444", "4444444444444444444444444444444444444444", true}, nil},
		{"both", res{}, api.ErrInvalidArgument},
		{"nope", res{}, api.ErrNotFound},
		{"refs/heads/nope", res{}, api.ErrNotFound},
		{"1111111", res{}, api.ErrNotFound},
	} {
		got, err := resolveRef(refs, tc.ref)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("resolveRef(%q) error = %v, want %v", tc.ref, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("resolveRef(%q): %v", tc.ref, err)
			continue
		}
		if d := cmp.Diff(tc.want, conv(got)); d != "" {
			t.Errorf("resolveRef(%q) (-want +got):\n%s", tc.ref, d)
		}
	}
	if _, err := resolveRef(refs[1:], ""); !errors.Is(err, api.ErrNotFound) || !strings.Contains(err.Error(), "no HEAD") {
		t.Errorf("no HEAD: %v", err)
	}
	_, err := resolveRef(refs, "nope")
	if err == nil || !strings.Contains(err.Error(), "branches: both, dev, main; tags: both, v1") {
		t.Errorf("not-found error should list what exists: %v", err)
	}
}

func TestBackoffDoublesAndCaps(t *testing.T) {
	s := &Syncer{opts: options{backoffInitial: 100 * time.Millisecond, backoffMax: 800 * time.Millisecond}}
	for _, tc := range []struct {
		failures int
		base     time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond}, {4, 800 * time.Millisecond}, {9, 800 * time.Millisecond}} {
		got := s.backoff(tc.failures)
		lo, hi := tc.base*9/10, tc.base*11/10
		if got < lo || got > hi {
			t.Errorf("backoff(%d) = %s, want %s ±10%%", tc.failures, got, tc.base)
		}
	}
}

func TestWantsRef(t *testing.T) {
	mk := func(ref string) *Syncer {
		s, err := New(Source{URL: "/r.git", Ref: ref})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		srcRef, pushed string
		want           bool
	}{
		{"main", "refs/heads/main", true},
		{"main", "refs/heads/dev", false},
		{"v1", "refs/tags/v1", true},
		{"refs/heads/main", "refs/heads/main", true},
		{"refs/heads/main", "refs/tags/main", false},
		{"", "refs/heads/anything", true}, // default branch unknown before the first fetch
		{"main", "", true},                // payload without a ref
		{strings.Repeat("a", 40), "refs/heads/main", false},
	} {
		if got := mk(tc.srcRef).Wants(tc.pushed); got != tc.want {
			t.Errorf("source ref %q: Wants(%q) = %v, want %v", tc.srcRef, tc.pushed, got, tc.want)
		}
	}
	s := mk("")
	s.lastRef = "refs/heads/trunk"
	if s.Wants("refs/heads/main") || !s.Wants("refs/heads/trunk") {
		t.Errorf("after resolving HEAD to trunk, only trunk pushes are wanted")
	}
}
