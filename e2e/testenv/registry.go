package testenv

import (
	"bytes"
	"context"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"gantry.io/gantry/e2e/images/imagebuild"
)

// RegistryBinary is Debian's OCI registry (package docker-registry, distribution 2.8).
const RegistryBinary = "/usr/bin/docker-registry"

// Registry is a docker-registry process started for one test: plain HTTP on a free
// port of 127.0.0.1, storage in a temporary directory, optionally with basic auth.
type Registry struct {
	addr       string
	user, pass string
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *registryLog
}

// RegistryOption configures StartRegistry.
type RegistryOption func(*registryConfig)

type registryConfig struct {
	user, pass string
}

// WithBasicAuth makes the registry require HTTP basic auth with this one user (an
// htpasswd file with a bcrypt hash). Without it the registry allows anonymous pushes
// and pulls.
func WithBasicAuth(user, pass string) RegistryOption {
	return func(c *registryConfig) { c.user, c.pass = user, pass }
}

// StartRegistry starts Debian's docker-registry with a configuration generated in
// t.TempDir(), storage in another t.TempDir(), listening on 127.0.0.1 on a free port,
// and waits until /v2/ answers (200, or 401 with basic auth). It is stopped (SIGTERM,
// then SIGKILL after 10s) at t.Cleanup. The test fails if it does not come up within
// 30s; its log is then part of the failure message.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	_, err := os.Stat(RegistryBinary)
	Require(t, err == nil, "%s (Debian package docker-registry; make deps installs it)", RegistryBinary)
	var cfg registryConfig
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	storage := t.TempDir()
	authBlock := ""
	if cfg.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(cfg.pass), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("registry htpasswd: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(cfg.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatalf("registry htpasswd: %v", err)
		}
		authBlock = fmt.Sprintf("auth:\n  htpasswd:\n    realm: gantry-test\n    path: %s\n", htpasswd)
	}

	// The port is picked by binding :0 and releasing it, so another process can take
	// it in between; a registry that exits at once is retried on a new port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := registryFreePort()
		if err != nil {
			t.Fatalf("registry: free port: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, storage, addr, authBlock)
		cfgFile := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
			t.Fatalf("registry config: %v", err)
		}
		r := &Registry{addr: addr, user: cfg.user, pass: cfg.pass, exited: make(chan struct{}), log: &registryLog{}}
		r.cmd = exec.Command(RegistryBinary, "serve", cfgFile)
		r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
		// No Pdeathsig: it fires when the spawning OS thread exits, and code that locks a
		// thread to enter a network namespace (executor/sandbox) makes Go destroy threads,
		// which killed the registry in the middle of tests. t.Cleanup stops it.
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := r.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", RegistryBinary, err)
		}
		go func() { _ = r.cmd.Wait(); close(r.exited) }()
		if err := r.waitReady(30 * time.Second); err != nil {
			r.stop()
			lastErr = err
			continue
		}
		t.Cleanup(r.stop)
		return r
	}
	t.Fatalf("registry did not start: %v", lastErr)
	return nil
}

// Addr returns "127.0.0.1:PORT".
func (r *Registry) Addr() string { return r.addr }

// Ref returns the reference of repoTag (e.g. "echo:v1") in this registry:
// "127.0.0.1:PORT/echo:v1".
func (r *Registry) Ref(repoTag string) string { return r.addr + "/" + repoTag }

// Credentials returns the basic-auth user and password, or two empty strings when the
// registry allows anonymous access.
func (r *Registry) Credentials() (user, pass string) { return r.user, r.pass }

// Log returns what the registry has written so far (warnings and errors only).
func (r *Registry) Log() string { return r.log.String() }

// Push uploads the image in an OCI archive written by e2e/images/imagebuild (for
// example Images(t).EchoV1.Archive) as repoTag ("echo:v1") over plain HTTP, with the
// registry's credentials when basic auth is on, and returns the pushed reference
// ("127.0.0.1:PORT/echo:v1"). The manifest is pushed byte for byte, so its digest in
// the registry equals the archive's. Any failure fails the test.
func (r *Registry) Push(t testing.TB, archivePath, repoTag string) string {
	t.Helper()
	a, err := imagebuild.Open(archivePath)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	ref := r.Ref(repoTag)
	tag, err := name.NewTag(ref, name.Insecure, name.StrictValidation)
	if err != nil {
		t.Fatalf("push: reference %q: %v", ref, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(tag, a.Image, remote.WithContext(ctx), remote.WithAuth(r.authenticator())); err != nil {
		t.Fatalf("push %s to %s: %v", archivePath, ref, err)
	}
	return ref
}

// authenticator returns the credentials go-containerregistry should send.
func (r *Registry) authenticator() authn.Authenticator {
	if r.user == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.user, Password: r.pass}
}

func (r *Registry) waitReady(limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-r.exited:
			return fmt.Errorf("docker-registry exited on %s: %s", r.addr, r.log.String())
		default:
		}
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker-registry on %s not ready after %v: %w; log: %s", r.addr, limit, err, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10s.
func (r *Registry) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

func registryFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("listener address is not TCP")
	}
	return addr.Port, nil
}

// registryLog collects the registry's output; it is written by the process's copy
// goroutines and read by the test.
type registryLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *registryLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *registryLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
