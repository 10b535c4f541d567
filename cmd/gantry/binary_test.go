package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// The e2e tests run gantry as a process (it stops its own containerd on exit, binds
// ports, owns signals): one binary, built once per test process.
var testBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// gantryBinary returns the path of a gantry binary built from this package, building
// it on the first call of the test process (TestMain removes it at the end).
func gantryBinary(t testing.TB) string {
	t.Helper()
	b := &testBinary
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("/tmp", "gbin-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "gantry")
		if out, err := exec.Command("go", "build", "-o", b.path, ".").CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testBinary.dir != "" {
		_ = os.RemoveAll(testBinary.dir)
	}
	os.Exit(code)
}

// startLogged starts cmd in its own process group (a signal to the test does not
// reach it first) with stdout and stderr going to the file logPath.
func startLogged(cmd *exec.Cmd, logPath string) (*logFile, error) {
	log := &logFile{path: logPath}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	return log, nil
}
