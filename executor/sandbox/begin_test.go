package sandbox_test

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gantry.io/gantry/executor/sandbox"
)

// TestBeginThenWait: Begin hands out the netns and the pod files before CNI ran; a
// process that joined the netns then (as a container created during the ADD does) sees
// eth0 and both addresses once Wait returns, and the hosts file it opened by path before
// the ADD (same inode, as a bind mount) shows the pod's addresses.
func TestBeginThenWait(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pend, err := e.m.Begin(ctx, sandbox.PodRef{UID: "pod-begin", Namespace: "default", Name: "early"}, nil)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	early := pend.Sandbox()
	if early.IPv4 != nil || early.IPv6 != nil {
		t.Errorf("Sandbox before Wait has addresses %v", early.IPs())
	}
	var st unix.Statfs_t
	if err := unix.Statfs(early.NetNSPath, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("netns %s not pinned before the CNI ADD ended (err %v)", early.NetNSPath, err)
	}
	// Hold the namespace and the hosts file as a container created now would.
	nsFD, err := unix.Open(early.NetNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsFD)
	hosts, err := os.Open(early.HostsPath)
	if err != nil {
		t.Fatalf("hosts file missing before the ADD ended: %v", err)
	}
	defer hosts.Close()
	for _, f := range []string{early.HostnamePath, early.ResolvConfPath} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("pod file missing before the ADD ended: %v", err)
		}
	}

	sb, err := pend.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if sb.IPv4 == nil || sb.IPv6 == nil || sb.NetNSPath != early.NetNSPath {
		t.Fatalf("Wait returned %+v", sb)
	}
	again, err := pend.Wait()
	if err != nil || again != sb {
		t.Errorf("second Wait = %p, %v; want the same sandbox", again, err)
	}
	// The namespace joined before the ADD is the one the pod's interface is in.
	err = inNetNSFD(nsFD, func() error {
		ifc, err := net.InterfaceByName(sandbox.PodInterface)
		if err != nil {
			return err
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return err
		}
		var got []string
		for _, a := range addrs {
			got = append(got, a.String())
		}
		all := strings.Join(got, " ")
		for _, ip := range sb.IPs() {
			if !strings.Contains(all, ip.String()+"/") {
				return errors.New("eth0 has " + all + ", missing " + ip.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("in the netns joined before the ADD: %v", err)
	}
	b := make([]byte, 4096)
	n, _ := hosts.ReadAt(b, 0)
	for _, ip := range sb.IPs() {
		if !strings.Contains(string(b[:n]), ip.String()+"\tearly") {
			t.Errorf("hosts file opened before the ADD lacks %s:\n%s", ip, b[:n])
		}
	}
	// Begin on a finished sandbox is idempotent and finished at once.
	p2, err := e.m.Begin(ctx, sandbox.PodRef{UID: "pod-begin", Namespace: "default", Name: "early"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p2.Done():
	default:
		t.Errorf("Begin of an existing sandbox is not finished at once")
	}
	if sb2, _ := p2.Wait(); sb2 == nil || !sb2.IPv4.Equal(sb.IPv4) {
		t.Errorf("Begin again = %+v, want the existing sandbox", sb2)
	}
	if err := e.m.Teardown(ctx, "pod-begin"); err != nil {
		t.Fatal(err)
	}
	e.assertGone(sb)
}

// TestBeginFailureRollsBack: a CNI failure comes from Wait, after the rollback; a
// Teardown issued while the ADD runs waits for it; nothing is left.
func TestBeginFailureRollsBack(t *testing.T) {
	e := newEnv(t, sandbox.WithCNIBinDir(linkPlugins(t, "bridge", "host-local")))
	vethsBefore := veths(t)
	pend, err := e.m.Begin(context.Background(), sandbox.PodRef{UID: "pod-bfail", Namespace: "default", Name: "broken"},
		[]sandbox.PortMapping{{HostPort: testHostPrt, ContainerPort: testPort}})
	if err != nil {
		t.Fatalf("Begin: %v (the plugins run later; Begin must not fail)", err)
	}
	if err := e.m.Teardown(context.Background(), "pod-bfail"); err != nil {
		t.Errorf("Teardown during the ADD: %v", err)
	}
	select {
	case <-pend.Done():
	default:
		t.Errorf("Teardown returned before the pending ADD ended")
	}
	if _, err := pend.Wait(); err == nil || !strings.Contains(err.Error(), `"portmap"`) {
		t.Errorf("Wait error = %v, want the missing portmap plugin", err)
	}
	e.assertNoLeftovers()
	if got := veths(t); len(got) != len(vethsBefore) {
		t.Errorf("veths before %v, after %v", vethsBefore, got)
	}
}

// TestBeginCancelled: cancelling Begin's context aborts the ADD; Wait reports it and
// nothing is left.
func TestBeginCancelled(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	pend, err := e.m.Begin(ctx, sandbox.PodRef{UID: "pod-bcancel", Namespace: "default", Name: "cancelled"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if sb, err := pend.Wait(); err == nil {
		// The ADD may have finished before the cancel arrived; then it is a sandbox.
		if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
			t.Fatal(err)
		}
	}
	e.assertNoLeftovers()
}

// inNetNSFD runs fn on a thread that joined the network namespace open as fd.
func inNetNSFD(fd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with this goroutine
		if err := unix.Setns(fd, syscall.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
