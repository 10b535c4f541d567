package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// Vault is a HashiCorp Vault dev server for one test: v1.14.1 (MPL-2.0) built from
// source by e2e/tools/vaultdev, in memory, unsealed, on 127.0.0.1 with a random root
// token. The dev server mounts KV v2 at "secret/".
type Vault struct {
	bin   string
	dir   string
	port  int
	token string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *vaultLog
	client *vaultapi.Client
}

var (
	vaultBuildMu  sync.Mutex
	vaultBuildErr error
	vaultBuilt    bool
)

// VaultBinary returns the path of the Vault dev binary, CacheDir()/vault/vault,
// building it first when it is missing or older than e2e/tools/vaultdev's go.mod,
// go.sum and main.go — the same command as `make vault`
// (e2e/tools/vaultdev/build.sh), serialized across processes by a file lock. A cold
// build downloads about 520 MB of modules and takes minutes: run `make vault` first, or
// give go test a -timeout of 20m or more.
func VaultBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(CacheDir(), "vault", "vault")
	vaultBuildMu.Lock()
	defer vaultBuildMu.Unlock()
	if !vaultBuilt && vaultBuildErr == nil {
		_, goErr := exec.LookPath("go")
		if _, err := os.Stat(bin); err != nil {
			Require(t, goErr == nil, "go on PATH to build the Vault dev server (or run make vault)")
		}
		if goErr == nil {
			var out bytes.Buffer
			cmd := exec.Command("bash", filepath.Join(RepoRoot(), "e2e", "tools", "vaultdev", "build.sh"), bin)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				vaultBuildErr = fmt.Errorf("build vault dev server: %w\n%s", err, vaultTail(out.String(), 4000))
			}
		}
		vaultBuilt = vaultBuildErr == nil
	}
	if vaultBuildErr != nil {
		t.Fatal(vaultBuildErr)
	}
	return bin
}

func vaultTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// StartVault starts a dev server for t on a free port of 127.0.0.1 (its cluster
// listener takes the next port, which must be free too) and waits until it answers
// /v1/sys/health. At cleanup it stops the server and removes its directory.
func StartVault(t testing.TB) *Vault {
	t.Helper()
	Integration(t)
	bin := VaultBinary(t)
	dir := t.TempDir()
	tok := make([]byte, 12)
	if _, err := rand.Read(tok); err != nil {
		t.Fatalf("vault: root token: %v", err)
	}
	v := &Vault{bin: bin, dir: dir, token: "root-" + hex.EncodeToString(tok)}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := vaultFreePortPair()
		if err != nil {
			t.Fatalf("vault: free port: %v", err)
		}
		v.port = port
		if lastErr = v.launch(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("vault dev server did not start: %v", lastErr)
	}
	t.Cleanup(v.stop)
	c, err := vaultapi.NewClient(&vaultapi.Config{Address: v.Addr(), MaxRetries: 0, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("vault client: %v", err)
	}
	c.SetToken(v.token)
	c.ClearNamespace()
	v.client = c
	return v
}

// Addr returns the server's URL, "http://127.0.0.1:PORT" (a SecretStore's
// spec.provider.vault.server).
func (v *Vault) Addr() string { return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port)) }

// RootToken returns the dev server's root token (random per server).
func (v *Vault) RootToken() string { return v.token }

// Client returns a vault/api client logged in with the root token.
func (v *Vault) Client() *vaultapi.Client { return v.client }

// Log returns what the server has written so far.
func (v *Vault) Log() string {
	v.mu.Lock()
	l := v.log
	v.mu.Unlock()
	return l.String()
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s); its in-memory data is lost.
// Clients then get "connection refused".
func (v *Vault) Stop(t testing.TB) {
	t.Helper()
	v.stop()
}

// Restart starts the server again on the same address with the same root token. It is
// a new, empty dev server: mounts, secrets, policies and AppRoles must be written again
// (the dev server's "secret/" KV v2 mount is back).
func (v *Vault) Restart(t testing.TB) {
	t.Helper()
	v.stop()
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The old process's ports can take a moment to be released.
		if err = v.launch(); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("vault restart on port %d: %v", v.port, err)
	}
}

func (v *Vault) launch() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.log = &vaultLog{}
	cmd := exec.Command(v.bin, "server", "-dev",
		"-dev-root-token-id="+v.token,
		"-dev-listen-address="+net.JoinHostPort("127.0.0.1", strconv.Itoa(v.port)),
		"-dev-no-store-token",
		"-log-level=warn")
	// A clean environment: no VAULT_* of the developer's shell, HOME in the test's dir.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + v.dir}
	cmd.Dir = v.dir
	cmd.Stdout, cmd.Stderr = v.log, v.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", v.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	v.cmd, v.exited = cmd, exited
	if err := v.waitReady(60*time.Second, exited); err != nil {
		v.kill()
		return err
	}
	return nil
}

func (v *Vault) waitReady(limit time.Duration, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-exited:
			return fmt.Errorf("vault exited on port %d: %s", v.port, vaultTail(v.log.String(), 4000))
		default:
		}
		resp, err := hc.Get(v.Addr() + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v1/sys/health: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault on port %d not ready after %v: %w; log: %s", v.port, limit, err, vaultTail(v.log.String(), 4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (v *Vault) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return
	}
	select {
	case <-v.exited:
	default:
		_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-v.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
			<-v.exited
		}
	}
	v.cmd = nil
}

// kill ends a process that never became ready; v.mu is held.
func (v *Vault) kill() {
	_ = syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
	<-v.exited
	v.cmd = nil
}

func (v *Vault) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// EnableKV1 mounts a KV version 1 engine at mount.
func (v *Vault) EnableKV1(t testing.TB, mount string) {
	t.Helper()
	if err := v.client.Sys().MountWithContext(v.ctx(t), mount, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("vault: mount kv v1 at %s: %v", mount, err)
	}
}

// EnableKV2 mounts a KV version 2 engine at mount (the dev server has one at "secret").
func (v *Vault) EnableKV2(t testing.TB, mount string) {
	t.Helper()
	if err := v.client.Sys().MountWithContext(v.ctx(t), mount, &vaultapi.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("vault: mount kv v2 at %s: %v", mount, err)
	}
}

// WriteKV1 writes data at mount/path of a KV v1 engine.
func (v *Vault) WriteKV1(t testing.TB, mount, path string, data map[string]any) {
	t.Helper()
	if err := v.client.KVv1(mount).Put(v.ctx(t), path, data); err != nil {
		t.Fatalf("vault: write kv v1 %s/%s: %v", mount, path, err)
	}
}

// WriteKV2 writes a new version of mount/path on a KV v2 engine and returns its
// version number. A mount created a moment ago may still be upgrading; the write is
// retried for up to 15s.
func (v *Vault) WriteKV2(t testing.TB, mount, path string, data map[string]any) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := v.client.KVv2(mount).Put(v.ctx(t), path, data)
		if err == nil {
			return s.VersionMetadata.Version
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault: write kv v2 %s/%s: %v", mount, path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DeleteKV2 soft-deletes the latest version of mount/path on a KV v2 engine.
func (v *Vault) DeleteKV2(t testing.TB, mount, path string) {
	t.Helper()
	if err := v.client.KVv2(mount).Delete(v.ctx(t), path); err != nil {
		t.Fatalf("vault: delete kv v2 %s/%s: %v", mount, path, err)
	}
}

// WritePolicy writes an ACL policy.
func (v *Vault) WritePolicy(t testing.TB, name, hcl string) {
	t.Helper()
	if err := v.client.Sys().PutPolicyWithContext(v.ctx(t), name, hcl); err != nil {
		t.Fatalf("vault: policy %s: %v", name, err)
	}
}

// CreateToken creates a renewable child token of the root token with the given
// policies, TTL and explicit maximum TTL ("" for none), and returns it.
func (v *Vault) CreateToken(t testing.TB, policies []string, ttl, maxTTL string) string {
	t.Helper()
	renewable := true
	s, err := v.client.Auth().Token().CreateWithContext(v.ctx(t), &vaultapi.TokenCreateRequest{
		Policies: policies, TTL: ttl, ExplicitMaxTTL: maxTTL, Renewable: &renewable,
	})
	if err != nil {
		t.Fatalf("vault: create token: %v", err)
	}
	return s.Auth.ClientToken
}

// EnableAppRole enables the AppRole auth method at auth/<mount>.
func (v *Vault) EnableAppRole(t testing.TB, mount string) {
	t.Helper()
	if err := v.client.Sys().EnableAuthWithOptionsWithContext(v.ctx(t), mount, &vaultapi.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("vault: enable approle at %s: %v", mount, err)
	}
}

// CreateAppRole creates (or replaces) role under auth/<mount> with the given settings
// (token_policies, token_ttl, token_max_ttl, …), and returns its role ID and a new
// secret ID.
func (v *Vault) CreateAppRole(t testing.TB, mount, role string, settings map[string]any) (roleID, secretID string) {
	t.Helper()
	ctx := v.ctx(t)
	base := "auth/" + mount + "/role/" + role
	if _, err := v.client.Logical().WriteWithContext(ctx, base, settings); err != nil {
		t.Fatalf("vault: approle role %s: %v", base, err)
	}
	s, err := v.client.Logical().ReadWithContext(ctx, base+"/role-id")
	if err != nil || s == nil {
		t.Fatalf("vault: read %s/role-id: %v", base, err)
	}
	roleID, _ = s.Data["role_id"].(string)
	s, err = v.client.Logical().WriteWithContext(ctx, base+"/secret-id", nil)
	if err != nil || s == nil {
		t.Fatalf("vault: new %s/secret-id: %v", base, err)
	}
	secretID, _ = s.Data["secret_id"].(string)
	if roleID == "" || secretID == "" {
		t.Fatalf("vault: approle %s returned an empty role or secret ID", base)
	}
	return roleID, secretID
}

// vaultFreePortPair returns a port P of 127.0.0.1 such that P and P+1 are free now.
func vaultFreePortPair() (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("listen: %w", err)
		}
		addr, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			l.Close()
			return 0, errors.New("listener address is not TCP")
		}
		p := addr.Port
		if p >= 65535 {
			l.Close()
			continue
		}
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, errors.New("no free pair of adjacent ports on 127.0.0.1")
}

// vaultLog collects the server's output.
type vaultLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *vaultLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *vaultLog) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
