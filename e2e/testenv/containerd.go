package testenv

import (
	"bytes"
	"context"
	"fmt"
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
//
// First it removes what killed test processes left of earlier daemons (RemoveStale
// with prefix gctr-: their daemon, shims, container processes, mounts and directory),
// so a rerun after a crash starts clean.
func LaunchContainerd() (*Containerd, error) {
	RemoveStale(containerdDirPrefix)
	// unix socket paths are limited to 107 bytes; /tmp/gctr-XXXXXXXX/c.sock stays short.
	dir, err := OwnedTempDir(containerdDirPrefix)
	if err != nil {
		return nil, err
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
// directories. A shim of this daemon still running after that (a task the daemon no
// longer lists, leaked by the code under test) is killed with its container processes
// and reported as an error naming it. Safe to call twice.
func (c *Containerd) Stop() error {
	var errs []string
	if err := c.purge(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := c.signalAndWait(syscall.SIGTERM, 20*time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	// A shim exits a moment after its last task is deleted.
	var leaked []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		leaked = shimsOf(c.socket)
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(leaked) > 0 {
		killShims(c.socket)
		errs = append(errs, fmt.Sprintf("shims outlived their containers (killed now): %s", strings.Join(leaked, ", ")))
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

const containerdDirPrefix = "gctr-"

// ownerFile, in a directory made by OwnedTempDir, records the PID and the start time of
// the process that made it.
const ownerFile = ".owner"

// OwnedTempDir creates a directory /tmp/<prefix>XXXX marked as owned by this process,
// so that a later RemoveStale (of a rerun after this process was killed) can tell it is
// a left-over. The caller removes it when done.
func OwnedTempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	pid := os.Getpid()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(fmt.Sprintf("%d %s\n", pid, procStart(pid))), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("temp dir owner: %w", err)
	}
	return dir, nil
}

// StaleDirs returns the directories /tmp/<prefix>* made by OwnedTempDir whose owner
// process is gone. A directory without an owner record counts as stale when no
// process refers to it on its command line (a containerd of an older harness) and it
// is more than a minute old.
func StaleDirs(prefix string) []string {
	matches, _ := filepath.Glob(filepath.Join("/tmp", prefix+"*"))
	var out []string
	for _, dir := range matches {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err == nil {
			var pid int
			var start string
			if n, _ := fmt.Sscanf(string(b), "%d %s", &pid, &start); n == 2 && procStart(pid) == start {
				continue // the owner is alive
			}
			out = append(out, dir)
			continue
		}
		fi, err := os.Stat(dir)
		if err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		live := false
		for _, p := range processes() {
			if strings.Contains(p.cmdline, dir+"/") && p.ppid != 1 {
				live = true // a daemon whose parent (a test) still runs
			}
		}
		if !live {
			out = append(out, dir)
		}
	}
	return out
}

// RemoveStale removes the left-overs of killed test processes for directories
// /tmp/<prefix>* (see StaleDirs): it kills every process whose command line names the
// directory — containerd daemons and their shims, with the shims' container processes
// — unmounts everything below it (deepest first; netns pins, rootfs and volume mounts)
// and removes it. It returns the directories it removed. Errors are ignored: what
// cannot be removed now is retried by the next run.
func RemoveStale(prefix string) []string {
	dirs := StaleDirs(prefix)
	for _, dir := range dirs {
		for _, p := range processes() {
			if strings.Contains(p.cmdline, dir+"/") {
				killTree(p.pid)
			}
		}
		UnmountUnder(dir)
		_ = os.RemoveAll(dir)
	}
	return dirs
}

// UnmountUnder lazily unmounts every mount point below dir, deepest first.
func UnmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var under []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			under = append(under, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(under)))
	for _, m := range under {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

type proc struct {
	pid, ppid int
	cmdline   string
}

// processes lists the host's processes with their parent and command line (arguments
// joined by spaces).
func processes() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmd) == 0 {
			continue
		}
		out = append(out, proc{pid: pid, ppid: procField(pid, 4), cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))})
	}
	return out
}

// procStat returns the fields of /proc/pid/stat after the command name (field 3 on).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// procField returns field n (1-based, as in proc(5)) of /proc/pid/stat as a number.
func procField(pid, n int) int {
	f := procStat(pid)
	if len(f) < n-2 {
		return 0
	}
	v, _ := strconv.Atoi(f[n-3])
	return v
}

// procStart is the start time of process pid (field 22 of its stat), "" if it is gone
// or a zombie (killed, not yet reaped): with the PID it names a process even after the
// PID was reused.
func procStart(pid int) string {
	f := procStat(pid)
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return ""
	}
	return f[19]
}

// killTree SIGKILLs pid's children (a shim's container init; killing the init of a
// PID namespace kills the whole namespace), then pid.
func killTree(pid int) {
	for _, p := range processes() {
		if p.ppid == pid {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// shimsOf returns "pid:id" of the running shims that serve the containerd at socket.
func shimsOf(socket string) []string {
	var out []string
	for _, p := range processes() {
		if !strings.Contains(p.cmdline, "containerd-shim") || !strings.Contains(p.cmdline, "-address "+socket) {
			continue
		}
		id := "?"
		f := strings.Fields(p.cmdline)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "-id" {
				id = f[i+1]
			}
		}
		out = append(out, fmt.Sprintf("%d:%s", p.pid, id))
	}
	return out
}

// killShims kills the shims of the containerd at socket with their container processes.
func killShims(socket string) {
	for _, p := range processes() {
		if strings.Contains(p.cmdline, "containerd-shim") && strings.Contains(p.cmdline, "-address "+socket) {
			killTree(p.pid)
		}
	}
}
