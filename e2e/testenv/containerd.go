package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"gantry.io/gantry/executor"
)

// Containerd is a containerd daemon started for one test (or one test binary): Debian's
// containerd binary with a generated configuration, its own root, state and socket under a
// short temporary directory, so it never touches the system containerd.
type Containerd struct {
	dir    string
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	mu     sync.Mutex
	done   chan struct{}
	waitEr error
}

// Address returns the daemon's gRPC unix socket path.
func (c *Containerd) Address() string { return c.socket }

// Root returns the daemon's root directory (content store, snapshots, metadata).
func (c *Containerd) Root() string { return filepath.Join(c.dir, "root") }

// State returns the daemon's state directory (task bundles, shim sockets).
func (c *Containerd) State() string { return filepath.Join(c.dir, "state") }

// Log returns what the daemon wrote to stderr so far.
func (c *Containerd) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// StartContainerd starts a containerd daemon for t and waits until it serves. At cleanup
// it kills and deletes every task and container of every namespace, stops the daemon,
// unmounts whatever is left under its directories and removes them. Requires root and
// the containerd binary (see Integration).
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	Integration(t, "containerd", "runc", "containerd-shim-runc-v2")
	c, err := LaunchContainerd()
	if err != nil {
		t.Fatalf("start containerd: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	return c
}

// LaunchContainerd starts a containerd daemon outside of a test (a TestMain, a benchmark
// harness); the caller must call Stop.
func LaunchContainerd() (*Containerd, error) {
	// unix socket paths are limited to 107 bytes; /tmp/gctr-XXXXXXXX/c.sock stays short.
	dir, err := os.MkdirTemp("/tmp", "gctr-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	c := &Containerd{dir: dir, socket: filepath.Join(dir, "c.sock"), log: &bytes.Buffer{}, done: make(chan struct{})}
	for _, d := range []string{c.Root(), c.State()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(executor.ContainerdConfig(c.Root(), c.State(), c.socket)), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if err := c.start(cfg); err != nil {
		_ = c.removeDirs()
		return nil, err
	}
	return c, nil
}

func (c *Containerd) start(cfg string) error {
	cmd := exec.Command("containerd", "--config", cfg, "--log-level", "warn")
	w := lockedWriter{mu: &c.mu, buf: c.log}
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group: a test's Ctrl-C must not reach it before cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run containerd: %w", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		c.mu.Lock()
		c.waitEr = err
		c.mu.Unlock()
		close(done)
	}(c.done)
	return c.waitReady(30 * time.Second)
}

func (c *Containerd) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-c.done:
			return fmt.Errorf("containerd exited early: %v\n%s", c.waitEr, c.Log())
		default:
		}
		if _, err := os.Stat(c.socket); err == nil {
			cl, err := containerd.New(c.socket, containerd.WithTimeout(2*time.Second))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				ok, err := cl.IsServing(ctx)
				cancel()
				_ = cl.Close()
				if err == nil && ok {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not serve on %s within %s\n%s", c.socket, limit, c.Log())
}

// Restart stops the daemon (SIGTERM; running tasks and their shims stay up, as they do
// when a real containerd restarts) and starts it again on the same socket and dirs.
func (c *Containerd) Restart() error {
	if err := c.signalAndWait(syscall.SIGTERM, 20*time.Second); err != nil {
		return err
	}
	return c.start(filepath.Join(c.dir, "config.toml"))
}

// Down stops the daemon (SIGTERM) and deletes nothing: tasks and shims stay up, and the
// socket stops answering, as while a real containerd is down. Up starts it again.
func (c *Containerd) Down() error {
	return c.signalAndWait(syscall.SIGTERM, 20*time.Second)
}

// Up starts the daemon again after Down, on the same socket and dirs.
func (c *Containerd) Up() error {
	return c.start(filepath.Join(c.dir, "config.toml"))
}

func (c *Containerd) signalAndWait(sig syscall.Signal, limit time.Duration) error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
		return nil
	case <-time.After(limit):
		_ = c.cmd.Process.Kill()
		<-c.done
		return nil
	}
}

// Stop deletes every task and container the daemon holds, stops it and removes its
// directories. Safe to call twice.
func (c *Containerd) Stop() error {
	var errs []string
	if err := c.purge(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.signalAndWait(syscall.SIGTERM, 20*time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.removeDirs(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// purge kills and deletes every task and container in every namespace, so no shim or
// container process outlives the daemon.
func (c *Containerd) purge() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	cl, err := containerd.New(c.socket, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nss, err := cl.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []string
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := cl.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Sprintf("list containers in %s: %v", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				_ = task.Kill(nctx, syscall.SIGKILL)
				if ch, err := task.Wait(nctx); err == nil {
					select {
					case <-ch:
					case <-time.After(10 * time.Second):
					}
				}
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil {
					errs = append(errs, fmt.Sprintf("delete task %s/%s: %v", ns, ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil {
				errs = append(errs, fmt.Sprintf("delete container %s/%s: %v", ns, ctr.ID(), err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("purge containerd: %s", strings.Join(errs, "; "))
	}
	return nil
}

// removeDirs unmounts anything still mounted below the daemon's directory (deepest
// first) and removes it.
func (c *Containerd) removeDirs() error {
	data, err := os.ReadFile("/proc/self/mounts")
	if err == nil {
		var under []string
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 && strings.HasPrefix(f[1], c.dir+"/") {
				under = append(under, f[1])
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(under)))
		for _, m := range under {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove %s: %w", c.dir, err)
	}
	return nil
}
