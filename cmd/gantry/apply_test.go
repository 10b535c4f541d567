package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/controlplane"
	"gantry.io/gantry/store"
)

// cli runs one gantry command in-process and returns stdout, stderr and the exit code.
func cli(args ...string) (string, string, int) {
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		if ee, ok := err.(exitError); ok {
			code = ee.code
		} else {
			errOut.WriteString("gantry: " + err.Error() + "\n")
			code = 1
		}
	}
	return out.String(), errOut.String(), code
}

// TestCLIAgainstServer runs apply, get, describe and token create against a real
// server (embedded etcd, HTTPS) through the client config it writes.
func TestCLIAgainstServer(t *testing.T) {
	dir := t.TempDir()
	e := store.NewEmbedded(filepath.Join(dir, "etcd"), store.WithUnsafeNoFsync())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	etcd, err := e.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	cfg := filepath.Join(dir, "config")
	srv := controlplane.New(store.New(etcd), controlplane.WithDataDir(filepath.Join(dir, "data")), controlplane.WithListen("127.0.0.1:0"),
		controlplane.WithClientConfigPath(cfg), controlplane.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	pod := filepath.Join(dir, "pod.yaml")
	os.WriteFile(pod, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: echo}]\n"), 0o600)
	if out, errOut, code := cli("apply", "-f", pod, "--config", cfg); code != 0 || out != "pod/web created\n" {
		t.Fatalf("apply: %d %q %q", code, out, errOut)
	}
	if out, _, code := cli("apply", "-f", pod, "--config", cfg); code != 0 || out != "pod/web unchanged\n" {
		t.Fatalf("apply again: %d %q", code, out)
	}
	out, _, code := cli("get", "pods", "-o", "json", "--config", cfg)
	var list corev1.PodList
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || list.Kind != "PodList" || len(list.Items) != 1 || list.Items[0].Spec.NodeName != "n1" {
		t.Fatalf("get -o json: %d %s", code, out)
	}
	out, _, _ = cli("get", "pods", "-l", "app=web", "--config", cfg)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "web ") {
		t.Fatalf("get pods -l:\n%s", out)
	}
	if out, _, _ := cli("get", "pods", "-l", "app=none", "--config", cfg); out != "" {
		t.Fatalf("empty selector result printed %q", out)
	}
	if out, _, code := cli("describe", "pod", "web", "--config", cfg); code != 0 || !strings.Contains(out, "Node:           n1") {
		t.Fatalf("describe: %d\n%s", code, out)
	}
	if out, _, code := cli("token", "create", "--config", cfg); code != 0 || !strings.HasPrefix(out, "K10"+srv.CA().Hash()+"::") {
		t.Fatalf("token create: %d %q", code, out)
	}

	// Errors: on stderr, non-zero exit, stdout empty.
	for _, args := range [][]string{
		{"get", "pods", "missing"},
		{"get", "widgets"},
		{"describe", "pod", "missing"},
		{"get", "pods", "-o", "xml"},
		{"apply", "-f", filepath.Join(dir, "none.yaml")},
	} {
		out, errOut, code := cli(append(args, "--config", cfg)...)
		if code == 0 || out != "" || !strings.HasPrefix(errOut, "gantry: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want an error on stderr", args, code, out, errOut)
		}
	}
	if _, errOut, code := cli("get", "pods", "--config", filepath.Join(dir, "nothing")); code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("missing config: %d %q", code, errOut)
	}
}
