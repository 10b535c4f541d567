package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// runValidate runs `gantry validate args...` in-process and returns stdout and the
// exit code run() would return.
func runValidate(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"validate"}, args...))
	err := root.Execute()
	code := 0
	var ee exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		t.Fatalf("validate %v: %v", args, err)
	}
	return out.String(), code
}

func TestValidateExample(t *testing.T) {
	out, code := runValidate(t, "../../manifests-example")
	if code != 0 || out != "" {
		t.Fatalf("validate manifests-example: exit %d, output:\n%s", code, out)
	}
}

func TestValidateBroken(t *testing.T) {
	dir := "../../manifest/testdata/broken"
	out, code := runValidate(t, dir)
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	golden, err := os.ReadFile("../../manifest/testdata/broken.golden")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(string(golden), "\n") {
		if line != "" {
			want.WriteString(filepath.Join(dir, line))
		}
	}
	if diff := cmp.Diff(want.String(), out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

func TestValidateJSON(t *testing.T) {
	out, code := runValidate(t, "-o", "json", "../../manifest/testdata/broken")
	if code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	var rep validateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if rep.Errors == 0 || rep.Warnings == 0 || len(rep.Diagnostics) != rep.Errors+rep.Warnings {
		t.Fatalf("report counts: %+v", rep)
	}
	d := rep.Diagnostics[0]
	if !strings.HasSuffix(d.File, "cron.yaml") || d.Line != 6 || d.Col != 13 || d.Severity != "error" {
		t.Errorf("first diagnostic %+v", d)
	}
}

func TestValidateFlagsAndDefaultPath(t *testing.T) {
	dir := t.TempDir()
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n"
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	out, code := runValidate(t)
	if code != 1 || out != "s.yaml:4:1: error: stringData: secret values must not live in git; use an ExternalSecret (or load with --allow-plain-secrets)\n" {
		t.Fatalf("validate (default path): exit %d, output %q", code, out)
	}
	if out, code = runValidate(t, "--allow-plain-secrets", "s.yaml"); code != 0 || out != "" {
		t.Fatalf("validate --allow-plain-secrets: exit %d, output %q", code, out)
	}
	root := newRootCmd()
	root.SetArgs([]string{"validate", "does-not-exist"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	if err := root.Execute(); err == nil || errors.As(err, new(exitError)) {
		t.Fatalf("validate of a missing path: %v, want a plain error", err)
	}
}
