package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"gantry.io/gantry/api"
	"gantry.io/gantry/e2e/testenv"
	"gantry.io/gantry/executor/sandbox"
)

// This package's tests own this network, bridge and these subnets; other packages' tests
// that use CNI in parallel pick their own.
const (
	testNetwork = "gtest-sbx"
	testNATTbl  = "gtest-sbx-nat"
	testBridge  = "gtest-sbx0"
	testSubnet4 = "10.244.200.0/24"
	testSubnet6 = "fd00:10:244:c8::/64"
	testPort    = 8080
	testHostPrt = 38471
)

// dataDirPrefix names this package's data dirs in /tmp (testenv.OwnedTempDir).
const dataDirPrefix = "gsbx-"

var removeStaleOnce sync.Once

// removeStale removes what test processes of this package that were killed (a
// timeout, a Ctrl-C) left behind, before the first test creates anything: their data
// dirs with the netns pins in them (the pods' veths die with the namespaces), the test
// bridge (a stale one keeps the old gateway and ports), the masquerade table and the
// masquerade test's "outside" namespace. The package's tests run one at a time.
func removeStale(t *testing.T) {
	for _, d := range testenv.RemoveStale(dataDirPrefix) {
		t.Logf("removed the left-overs of a killed run: %s", d)
	}
	if exec.Command("ip", "link", "show", testBridge).Run() == nil {
		t.Logf("removing bridge %s left by an earlier run", testBridge)
		_ = exec.Command("ip", "link", "del", testBridge).Run()
	}
	if exec.Command("nft", "list", "table", "inet", testNATTbl).Run() == nil {
		t.Logf("removing nftables table inet %s left by an earlier run", testNATTbl)
		_ = exec.Command("nft", "delete", "table", "inet", testNATTbl).Run()
	}
	_ = exec.Command("ip", "netns", "del", outsideNS).Run()
}

type env struct {
	t       *testing.T
	dataDir string
	opts    []sandbox.Option
	m       *sandbox.Manager
}

// newEnv returns a Manager on the test network with a data dir of its own. At the
// end of the test it tears down every sandbox still on disk, deletes the bridge and checks
// that no netns pin, lease or CNI cache entry is left.
func newEnv(t *testing.T, extra ...sandbox.Option) *env {
	t.Helper()
	testenv.Integration(t, "iptables", "ip")
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		testenv.Require(t, false, "CNI plugins in /usr/lib/cni (make deps installs them)")
	}
	removeStaleOnce.Do(func() { removeStale(t) })
	// An owned dir (not t.TempDir): a rerun after this process was killed finds it
	// stale and removes it with the netns pins mounted in it.
	dataDir, err := testenv.OwnedTempDir(dataDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	e := &env{t: t, dataDir: dataDir}
	e.opts = append([]sandbox.Option{
		sandbox.WithDataDir(e.dataDir),
		sandbox.WithNetwork(testNetwork, testBridge),
		sandbox.WithSubnets(testSubnet4, testSubnet6),
		sandbox.WithResolvConf("nameserver 192.0.2.53\nsearch default.svc.cluster.local\n"),
		sandbox.WithMasqueradeTable(testNATTbl),
	}, extra...)
	e.m = sandbox.New(e.opts...)
	t.Cleanup(func() {
		if err := e.m.RemoveMasquerade(); err != nil {
			t.Errorf("cleanup: RemoveMasquerade: %v", err)
		}
		if out, _ := exec.Command("nft", "list", "table", "inet", testNATTbl).CombinedOutput(); !strings.Contains(string(out), "No such file") {
			t.Errorf("cleanup: table inet %s left:\n%s", testNATTbl, out)
		}
		// Tear down with a Manager that has the real plugin dir, whatever the test used.
		m := sandbox.New(append(append([]sandbox.Option(nil), e.opts...), sandbox.WithCNIBinDir("/usr/lib/cni"))...)
		uids, err := m.List()
		if err != nil {
			t.Errorf("cleanup: List: %v", err)
		}
		for _, uid := range uids {
			if err := m.Teardown(context.Background(), uid); err != nil {
				t.Errorf("cleanup: Teardown %s: %v", uid, err)
			}
		}
		if out, err := exec.Command("ip", "link", "del", testBridge).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "Cannot find device") {
			t.Errorf("cleanup: deleting bridge: %v: %s", err, out)
		}
		e.assertNoLeftovers()
	})
	return e
}

func (e *env) setup(uid, name string, ports ...sandbox.PortMapping) *sandbox.Sandbox {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sb, err := e.m.Setup(ctx, sandbox.PodRef{UID: uid, Namespace: "default", Name: name}, ports)
	if err != nil {
		e.t.Fatalf("Setup %s: %v", uid, err)
	}
	return sb
}

// leases returns the host-local lease files (one per allocated IP) of the test network.
func (e *env) leases() []string {
	e.t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dataDir, "ipam", testNetwork))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("reading leases: %v", err)
	}
	var out []string
	for _, en := range entries {
		if net.ParseIP(en.Name()) != nil {
			out = append(out, en.Name())
		}
	}
	return out
}

// assertNoLeftovers checks the data dir holds no netns pin, pod dir, lease or cache entry.
func (e *env) assertNoLeftovers() {
	e.t.Helper()
	for _, sub := range []string{"netns", "pods", "cni-cache/results"} {
		entries, _ := os.ReadDir(filepath.Join(e.dataDir, sub))
		for _, en := range entries {
			e.t.Errorf("left over in %s: %s", sub, en.Name())
		}
	}
	if l := e.leases(); len(l) > 0 {
		e.t.Errorf("left over leases: %v", l)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), e.dataDir) {
		e.t.Errorf("mounts left under %s", e.dataDir)
	}
}

// assertGone checks that nothing of sb is left on the host.
func (e *env) assertGone(sb *sandbox.Sandbox) {
	e.t.Helper()
	if _, err := os.Lstat(sb.NetNSPath); !errors.Is(err, os.ErrNotExist) {
		e.t.Errorf("netns pin %s still exists (err %v)", sb.NetNSPath, err)
	}
	if _, err := os.Lstat("/sys/class/net/" + sb.HostVeth); !errors.Is(err, os.ErrNotExist) {
		e.t.Errorf("veth %s still exists (err %v)", sb.HostVeth, err)
	}
	for _, l := range e.leases() {
		for _, ip := range sb.IPs() {
			if l == ip.String() {
				e.t.Errorf("lease %s still exists", l)
			}
		}
	}
	if _, err := os.Lstat(filepath.Dir(sb.HostsPath)); !errors.Is(err, os.ErrNotExist) {
		e.t.Errorf("pod dir %s still exists", filepath.Dir(sb.HostsPath))
	}
	if rules := natRulesFor(e.t, sb.UID); rules != "" {
		e.t.Errorf("iptables rules of %s left:\n%s", sb.UID, rules)
	}
	if _, err := e.m.Get(sb.UID); !errors.Is(err, api.ErrNotFound) {
		e.t.Errorf("Get after Teardown: err %v, want ErrNotFound", err)
	}
}

// natRulesFor returns the IPv4 and IPv6 nat rules that mention uid (portmap and the
// bridge's masquerade tag their rules with the container ID).
func natRulesFor(t *testing.T, uid string) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(cmd, "-t", "nat").Output()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, uid) {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// deleteNATRulesFor removes the nat rules and chains that mention uid, as a reboot would.
func deleteNATRulesFor(t *testing.T, uid string) {
	t.Helper()
	for _, fam := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(fam+"-save", "-t", "nat").Output()
		if err != nil {
			t.Fatalf("%s-save: %v", fam, err)
		}
		var del, chains []string
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "-A" || !strings.Contains(line, uid) {
				continue
			}
			if strings.HasPrefix(f[1], "CNI-") {
				chains = append(chains, f[1])
			} else {
				del = append(del, "-D"+strings.TrimPrefix(line, "-A"))
			}
		}
		in := "*nat\n" + strings.Join(del, "\n") + "\n"
		for _, c := range uniq(chains) {
			in += "-F " + c + "\n-X " + c + "\n"
		}
		cmd := exec.Command(fam+"-restore", "--noflush", "--wait")
		cmd.Stdin = strings.NewReader(in + "COMMIT\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s-restore: %v: %s\ninput:\n%s", fam, err, out, in)
		}
	}
	if rules := natRulesFor(t, uid); rules != "" {
		t.Fatalf("rules of %s left after deleting them:\n%s", uid, rules)
	}
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// inNetNS runs fn on an OS thread that has joined the network namespace at path. The
// thread is never returned to the Go scheduler.
func inNetNS(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with this goroutine
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// serveHTTP starts an HTTP server inside the sandbox on [::]:port (IPv4 and IPv6) that
// answers with body; it stops at the end of the test.
func serveHTTP(t *testing.T, sb *sandbox.Sandbox, port int, body string) {
	t.Helper()
	var l net.Listener
	err := inNetNS(sb.NetNSPath, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listening in %s: %v", sb.UID, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// httpGet GETs url once, dialling from the netns at nsPath ("" for the host), and
// returns the body. No proxy is ever used.
func httpGet(nsPath, url string) (string, error) {
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if nsPath != "" {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNetNS(nsPath, func() (err error) {
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func hostPortURL(ip net.IP, port int) string {
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(port)) + "/"
}

func mustGet(t *testing.T, nsPath, url, want string) {
	t.Helper()
	got, err := httpGet(nsPath, url)
	if err != nil {
		t.Errorf("GET %s (from %q): %v", url, nsPath, err)
		return
	}
	if got != want {
		t.Errorf("GET %s (from %q) = %q, want %q", url, nsPath, got, want)
	}
}

func TestSetupDualStackHTTPFromHost(t *testing.T) {
	e := newEnv(t)
	sb := e.setup("pod-a", "web-a")

	_, sub4, _ := net.ParseCIDR(testSubnet4)
	_, sub6, _ := net.ParseCIDR(testSubnet6)
	if !sub4.Contains(sb.IPv4) || !sub6.Contains(sb.IPv6) {
		t.Fatalf("pod IPs %v, %v outside %s, %s", sb.IPv4, sb.IPv6, testSubnet4, testSubnet6)
	}
	if !sub4.Contains(sb.Gateway4) || !sub6.Contains(sb.Gateway6) {
		t.Errorf("gateways %v, %v outside the pod subnets", sb.Gateway4, sb.Gateway6)
	}
	if sb.HostVeth == "" {
		t.Fatalf("no host veth recorded: %+v", sb)
	}
	if _, err := os.Stat("/sys/class/net/" + sb.HostVeth + "/brport"); err != nil {
		t.Errorf("host veth %s is not a bridge port: %v", sb.HostVeth, err)
	}
	if got := len(e.leases()); got != 2 {
		t.Errorf("%d leases, want 2 (one IPv4, one IPv6): %v", got, e.leases())
	}

	serveHTTP(t, sb, testPort, "hello from pod-a")
	mustGet(t, "", hostPortURL(sb.IPv4, testPort), "hello from pod-a")
	mustGet(t, "", hostPortURL(sb.IPv6, testPort), "hello from pod-a")
	// lo is up (createNetNS): the pod reaches itself on localhost.
	mustGet(t, sb.NetNSPath, hostPortURL(net.IPv4(127, 0, 0, 1), testPort), "hello from pod-a")
	mustGet(t, sb.NetNSPath, hostPortURL(net.IPv6loopback, testPort), "hello from pod-a")

	if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	e.assertGone(sb)
	if _, err := httpGet("", hostPortURL(sb.IPv4, testPort)); err == nil {
		t.Errorf("pod IPv4 still answers after Teardown")
	}
	if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
		t.Errorf("second Teardown: %v, want nil (idempotent)", err)
	}
}

func TestPodsReachEachOther(t *testing.T) {
	e := newEnv(t)
	a := e.setup("pod-a", "a")
	b := e.setup("pod-b", "b")
	if a.IPv4.Equal(b.IPv4) || a.IPv6.Equal(b.IPv6) {
		t.Fatalf("pods share an address: %v %v", a.IPs(), b.IPs())
	}
	serveHTTP(t, a, testPort, "a")
	serveHTTP(t, b, testPort, "b")
	mustGet(t, a.NetNSPath, hostPortURL(b.IPv4, testPort), "b")
	mustGet(t, a.NetNSPath, hostPortURL(b.IPv6, testPort), "b")
	mustGet(t, b.NetNSPath, hostPortURL(a.IPv4, testPort), "a")
	mustGet(t, b.NetNSPath, hostPortURL(a.IPv6, testPort), "a")
	// The pods' default routes point at the bridge: the host's gateway addresses answer.
	for _, gw := range []net.IP{a.Gateway4, a.Gateway6} {
		err := inNetNS(a.NetNSPath, func() error {
			c, err := net.DialTimeout("udp", net.JoinHostPort(gw.String(), "9"), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err != nil {
			t.Errorf("no route from pod a to gateway %v: %v", gw, err)
		}
	}
}

func TestHostPortMapping(t *testing.T) {
	e := newEnv(t)
	sb := e.setup("pod-hp", "hp", sandbox.PortMapping{HostPort: testHostPrt, ContainerPort: testPort, Protocol: "TCP"})
	serveHTTP(t, sb, testPort, "via hostPort")
	if rules := natRulesFor(t, sb.UID); !strings.Contains(rules, fmt.Sprint(testHostPrt)) {
		t.Fatalf("no portmap rule for hostPort %d:\n%s", testHostPrt, rules)
	}
	// A local address of the node: the bridge gateways (both families) and loopback.
	mustGet(t, "", hostPortURL(sb.Gateway4, testHostPrt), "via hostPort")
	mustGet(t, "", hostPortURL(sb.Gateway6, testHostPrt), "via hostPort")
	mustGet(t, "", hostPortURL(net.IPv4(127, 0, 0, 1), testHostPrt), "via hostPort")
	// Another pod reaches the hostPort through the node address too (hairpin for itself).
	mustGet(t, sb.NetNSPath, hostPortURL(sb.Gateway4, testHostPrt), "via hostPort")

	if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	e.assertGone(sb)
}

func TestSetupIsIdempotent(t *testing.T) {
	e := newEnv(t)
	first := e.setup("pod-i", "idem")
	second := e.setup("pod-i", "idem")
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second Setup returned a different sandbox (-first +second):\n%s", diff)
	}
	if got := len(e.leases()); got != 2 {
		t.Errorf("%d leases after two Setups, want 2", got)
	}
}

func TestRestartedManagerFindsSandboxes(t *testing.T) {
	e := newEnv(t)
	a := e.setup("pod-r1", "r1")
	b := e.setup("pod-r2", "r2")

	restarted := sandbox.New(e.opts...)
	uids, err := restarted.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if diff := cmp.Diff([]string{"pod-r1", "pod-r2"}, uids); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, want := range []*sandbox.Sandbox{a, b} {
		got, err := restarted.Get(want.UID)
		if err != nil {
			t.Fatalf("Get %s: %v", want.UID, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get %s after restart (-want +got):\n%s", want.UID, diff)
		}
		if len(got.IPv4) != net.IPv4len || len(got.Gateway4) != net.IPv4len {
			t.Errorf("Get %s: IPv4 %d bytes, gateway %d bytes; want the 4-byte form", want.UID, len(got.IPv4), len(got.Gateway4))
		}
	}
	if _, err := restarted.Get("no-such-pod"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("Get unknown: err %v, want ErrNotFound", err)
	}
	e.m = restarted
	if err := restarted.Teardown(context.Background(), a.UID); err != nil {
		t.Fatalf("Teardown after restart: %v", err)
	}
	e.assertGone(a)
}

func TestSetupRebuildsDeadSandbox(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reboot bool
	}{
		// After a reboot the netns mount, its veth and the iptables rules are gone; the
		// files and host-local leases in the data dir are still there.
		{"after reboot", true},
		// The netns pin was unmounted on a running node: the masquerade rules remain.
		{"netns unmounted", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			old := e.setup("pod-d", "dead")
			rulesBefore := strings.Count(natRulesFor(t, old.UID), "\n")
			if err := unix.Unmount(old.NetNSPath, unix.MNT_DETACH); err != nil {
				t.Fatalf("unmount: %v", err)
			}
			if tc.reboot {
				deleteNATRulesFor(t, old.UID)
			}
			sb := e.setup("pod-d", "dead")
			serveHTTP(t, sb, testPort, "rebuilt")
			mustGet(t, "", hostPortURL(sb.IPv4, testPort), "rebuilt")
			mustGet(t, "", hostPortURL(sb.IPv6, testPort), "rebuilt")
			if got := len(e.leases()); got != 2 {
				t.Errorf("%d leases after rebuild, want 2: %v", got, e.leases())
			}
			if rules := natRulesFor(t, sb.UID); strings.Count(rules, "\n") != rulesBefore {
				t.Errorf("after rebuild %d nat rules, want %d as after the first Setup:\n%s",
					strings.Count(rules, "\n"), rulesBefore, rules)
			}
			if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
				t.Fatalf("Teardown: %v", err)
			}
			e.assertGone(sb)
		})
	}
}

func TestTeardownAfterVethDeleted(t *testing.T) {
	e := newEnv(t)
	sb := e.setup("pod-vd", "veth-gone")
	if out, err := exec.Command("ip", "link", "del", sb.HostVeth).CombinedOutput(); err != nil {
		t.Fatalf("deleting %s: %v: %s", sb.HostVeth, err, out)
	}
	if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	e.assertGone(sb)
}

func TestTeardownOfDeadSandbox(t *testing.T) {
	e := newEnv(t)
	sb := e.setup("pod-dt", "dead", sandbox.PortMapping{HostPort: testHostPrt, ContainerPort: testPort})
	if err := unix.Unmount(sb.NetNSPath, unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if err := e.m.Teardown(context.Background(), sb.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	e.assertGone(sb)
}

func TestPodFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb, err := e.m.Setup(ctx, sandbox.PodRef{UID: "pod-f", Namespace: "default", Name: "files-pod"}, nil)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		return string(b)
	}
	if got := read(sb.HostnamePath); got != "files-pod\n" {
		t.Errorf("hostname = %q", got)
	}
	hosts := read(sb.HostsPath)
	for _, want := range []string{
		"127.0.0.1\tlocalhost\n",
		"::1\tlocalhost ip6-localhost ip6-loopback\n",
		sb.IPv4.String() + "\tfiles-pod\n",
		sb.IPv6.String() + "\tfiles-pod\n",
	} {
		if !strings.Contains(hosts, want) {
			t.Errorf("hosts lacks %q:\n%s", want, hosts)
		}
	}
	if got := read(sb.ResolvConfPath); got != "nameserver 192.0.2.53\nsearch default.svc.cluster.local\n" {
		t.Errorf("resolv.conf = %q", got)
	}

	// spec.hostname overrides the pod name.
	sb2, err := e.m.Setup(ctx, sandbox.PodRef{UID: "pod-f2", Namespace: "default", Name: "n", Hostname: "custom"}, nil)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if got := read(sb2.HostnamePath); got != "custom\n" {
		t.Errorf("hostname with spec.hostname = %q", got)
	}
}

func TestSingleStack(t *testing.T) {
	e := newEnv(t, sandbox.WithSubnets(testSubnet4, ""))
	sb := e.setup("pod-v4", "v4only")
	if sb.IPv4 == nil || sb.IPv6 != nil {
		t.Fatalf("IPv4-only node gave %v", sb.IPs())
	}
	serveHTTP(t, sb, testPort, "v4")
	mustGet(t, "", hostPortURL(sb.IPv4, testPort), "v4")
}

// linkPlugins makes a plugin dir holding only the named plugins of /usr/lib/cni.
func linkPlugins(t *testing.T, names ...string) string {
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(filepath.Join("/usr/lib/cni", n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCNIFailureRollsBack(t *testing.T) {
	for _, tc := range []struct {
		name, plugin string
		binDir       func(t *testing.T) string
	}{
		// Nothing runs: the first plugin is missing.
		{"no plugin dir", "bridge", func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") }},
		// bridge and host-local have created a veth and leases when portmap fails.
		{"portmap missing", "portmap", func(t *testing.T) string {
			return linkPlugins(t, "loopback", "bridge", "host-local")
		}},
		// portmap is there but fails ADD and DEL alike: DEL of the chain cannot run, so
		// the rollback removes the veth, leases and netns itself.
		{"portmap fails add and del", "portmap", func(t *testing.T) string {
			dir := linkPlugins(t, "loopback", "bridge", "host-local")
			script := "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"broken for the test\"}'\nexit 1\n"
			if err := os.WriteFile(filepath.Join(dir, "portmap"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sandbox.WithCNIBinDir(tc.binDir(t)))
			vethsBefore := veths(t)
			_, err := e.m.Setup(context.Background(), sandbox.PodRef{UID: "pod-x", Namespace: "default", Name: "broken"},
				[]sandbox.PortMapping{{HostPort: testHostPrt, ContainerPort: testPort}})
			if err == nil {
				t.Fatalf("Setup succeeded with a broken plugin dir")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.plugin)) {
				t.Errorf("error does not name plugin %q: %v", tc.plugin, err)
			}
			if !strings.Contains(err.Error(), "default/broken") {
				t.Errorf("error does not name the pod: %v", err)
			}
			e.assertNoLeftovers()
			if diff := cmp.Diff(vethsBefore, veths(t)); diff != "" {
				t.Errorf("veths changed (-before +after):\n%s", diff)
			}
			if rules := natRulesFor(t, "pod-x"); rules != "" {
				t.Errorf("iptables rules left:\n%s", rules)
			}
			if uids, _ := e.m.List(); len(uids) != 0 {
				t.Errorf("List after failed Setup = %v, want none", uids)
			}
		})
	}
}

// veths lists the ports of the test bridge.
func veths(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("/sys/class/net", testBridge, "brif"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, en.Name())
	}
	return out
}

func TestInvalidInput(t *testing.T) {
	ctx := context.Background()
	m := sandbox.New(sandbox.WithDataDir(t.TempDir()), sandbox.WithNetwork(testNetwork, testBridge))
	for name, tc := range map[string]struct {
		m     *sandbox.Manager
		p     sandbox.PodRef
		ports []sandbox.PortMapping
	}{
		"bad uid":      {m, sandbox.PodRef{UID: "../etc", Name: "x"}, nil},
		"empty uid":    {m, sandbox.PodRef{Name: "x"}, nil},
		"no name":      {m, sandbox.PodRef{UID: "u"}, nil},
		"bad port":     {m, sandbox.PodRef{UID: "u", Name: "x"}, []sandbox.PortMapping{{HostPort: 70000, ContainerPort: 80}}},
		"bad protocol": {m, sandbox.PodRef{UID: "u", Name: "x"}, []sandbox.PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "ICMP"}}},
		"no subnets":   {sandbox.New(sandbox.WithDataDir(t.TempDir()), sandbox.WithSubnets("", "")), sandbox.PodRef{UID: "u", Name: "x"}, nil},
		"v6 as v4":     {sandbox.New(sandbox.WithDataDir(t.TempDir()), sandbox.WithSubnets("fd00::/64", "")), sandbox.PodRef{UID: "u", Name: "x"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.m.Setup(ctx, tc.p, tc.ports); !errors.Is(err, api.ErrInvalidArgument) {
				t.Errorf("Setup: err %v, want ErrInvalidArgument", err)
			}
		})
	}
	if err := m.Teardown(ctx, "../x"); !errors.Is(err, api.ErrInvalidArgument) {
		t.Errorf("Teardown bad uid: err %v, want ErrInvalidArgument", err)
	}
	if err := m.Teardown(ctx, "never-created"); err != nil {
		t.Errorf("Teardown unknown uid: %v, want nil", err)
	}
}

func TestConcurrentSetupAndTeardown(t *testing.T) {
	e := newEnv(t)
	const n = 6
	sbs := make([]*sandbox.Sandbox, n)
	errs := make([]error, n)
	done := make(chan int)
	for i := 0; i < n; i++ {
		go func(i int) {
			defer func() { done <- i }()
			sbs[i], errs[i] = e.m.Setup(context.Background(),
				sandbox.PodRef{UID: fmt.Sprintf("pod-c%d", i), Namespace: "default", Name: fmt.Sprintf("c%d", i)}, nil)
		}(i)
	}
	for i := 0; i < n; i++ {
		<-done
	}
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Setup %d: %v", i, err)
		}
		for _, ip := range sbs[i].IPs() {
			if seen[ip.String()] {
				t.Errorf("address %s given twice", ip)
			}
			seen[ip.String()] = true
		}
		body := fmt.Sprint("pod ", i)
		serveHTTP(t, sbs[i], testPort, body)
		mustGet(t, "", hostPortURL(sbs[i].IPv4, testPort), body)
		mustGet(t, "", hostPortURL(sbs[i].IPv6, testPort), body)
	}
	if got := len(e.leases()); got != 2*n {
		t.Errorf("%d leases, want %d", got, 2*n)
	}
	for i := 0; i < n; i++ {
		go func(i int) {
			defer func() { done <- i }()
			errs[i] = e.m.Teardown(context.Background(), sbs[i].UID)
		}(i)
	}
	for i := 0; i < n; i++ {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("Teardown %d: %v", i, err)
		}
		e.assertGone(sbs[i])
	}
}

// BenchmarkSetupTeardown measures one pod's network sandbox: netns, CNI ADD of the whole
// chain, pod files; then Teardown. It is part of the pod start latency of issue #3.
func BenchmarkSetupTeardown(b *testing.B) {
	for _, masq := range []bool{true, false} {
		b.Run(fmt.Sprint("ipMasq=", masq), func(b *testing.B) { benchSetupTeardown(b, masq) })
	}
}

func benchSetupTeardown(b *testing.B, masq bool) {
	testenv.Integration(b, "iptables")
	dataDir := b.TempDir()
	m := sandbox.New(sandbox.WithDataDir(dataDir), sandbox.WithNetwork(testNetwork, testBridge),
		sandbox.WithSubnets(testSubnet4, testSubnet6), sandbox.WithResolvConf("nameserver 192.0.2.53\n"),
		sandbox.WithIPMasq(masq), sandbox.WithMasqueradeTable(testNATTbl))
	b.Cleanup(func() {
		_ = m.RemoveMasquerade()
		exec.Command("ip", "link", "del", testBridge).Run()
	})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		uid := fmt.Sprint("bench-", i)
		i++
		if _, err := m.Setup(ctx, sandbox.PodRef{UID: uid, Namespace: "default", Name: uid}, nil); err != nil {
			b.Fatal(err)
		}
		if err := m.Teardown(ctx, uid); err != nil {
			b.Fatal(err)
		}
	}
}
