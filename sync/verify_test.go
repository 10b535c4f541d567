package gitsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
)

func newKey(t *testing.T, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@gantry.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return e
}

func writeKeyring(t *testing.T, keys ...*openpgp.Entity) string {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := k.Serialize(w); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	p := filepath.Join(t.TempDir(), "trusted.asc")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// signedCommit writes files in the working clone and commits them with go-git,
// signed by key.
func signedCommit(t *testing.T, repo *testenv.Repo, key *openpgp.Entity, files map[string]string, msg string) string {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(repo.Dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := git.PlainOpen(repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := w.Commit(msg, &git.CommitOptions{
		Author:  &object.Signature{Name: "Signer", Email: "signer@gantry.invalid", When: time.Now()},
		SignKey: key,
	})
	if err != nil {
		t.Fatalf("signed commit: %v", err)
	}
	return h.String()
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

func wantUnverified(t *testing.T, err error, rev, reason string) {
	t.Helper()
	var uv *UnverifiedError
	if !errors.As(err, &uv) {
		t.Fatalf("error %v, want *UnverifiedError", err)
	}
	if uv.Revision != rev || !strings.Contains(uv.Reason, reason) {
		t.Errorf("UnverifiedError{%s, %q}, want revision %s and reason containing %q", uv.Revision, uv.Reason, rev, reason)
	}
	if !errors.Is(err, api.ErrFailedPrecondition) {
		t.Errorf("UnverifiedError is not classed FailedPrecondition")
	}
}

func TestCommitSignatureVerification(t *testing.T) {
	srv := testenv.StartGitDaemon(t)
	repo := srv.NewRepo(t, "signed")
	trusted, stranger := newKey(t, "Trusted"), newKey(t, "Stranger")
	keyring := writeKeyring(t, trusted)

	good := signedCommit(t, repo, trusted, map[string]string{"app.yaml": "v: 1\n"}, "signed by trusted")
	repo.Push(t)
	s := newSyncer(t, Source{URL: repo.URL, TrustedKeysFile: keyring})
	snap, _ := fetch(t, s)
	if snap.Revision != good || snap.SignedBy != fingerprint(trusted) {
		t.Fatalf("snapshot %s signed by %q, want %s by %s", snap.Revision, snap.SignedBy, good, fingerprint(trusted))
	}

	// Unsigned head: refused, every time, without fetching its objects again.
	unsigned := repo.Commit(t, map[string]string{"app.yaml": "v: 2\n"}, "unsigned")
	repo.Push(t)
	_, _, err := s.Fetch(context.Background())
	wantUnverified(t, err, unsigned, "not signed")
	fetches := s.Status().Fetches
	_, _, err = s.Fetch(context.Background())
	wantUnverified(t, err, unsigned, "not signed")
	if got := s.Status().Fetches; got != fetches {
		t.Errorf("re-checking a refused head fetched objects again (%d → %d)", fetches, got)
	}
	if st := s.Status(); st.Revision != good {
		t.Errorf("status revision %s, want the last good %s", st.Revision, good)
	}

	// Signed, but by a key that is not in the keyring.
	strange := signedCommit(t, repo, stranger, map[string]string{"app.yaml": "v: 3\n"}, "signed by a stranger")
	repo.Push(t)
	_, _, err = s.Fetch(context.Background())
	wantUnverified(t, err, strange, "unknown key "+fingerprint(stranger))

	// A trusted signature transplanted onto other content does not verify.
	forged := forgeCommit(t, repo, good)
	_, _, err = s.Fetch(context.Background())
	wantUnverified(t, err, forged, "invalid signature")

	// Back to a trusted commit: deployed.
	repo.Git(t, "fetch", "--quiet", "origin")
	repo.Git(t, "reset", "--quiet", "--hard", "origin/main")
	fixed := signedCommit(t, repo, trusted, map[string]string{"app.yaml": "v: 4\n"}, "signed again")
	repo.Push(t)
	snap, changed := fetch(t, s)
	if !changed || snap.Revision != fixed {
		t.Errorf("after a trusted commit: changed=%v revision %s, want %s", changed, snap.Revision, fixed)
	}

	// Run reports the refusal, retrying at the poll interval (it needs a new commit,
	// not a faster retry).
	repo.Commit(t, map[string]string{"app.yaml": "v: 5\n"}, "unsigned again")
	repo.Push(t)
	got := make(chan time.Duration, 1)
	s2 := newSyncer(t, Source{URL: repo.URL, TrustedKeysFile: keyring, PollInterval: time.Hour},
		WithOnError(func(err error, retryIn time.Duration) {
			var uv *UnverifiedError
			if errors.As(err, &uv) {
				select {
				case got <- retryIn:
				default:
				}
			}
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s2.Run(ctx, func(*Snapshot) { t.Error("an unsigned head was delivered") }); close(done) }()
	defer func() { cancel(); <-done }()
	select {
	case d := <-got:
		if d != time.Hour {
			t.Errorf("retry after %s, want the poll interval (1h)", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run reported no UnverifiedError")
	}
}

// forgeCommit stores, in the bare repository, a copy of the signed commit rev with a
// different message and the original signature, and points main at it.
func forgeCommit(t *testing.T, repo *testenv.Repo, rev string) string {
	t.Helper()
	r, err := git.PlainOpen(repo.Bare)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := r.CommitObject(plumbing.NewHash(rev))
	if err != nil {
		t.Fatal(err)
	}
	forged := *orig
	forged.Message = "deploy something else\n"
	obj := r.Storer.NewEncodedObject()
	if err := forged.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := r.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference("refs/heads/main", h)); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestVerifyCommitRejectsOtherSignatureKinds(t *testing.T) {
	keys, err := ReadKeyring(mustArmor(t, newKey(t, "K")))
	if err != nil {
		t.Fatal(err)
	}
	for sig, reason := range map[string]string{
		"":                                    "not signed",
		"-----BEGIN SSH SIGNATURE-----\nx\n":  "SSH signature",
		"-----BEGIN SIGNED MESSAGE-----\nx\n": "X.509",
		"-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n-----BEGIN PGP SIGNATURE-----\ny\n-----END PGP SIGNATURE-----\n": "more than one",
		"-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n":                                           "invalid signature",
	} {
		c := &object.Commit{Hash: plumbing.NewHash("aa"), Message: "m", PGPSignature: sig,
			Author: object.Signature{Name: "a", Email: "a@b"}, Committer: object.Signature{Name: "a", Email: "a@b"}}
		_, err := VerifyCommit(c, keys)
		wantUnverified(t, err, c.Hash.String(), reason)
	}
}

func mustArmor(t *testing.T, e *openpgp.Entity) []byte {
	t.Helper()
	p := writeKeyring(t, e)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTrustedKeysFileIsChecked(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.asc")
	if err := os.WriteFile(bad, []byte("not a keyring"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Source{URL: "/r.git", TrustedKeysFile: bad}); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("bad keyring: %v, want ErrInvalidArgument", err)
	}
	if _, err := New(Source{URL: "/r.git", TrustedKeysFile: "/nonexistent.asc"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("missing keyring: %v, want ErrNotFound", err)
	}
}
