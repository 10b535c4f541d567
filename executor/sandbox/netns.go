package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// createNetNS creates a network namespace and pins it by bind-mounting it onto the file
// pin, which must not exist. Inside the new namespace IPv6 duplicate address detection is
// turned off, so the pod's IPv6 address is usable as soon as CNI assigns it (the address
// comes from this node's own IPAM, so it cannot be a duplicate).
func createNetNS(pin string) error {
	f, err := os.OpenFile(pin, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("creating netns pin: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("creating netns pin: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		// This thread moves into the new namespace. It is never unlocked, so the Go
		// runtime terminates it when the goroutine returns instead of reusing it for
		// other goroutines.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare(CLONE_NEWNET): %w", err)
			}
			src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
			if err := unix.Mount(src, pin, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mounting %s onto %s: %w", src, pin, err)
			}
			// lo up here saves the loopback plugin's run on every ADD and DEL; the
			// kernel gives it 127.0.0.1 and ::1 as it comes up.
			if err := loopbackUp(); err != nil {
				return err
			}
			// /proc/sys/net shows the calling thread's namespace.
			for _, scope := range []string{"all", "default"} {
				p := "/proc/sys/net/ipv6/conf/" + scope + "/accept_dad"
				if err := os.WriteFile(p, []byte("0"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("disabling IPv6 DAD in the pod netns: %w", err)
				}
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		if rmErr := removeNetNS(pin); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
		return fmt.Errorf("creating netns %s: %w", pin, err)
	}
	return nil
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing lo up: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// removeNetNS unmounts and removes a netns pin. A missing pin is not an error. The
// unmount is lazy so that an open handle elsewhere (a process still in the namespace)
// does not make it fail; the namespace dies with its last user.
func removeNetNS(pin string) error {
	if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil &&
		!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting netns %s: %w", pin, err)
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing netns pin: %w", err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// hasInterface reports whether the network namespace pinned at pin has an interface
// named ifname. Errors entering the namespace count as false.
func hasInterface(pin, ifname string) bool {
	found := make(chan bool, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread leaves with the goroutine
		fd, err := unix.Open(pin, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			found <- false
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			found <- false
			return
		}
		_, err = net.InterfaceByName(ifname)
		found <- err == nil
	}()
	return <-found
}

// ifaTentative is IFA_F_TENTATIVE in /proc/net/if_inet6's flags column.
const ifaTentative = 0x40

// settleTimeout bounds how long Setup waits for the bridge's IPv6 address to leave the
// tentative state.
const settleTimeout = 5 * time.Second

// waitIPv6Settled waits until no global IPv6 address of the host interface ifname is
// tentative (DAD running), or settleTimeout passes; the bridge answers for the pod's
// gateway and is the host's source address towards pods. A timeout is not an error: the
// address may still settle later, and a failed DAD is the node's problem, not the pod's.
func waitIPv6Settled(ctx context.Context, ifname string) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		tentative, err := hasTentativeIPv6(ifname)
		if err != nil || !tentative || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for IPv6 on %s: %w", ifname, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hasTentativeIPv6 reads the calling thread's /proc/net/if_inet6. Lines are
// "addr ifindex prefixlen scope flags ifname", numbers in hex; scope 0 is global.
func hasTentativeIPv6(ifname string) (bool, error) {
	f, err := os.Open("/proc/thread-self/net/if_inet6")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 6 || fields[5] != ifname {
			continue
		}
		scope, err1 := strconv.ParseUint(fields[3], 16, 32)
		flags, err2 := strconv.ParseUint(fields[4], 16, 32)
		if err1 == nil && err2 == nil && scope == 0 && flags&ifaTentative != 0 {
			return true, nil
		}
	}
	return false, sc.Err()
}
