package testenv

import (
	"context"
	"os"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
)

// TestStartContainerd proves the harness: the daemon serves on its own socket, survives a
// restart, and leaves no directory behind.
func TestStartContainerd(t *testing.T) {
	c := StartContainerd(t)
	if len(c.Address()) >= 108 {
		t.Fatalf("socket path too long: %q", c.Address())
	}
	cl, err := containerd.New(c.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v, err := cl.Version(context.Background())
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	if v.Version == "" {
		t.Fatalf("empty version")
	}
	if err := c.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if ok, err := cl.IsServing(context.Background()); err != nil || !ok {
		t.Fatalf("not serving after restart: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Root()); !os.IsNotExist(err) {
		t.Fatalf("root dir still there: %v", err)
	}
}
