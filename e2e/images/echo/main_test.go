package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gantry.io/gantry/e2e/images/imagebuild"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// echoBinary builds this program once per test binary, as the image build does, with
// version "vtest".
func echoBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "echo-test-")
		if binErr != nil {
			return
		}
		wd, err := os.Getwd()
		if err != nil {
			binErr = err
			return
		}
		binErr = imagebuild.BuildBinary(context.Background(), "", wd, "vtest", filepath.Join(binDir, "echo"))
	})
	if binErr != nil {
		t.Fatalf("build echo: %v", binErr)
	}
	return filepath.Join(binDir, "echo")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is a running echo process.
type proc struct {
	cmd    *exec.Cmd
	port   int
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the echo binary with args and env on a free port and waits until it
// answers; it is killed at cleanup if still running. With usePortEnv the port is
// passed as PORT instead of --port.
func start(t *testing.T, usePortEnv bool, env []string, args ...string) *proc {
	t.Helper()
	port := freePort(t)
	if usePortEnv {
		env = append(env, "PORT="+strconv.Itoa(port))
	} else {
		args = append([]string{"--port", strconv.Itoa(port)}, args...)
	}
	cmd := exec.Command(echoBinary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, port: port, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", p.addr("127.0.0.1"))
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("echo exited before listening: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo not listening on %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) addr(host string) string { return net.JoinHostPort(host, strconv.Itoa(p.port)) }

// wait returns the exit code once the process ends (fails the test after 20s).
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("echo did not exit")
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (l *testLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("echo: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// call sends one request to host and returns status and body.
func call(t *testing.T, p *proc, host, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr(host)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp.StatusCode, string(body)
}

func TestEndpoints(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.txt")
	if err := os.WriteFile(file, []byte("mounted config\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, false, []string{"GANTRY_TEST_A=alpha", "GANTRY_TEST_B=beta"})
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		method, path string
		wantCode     int
		wantBody     string // substring
	}
	steps := []step{
		{"GET", "/", 200, fmt.Sprintf("hostname=%s version=vtest\n", host)},
		{"GET", "/nope", 404, "not found"},
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/healthz?fail=1", 500, "unhealthy"},
		{"GET", "/healthz", 500, "unhealthy"},
		{"GET", "/healthz?fail=maybe", 400, "fail must be"},
		{"GET", "/healthz?fail=0", 200, "ok"},
		{"GET", "/healthz", 200, "ok"},
		{"GET", "/ready", 200, "ready"},
		{"GET", "/ready?state=off", 405, "POST"},
		{"GET", "/ready", 200, "ready"},
		{"POST", "/ready?state=off", 503, "not ready"},
		{"GET", "/ready", 503, "not ready"},
		{"POST", "/ready?state=sideways", 400, "on or off"},
		{"POST", "/ready?state=on", 200, "ready"},
		{"GET", "/ready", 200, "ready"},
		{"GET", "/env", 200, "GANTRY_TEST_A=alpha\nGANTRY_TEST_B=beta\n"},
		{"GET", "/file?path=" + file, 200, "mounted config\n"},
		{"GET", "/file?path=" + filepath.Join(dir, "missing"), 404, "no such file"},
		{"GET", "/file", 400, "path is required"},
		{"GET", "/sleep?ms=30", 200, "slept 30ms"},
		{"GET", "/sleep?ms=-1", 400, "ms must be"},
		{"GET", "/burn?ms=30", 200, "burned 30ms"},
		{"GET", "/burn?ms=abc", 400, "ms must be"},
		{"GET", "/burn?ms=999999999", 400, "ms must be"},
	}
	for _, s := range steps {
		code, body := call(t, p, "127.0.0.1", s.method, s.path)
		if code != s.wantCode || !strings.Contains(body, s.wantBody) {
			t.Errorf("%s %s = %d %q, want %d containing %q", s.method, s.path, code, body, s.wantCode, s.wantBody)
		}
	}

	_, env := call(t, p, "127.0.0.1", "GET", "/env")
	lines := strings.Split(strings.TrimSpace(env), "\n")
	if !sort.StringsAreSorted(lines) {
		t.Errorf("/env is not sorted:\n%s", env)
	}

	// The same port answers on IPv6.
	if code, body := call(t, p, "::1", "GET", "/"); code != 200 || !strings.Contains(body, "version=vtest") {
		t.Errorf("GET / on [::1] = %d %q", code, body)
	}
}

func TestPortFromEnv(t *testing.T) {
	p := start(t, true, nil)
	if code, _ := call(t, p, "127.0.0.1", "GET", "/healthz"); code != 200 {
		t.Fatalf("GET /healthz on PORT = %d", code)
	}
}

func TestReadyAfter(t *testing.T) {
	p := start(t, false, nil, "--ready-after", "1h")
	if code, _ := call(t, p, "127.0.0.1", "GET", "/ready"); code != 503 {
		t.Fatalf("GET /ready before --ready-after = %d, want 503", code)
	}
	if code, _ := call(t, p, "127.0.0.1", "GET", "/healthz"); code != 200 {
		t.Fatalf("GET /healthz before --ready-after = %d, want 200 (liveness is separate)", code)
	}
}

func TestCrashExitsOne(t *testing.T) {
	p := start(t, false, nil)
	// The answer may or may not arrive before the process dies; the exit code matters.
	resp, err := http.Get("http://" + p.addr("127.0.0.1") + "/crash")
	if err == nil {
		resp.Body.Close()
	}
	if code := p.wait(t); code != 1 {
		t.Fatalf("exit code after /crash = %d, want 1", code)
	}
}

func TestSIGTERMExitsZero(t *testing.T) {
	p := start(t, false, nil)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
}

// TestShutdownDelayKeepsServing checks that during --shutdown-delay the server still
// answers, then exits 0.
func TestShutdownDelayKeepsServing(t *testing.T) {
	p := start(t, false, nil, "--shutdown-delay", "3s")
	// Hold a connection open so the request after SIGTERM needs no new accept race.
	conn, err := net.Dial("tcp", p.addr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request during shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /healthz during shutdown delay = %d, want 200", resp.StatusCode)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit code = %d, want 0", code)
	}
}

func TestBadPortEnv(t *testing.T) {
	cmd := exec.Command(echoBinary(t))
	cmd.Env = append(os.Environ(), "PORT=http")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 2 || !strings.Contains(string(out), `PORT="http"`) {
		t.Fatalf("PORT=http: err %v, output %q; want exit 2 naming PORT", err, out)
	}
}
