package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// GitServer serves the bare repositories under BaseDir on 127.0.0.1: with `git daemon`
// (git://), with git http-backend behind net/http/cgi (http://, basic auth), or over
// SSH (ssh://, public-key auth). It is stopped when the test ends.
type GitServer struct {
	// BaseDir holds the bare repositories, one <name>.git directory each.
	BaseDir string
	// Addr is the listening address, 127.0.0.1:PORT.
	Addr string

	scheme  string
	home    string
	hostKey ssh.PublicKey // StartGitSSH only

	// Request counters of the HTTP variant (always zero for git daemon).
	listRefs    atomic.Int64
	uploadPack  atomic.Int64
	receivePack atomic.Int64
	rejected    atomic.Int64
}

// GitRequests counts the smart-HTTP requests a StartGitHTTP server has answered.
type GitRequests struct {
	// ListRefs: GET info/refs?service=git-upload-pack (an ls-remote, also the
	// first step of every fetch).
	ListRefs int64
	// UploadPack: POST git-upload-pack (a fetch that negotiates and receives objects).
	UploadPack int64
	// ReceivePack: POST git-receive-pack (a push).
	ReceivePack int64
	// Rejected: requests refused with 401 (missing or wrong credentials).
	Rejected int64
}

// Repo is a bare repository on a GitServer plus a working clone the test commits in.
// Commits are made with the git CLI under an isolated HOME and GIT_CONFIG_NOSYSTEM=1,
// so no user or system configuration leaks into the test.
type Repo struct {
	// Name is the repository name without ".git".
	Name string
	// Bare is the bare repository directory the server exports.
	Bare string
	// Dir is the working clone.
	Dir string
	// URL is the clone URL of the repository on its server (git:// or http://; the
	// http URL carries no credentials).
	URL string

	srv *GitServer
}

// StartGitDaemon starts `git daemon` on a free 127.0.0.1 port serving BaseDir with
// receive-pack enabled, and waits until it accepts connections.
func StartGitDaemon(t testing.TB) *GitServer {
	t.Helper()
	Integration(t, "git")
	s := newGitServer(t, "git")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("git daemon: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		var logs lockedBuffer
		cmd := exec.Command("git", "daemon", "--reuseaddr", "--base-path="+s.BaseDir, "--export-all",
			"--enable=receive-pack", "--informative-errors", "--listen=127.0.0.1", "--port="+strconv.Itoa(port),
			s.BaseDir)
		cmd.Env = s.env()
		cmd.Stdout = &logs
		cmd.Stderr = &logs
		// `git daemon` runs git-daemon as a child: give them a process group of their
		// own so cleanup stops both.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.WaitDelay = 5 * time.Second
		if err := cmd.Start(); err != nil {
			t.Fatalf("start git daemon: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if waitListening(addr, exited) {
			s.Addr = addr
			t.Cleanup(func() {
				killGroup(cmd)
				<-exited
				if t.Failed() && logs.Len() > 0 {
					t.Logf("git daemon output:\n%s", logs.String())
				}
			})
			return s
		}
		killGroup(cmd)
		<-exited
		lastErr = fmt.Errorf("git daemon on %s did not come up: %s", addr, logs.String())
	}
	t.Fatalf("%v", lastErr)
	return nil
}

// StartGitHTTP serves BaseDir with git http-backend (smart HTTP) behind net/http/cgi on
// 127.0.0.1. Every request must carry basic auth user:pass, or it gets 401. Requests
// are counted (see Requests) so tests can prove what a client did or did not fetch.
func StartGitHTTP(t testing.TB, user, pass string) *GitServer {
	t.Helper()
	Integration(t, "git")
	s := newGitServer(t, "http")
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git-http-backend: %v", err)
	}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env: []string{
			"GIT_PROJECT_ROOT=" + s.BaseDir,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"HOME=" + s.home,
			// Accept pushes over HTTP too (http-backend refuses them without
			// REMOTE_USER, which net/http/cgi does not set).
			"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.receivepack",
			"GIT_CONFIG_VALUE_0=true",
		},
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			s.rejected.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.listRefs.Add(1)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.uploadPack.Add(1)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
			s.receivePack.Add(1)
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.Addr = strings.TrimPrefix(srv.URL, "http://")
	return s
}

// Requests returns the request counters of a StartGitHTTP server.
func (s *GitServer) Requests() GitRequests {
	return GitRequests{
		ListRefs:    s.listRefs.Load(),
		UploadPack:  s.uploadPack.Load(),
		ReceivePack: s.receivePack.Load(),
		Rejected:    s.rejected.Load(),
	}
}

// URL returns the clone URL of repository name (without ".git") on this server.
func (s *GitServer) URL(name string) string {
	if s.scheme == "ssh" {
		return fmt.Sprintf("ssh://git@%s/%s.git", s.Addr, name)
	}
	return fmt.Sprintf("%s://%s/%s.git", s.scheme, s.Addr, name)
}

// NewRepo creates the bare repository <name>.git (default branch main) and a working
// clone of it. The repository is empty until the first Commit and Push.
func (s *GitServer) NewRepo(t testing.TB, name string) *Repo {
	t.Helper()
	r := &Repo{
		Name: name,
		Bare: filepath.Join(s.BaseDir, name+".git"),
		Dir:  filepath.Join(t.TempDir(), name),
		URL:  s.URL(name),
		srv:  s,
	}
	s.git(t, "", "init", "--quiet", "--bare", "--initial-branch=main", r.Bare)
	s.git(t, "", "init", "--quiet", "--initial-branch=main", r.Dir)
	r.Git(t, "config", "user.name", "Gantry Test")
	r.Git(t, "config", "user.email", "test@gantry.invalid")
	r.Git(t, "config", "commit.gpgsign", "false")
	r.Git(t, "remote", "add", "origin", r.Bare)
	return r
}

// Commit writes files (slash-separated paths relative to the repository root; parent
// directories are created), stages everything in the working clone, commits with msg
// and returns the new commit SHA. An empty content string writes an empty file; use
// Remove to delete files.
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("commit: %v", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	r.Git(t, "add", "--all")
	r.Git(t, "commit", "--quiet", "--allow-empty", "-m", msg)
	return r.Head(t)
}

// Remove deletes files from the working clone and commits the removal with msg,
// returning the new commit SHA.
func (r *Repo) Remove(t testing.TB, msg string, paths ...string) string {
	t.Helper()
	args := append([]string{"rm", "--quiet", "-r", "--"}, paths...)
	r.Git(t, args...)
	r.Git(t, "commit", "--quiet", "-m", msg)
	return r.Head(t)
}

// Head returns the SHA of the working clone's HEAD commit.
func (r *Repo) Head(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(r.Git(t, "rev-parse", "HEAD"))
}

// Push pushes every branch and tag of the working clone to the bare repository
// (forced, so tests may rewrite history). It writes to the bare directory directly,
// so it adds nothing to the server's request counters.
func (r *Repo) Push(t testing.TB) {
	t.Helper()
	r.Git(t, "push", "--quiet", "--force", "origin", "refs/heads/*:refs/heads/*")
	r.Git(t, "push", "--quiet", "--force", "origin", "refs/tags/*:refs/tags/*")
}

// Git runs git with args in the working clone and returns its standard output;
// the test fails if git fails.
func (r *Repo) Git(t testing.TB, args ...string) string {
	t.Helper()
	return r.srv.git(t, r.Dir, args...)
}

// GitBare runs git with args in the bare repository (for server-side configuration,
// e.g. `config uploadpack.allowReachableSHA1InWant true`).
func (r *Repo) GitBare(t testing.TB, args ...string) string {
	t.Helper()
	return r.srv.git(t, r.Bare, args...)
}

// Env returns the environment the harness runs git with (isolated HOME, no system
// config, no prompts), for tests that run git themselves.
func (s *GitServer) Env() []string { return s.env() }

func newGitServer(t testing.TB, scheme string) *GitServer {
	t.Helper()
	root := t.TempDir()
	s := &GitServer{BaseDir: filepath.Join(root, "repos"), scheme: scheme, home: filepath.Join(root, "home")}
	for _, d := range []string{s.BaseDir, s.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("git server dirs: %v", err)
		}
	}
	return s
}

func (s *GitServer) env() []string {
	env := []string{
		"HOME=" + s.home,
		"XDG_CONFIG_HOME=" + filepath.Join(s.home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Gantry Test",
		"GIT_AUTHOR_EMAIL=test@gantry.invalid",
		"GIT_COMMITTER_NAME=Gantry Test",
		"GIT_COMMITTER_EMAIL=test@gantry.invalid",
		"LANG=C",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

func (s *GitServer) git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = s.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it accepts a connection, the process exits, or 10 s
// pass.
func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// StartGitSSH serves BaseDir over SSH on a free 127.0.0.1 port: a small SSH server
// (golang.org/x/crypto/ssh) with a fresh ed25519 host key that accepts only the
// public key authorized and runs the real git-upload-pack / git-receive-pack for
// "exec" requests. Repository URLs are ssh://git@127.0.0.1:PORT/<name>.git;
// KnownHostsFile returns a known_hosts file for its host key.
func StartGitSSH(t testing.TB, authorized ssh.PublicKey) *GitServer {
	t.Helper()
	Integration(t, "git")
	s := newGitServer(t, "ssh")
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("ssh host key: %v", err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatalf("ssh host key: %v", err)
	}
	s.hostKey = hostSigner.PublicKey()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), authorized.Marshal()) {
				return nil, nil
			}
			s.rejected.Add(1)
			return nil, fmt.Errorf("key not authorized")
		},
	}
	cfg.AddHostKey(hostSigner)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ssh listen: %v", err)
	}
	s.Addr = l.Addr().String()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); s.serveSSH(c, cfg) }()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// KnownHostsFile writes a known_hosts file holding the host key of a StartGitSSH
// server and returns its path.
func (s *GitServer) KnownHostsFile(t testing.TB) string {
	t.Helper()
	if s.hostKey == nil {
		t.Fatalf("KnownHostsFile: not an SSH server")
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.hostKey)
	if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
		t.Fatalf("known_hosts: %v", err)
	}
	return p
}

func (s *GitServer) serveSSH(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.serveSession(ch, creqs)
	}
}

func (s *GitServer) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		service, repoPath, ok := parseGitCommand(payload.Command)
		if !ok {
			_ = req.Reply(false, nil)
			return
		}
		dir := filepath.Join(s.BaseDir, filepath.FromSlash(repoPath))
		if !strings.HasPrefix(dir, s.BaseDir+string(filepath.Separator)) {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		cmd := exec.Command("git", service, dir)
		cmd.Env = s.env()
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return
		}
		if err := cmd.Start(); err != nil {
			return
		}
		// Not waited for: the client may keep its side open until it sees exit-status.
		go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
		status := uint32(0)
		if err := cmd.Wait(); err != nil {
			status = 1
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// parseGitCommand parses "git-upload-pack '/app.git'" (as git and go-git send it) into
// the service ("upload-pack") and the repository path relative to the base dir.
func parseGitCommand(cmd string) (service, repoPath string, ok bool) {
	name, arg, found := strings.Cut(cmd, " ")
	if !found {
		return "", "", false
	}
	switch name {
	case "git-upload-pack", "git-receive-pack":
		service = strings.TrimPrefix(name, "git-")
	default:
		return "", "", false
	}
	arg = strings.TrimSpace(arg)
	if len(arg) < 2 || arg[0] != '\'' || arg[len(arg)-1] != '\'' || strings.Contains(arg[1:len(arg)-1], "'") {
		return "", "", false
	}
	p := path.Clean("/" + arg[1:len(arg)-1])
	if p == "/" {
		return "", "", false
	}
	return service, strings.TrimPrefix(p, "/"), true
}
