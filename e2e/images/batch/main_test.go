package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gantry.io/gantry/e2e/images/imagebuild"
)

func runBatch(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestPrintsArgsEnvAndExits(t *testing.T) {
	t.Setenv("GANTRY_BATCH_TEST", "value 1")
	code, out, _ := runBatch(t, "--exit", "3", "--sleep", "10ms", "hello", "world")
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	for _, want := range []string{"args: hello world\n", "env: GANTRY_BATCH_TEST=value 1\n", "exit: 3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "JOB_COMPLETION_INDEX=") {
		t.Errorf("JOB_COMPLETION_INDEX printed though unset:\n%s", out)
	}
	if strings.Contains(out, "run: ") {
		t.Errorf("run counter printed without --fail-first:\n%s", out)
	}
}

func TestPrintsCompletionIndex(t *testing.T) {
	t.Setenv("JOB_COMPLETION_INDEX", "4")
	code, out, _ := runBatch(t)
	if code != 0 || !strings.Contains(out, "\nJOB_COMPLETION_INDEX=4\n") {
		t.Fatalf("code %d, output:\n%s", code, out)
	}
}

func TestFailFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created on the first run
	want := []int{7, 7, 0, 0}
	for i, w := range want {
		code, out, errOut := runBatch(t, "--fail-first", "2", "--fail-exit", "7", "--state-dir", dir)
		if code != w {
			t.Errorf("run %d: exit %d, want %d (stderr %q)", i+1, code, w, errOut)
		}
		if !strings.Contains(out, "run: "+strconv.Itoa(i+1)+"\n") {
			t.Errorf("run %d: output lacks its run number:\n%s", i+1, out)
		}
	}
}

func TestFailFirstCountsPerIndex(t *testing.T) {
	dir := t.TempDir()
	for _, index := range []string{"0", "1"} {
		t.Setenv("JOB_COMPLETION_INDEX", index)
		if code, _, _ := runBatch(t, "--fail-first", "1", "--state-dir", dir); code != 1 {
			t.Errorf("index %s first run: exit %d, want 1", index, code)
		}
		if code, _, _ := runBatch(t, "--fail-first", "1", "--state-dir", dir); code != 0 {
			t.Errorf("index %s second run: exit %d, want 0", index, code)
		}
	}
	for _, f := range []string{"runs-0", "runs-1"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("counter %s: %v", f, err)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fail-first without state dir", []string{"--fail-first", "1"}, "needs --state-dir"},
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"bad duration", []string{"--sleep", "soon"}, "soon"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runBatch(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d, stderr %q; want 2 containing %q", code, errOut, tc.want)
			}
		})
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "runs"), []byte("many"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runBatch(t, "--fail-first", "1", "--state-dir", dir); code != 2 || !strings.Contains(errOut, "not a number") {
		t.Fatalf("corrupt counter: code %d, stderr %q", code, errOut)
	}
}

// TestBinaryExitCode runs the real static binary, as the image does.
func TestBinaryExitCode(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "batch")
	if err := imagebuild.BuildBinary(context.Background(), "", wd, "", bin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--exit", "5", "from-binary").Output()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 5 {
		t.Fatalf("err = %v, want exit status 5", err)
	}
	if !strings.Contains(string(out), "args: from-binary\n") {
		t.Fatalf("output:\n%s", out)
	}
}
