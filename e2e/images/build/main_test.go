package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunRequiresOut(t *testing.T) {
	if err := run("", "", "/bin/busybox"); err == nil || !strings.Contains(err.Error(), "-out") {
		t.Fatalf("run without -out: err %v, want one naming -out", err)
	}
}

func TestFindRepoRoot(t *testing.T) {
	root, err := findRepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "module gantry.io/gantry\n") {
		t.Fatalf("%s/go.mod is not gantry's: %.40q", root, data)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "images", "echo")); err != nil {
		t.Fatalf("root %s has no e2e/images/echo: %v", root, err)
	}
}
