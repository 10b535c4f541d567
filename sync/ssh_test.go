package gitsync

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
)

// newSSHKey writes an OpenSSH private key file (encrypted if passphrase is set) and
// returns its path and public key.
func newSSHKey(t *testing.T, passphrase string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "gantry test")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "gantry test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sshPub
}

func TestSSHKeyAndKnownHosts(t *testing.T) {
	testenv.Integration(t, "git")
	const passphrase = "kee-pa55phrase"
	keyFile, pub := newSSHKey(t, passphrase)
	srv := testenv.StartGitSSH(t, pub)
	repo := srv.NewRepo(t, "app")
	want := repo.Commit(t, map[string]string{"deploy/web.yaml": webYAML}, "over ssh")
	repo.Push(t)
	knownHosts := srv.KnownHostsFile(t)
	auth := Auth{SSHKeyFile: keyFile, SSHKeyPassphraseFile: writeSecret(t, passphrase), KnownHostsFile: knownHosts}

	s := newSyncer(t, Source{URL: repo.URL, Path: "deploy", Auth: auth})
	snap, _ := fetch(t, s)
	if snap.Revision != want || string(snap.Files["web.yaml"]) != webYAML {
		t.Fatalf("over ssh: revision %s files %v, want %s", snap.Revision, fileNames(snap), want)
	}
	if _, changed := fetch(t, s); changed {
		t.Errorf("second fetch over ssh: changed")
	}

	otherKey, _ := newSSHKey(t, "")
	// A known_hosts file for another server with the same address.
	otherSrv := testenv.StartGitSSH(t, pub)
	wrongHosts := filepath.Join(t.TempDir(), "known_hosts")
	b, err := os.ReadFile(otherSrv.KnownHostsFile(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrongHosts, []byte(strings.Replace(string(b), otherSrv.Addr[strings.LastIndex(otherSrv.Addr, ":")+1:], srv.Addr[strings.LastIndex(srv.Addr, ":")+1:], 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		auth  Auth
		class error
	}{
		{"key not authorized", Auth{SSHKeyFile: otherKey, KnownHostsFile: knownHosts}, api.ErrUnauthenticated},
		{"host key mismatch", Auth{SSHKeyFile: keyFile, SSHKeyPassphraseFile: writeSecret(t, passphrase), KnownHostsFile: wrongHosts}, api.ErrUnauthenticated},
		{"wrong passphrase", Auth{SSHKeyFile: keyFile, SSHKeyPassphraseFile: writeSecret(t, "not-the-phrase"), KnownHostsFile: knownHosts}, api.ErrInvalidArgument},
		{"missing key file", Auth{SSHKeyFile: "/nonexistent/id", KnownHostsFile: knownHosts}, api.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newSyncer(t, Source{URL: repo.URL, Auth: tc.auth}).Fetch(context.Background())
			if !errors.Is(err, tc.class) {
				t.Fatalf("error %v, want %v", err, tc.class)
			}
			for _, leak := range []string{passphrase, "not-the-phrase"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error contains the passphrase: %v", err)
				}
			}
		})
	}
}
