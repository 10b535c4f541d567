package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips the test when ok is false, or fails it under CI.
func Require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("prerequisite missing under CI: %s", msg)
	}
	t.Skipf("prerequisite missing: %s", msg)
}

// Integration marks a test that needs real components: it is skipped with -short
// (make test-unit) and requires root and the named binaries otherwise.
func Integration(t testing.TB, binaries ...string) {
	t.Helper()
	if testing.Short() && !InCI() {
		t.Skip("integration test: skipped with -short")
	}
	Require(t, os.Geteuid() == 0, "root (run as root, or use make test-unit)")
	for _, b := range binaries {
		_, err := exec.LookPath(b)
		Require(t, err == nil, "%s on PATH (make deps installs it)", b)
	}
}

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// CacheDir returns the git-ignored cache directory (GANTRY_CACHE, default .cache).
func CacheDir() string {
	if d := os.Getenv("GANTRY_CACHE"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache")
}
