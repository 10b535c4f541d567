package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"gantry.io/gantry/api"
)

// Defaults of a Manager; each can be changed with an Option.
const (
	// DefaultDataDir holds netns pins, the CNI result cache, host-local leases and the
	// per-pod files.
	DefaultDataDir = "/var/lib/gantry/sandbox"
	// DefaultCNIBinDir is where Debian's containernetworking-plugins package puts the
	// plugins.
	DefaultCNIBinDir = "/usr/lib/cni"
	// DefaultNetwork is the CNI network name (it names the host-local lease directory and
	// the CNI cache entries).
	DefaultNetwork = "gantry"
	// DefaultBridge is the Linux bridge the pods' veths are attached to.
	DefaultBridge = "gantry0"
	// DefaultSubnet4 is the node's IPv4 pod CIDR.
	DefaultSubnet4 = "10.244.0.0/24"
	// DefaultSubnet6 is the node's IPv6 pod CIDR.
	DefaultSubnet6 = "fd00:10:244::/64"
	// PodInterface is the name of the pod's interface inside its netns.
	PodInterface = "eth0"
)

// Manager creates and removes pod network sandboxes on this node. It is safe for
// concurrent use: calls for different pods run in parallel, calls for the same pod UID
// are serialised.
type Manager struct {
	dataDir    string
	binDirs    []string
	network    string
	bridge     string
	subnet4    string
	subnet6    string
	subnetsSet bool
	resolvConf *string
	// resolvConfFunc, when set, gives each pod's resolv.conf (cluster DNS).
	resolvConfFunc func(PodRef) (string, bool)
	noIPMasq       bool // the bridge plugin's per-pod masquerade is off (the default)

	noMasq      bool     // no node-wide masquerade rule
	noMasqCIDRs []string // destinations the node-wide rule leaves alone
	masqTable   string
	masqMu      sync.Mutex
	masqDone    bool

	trace func(phase string, d time.Duration)

	locks keyedMutex
}

// Option configures a Manager.
type Option func(*Manager)

// WithDataDir sets the directory that holds netns pins (netns/), the CNI result cache
// (cni-cache/), host-local leases (ipam/) and the per-pod files and state (pods/UID/).
// Default is DefaultDataDir.
func WithDataDir(dir string) Option { return func(m *Manager) { m.dataDir = dir } }

// WithCNIBinDir sets the directories searched for CNI plugin binaries, in order.
// Default is DefaultCNIBinDir.
func WithCNIBinDir(dirs ...string) Option {
	return func(m *Manager) { m.binDirs = append([]string(nil), dirs...) }
}

// WithNetwork sets the CNI network name and the Linux bridge name. Empty values keep the
// defaults, DefaultNetwork and DefaultBridge.
func WithNetwork(name, bridge string) Option {
	return func(m *Manager) { m.network, m.bridge = name, bridge }
}

// WithSubnets sets this node's pod CIDRs. Either may be "" for a single-stack node; both
// empty makes Setup fail. Default is DefaultSubnet4 and DefaultSubnet6 (dual stack).
func WithSubnets(v4, v6 string) Option {
	return func(m *Manager) { m.subnet4, m.subnet6, m.subnetsSet = v4, v6, true }
}

// WithResolvConf sets the contents of every pod's /etc/resolv.conf. Default: the host's
// /etc/resolv.conf with loopback nameservers removed (they are unreachable from a pod)
// and search/options lines kept, read at each Setup.
func WithResolvConf(contents string) Option {
	return func(m *Manager) { m.resolvConf = &contents }
}

// WithResolvConfFunc sets a function that returns the contents of a pod's
// /etc/resolv.conf, called at each Setup: the agent's cluster DNS (nameserver the node's
// DNS addresses, search path of the pod's namespace). When it returns ok false, and for
// pods whose DNSPolicy is "Default" (Kubernetes' name for the node's resolver
// configuration), the pod gets what it would without the function (WithResolvConf or the
// host's filtered resolv.conf). Default none.
func WithResolvConfFunc(f func(p PodRef) (contents string, ok bool)) Option {
	return func(m *Manager) { m.resolvConfFunc = f }
}

// WithIPMasq sets whether the bridge plugin masquerades traffic from pods to addresses
// outside the pod subnet, per pod (its own nat chain in both families, several
// iptables calls on every Setup and Teardown). Default false: the Manager installs one
// node-wide masquerade rule instead (see EnsureMasquerade). true turns the node-wide
// rule off.
func WithIPMasq(enabled bool) Option { return func(m *Manager) { m.noIPMasq = !enabled } }

// WithMasquerade sets whether the Manager installs the node-wide masquerade rule for
// the pod CIDRs (nftables table WithMasqueradeTable). Default true; false leaves
// masquerading to the operator (pods then reach other hosts with their own addresses,
// which needs routes to the pod CIDRs there).
func WithMasquerade(enabled bool) Option { return func(m *Manager) { m.noMasq = !enabled } }

// WithNonMasqueradeCIDRs lists destinations that pod traffic reaches with the pod's own
// address, besides this node's pod CIDRs (never masqueraded): typically the other
// nodes' pod CIDRs or the whole cluster CIDR. Default none.
func WithNonMasqueradeCIDRs(cidrs ...string) Option {
	return func(m *Manager) { m.noMasqCIDRs = append([]string(nil), cidrs...) }
}

// WithMasqueradeTable sets the name of the nftables table (family inet) the Manager owns
// for the node-wide masquerade rule. Default DefaultMasqueradeTable. Two Managers with
// different pod CIDRs on one host need different tables.
func WithMasqueradeTable(name string) Option { return func(m *Manager) { m.masqTable = name } }

// WithTrace registers a function called with the duration of each phase of Setup and
// Teardown: "netns", "cni-add:<plugin>" and "cni-del:<plugin>" (one per plugin run),
// "ipv6-settle", "files", "masquerade", and "wait" (how long a Pending.Wait blocked: the
// part of the CNI ADD its caller did not overlap). It is called from the goroutine doing
// the work and must be quick. Default none. Benchmarks use it for the phase breakdown.
func WithTrace(f func(phase string, d time.Duration)) Option { return func(m *Manager) { m.trace = f } }

// New returns a Manager. It has no side effects: directories are created by Setup.
func New(opts ...Option) *Manager {
	m := &Manager{noIPMasq: true}
	for _, o := range opts {
		o(m)
	}
	if m.dataDir == "" {
		m.dataDir = DefaultDataDir
	}
	if len(m.binDirs) == 0 {
		m.binDirs = []string{DefaultCNIBinDir}
	}
	if m.network == "" {
		m.network = DefaultNetwork
	}
	if m.bridge == "" {
		m.bridge = DefaultBridge
	}
	if m.masqTable == "" {
		m.masqTable = DefaultMasqueradeTable
	}
	if !m.subnetsSet {
		m.subnet4, m.subnet6 = DefaultSubnet4, DefaultSubnet6
	}
	return m
}

// PodRef names the pod a sandbox belongs to. UID is the sandbox's key; Hostname, when
// set (spec.hostname), overrides Name as the pod's hostname. DNSPolicy is the pod's
// spec.dnsPolicy ("" means ClusterFirst); "Default" keeps the host's resolv.conf even
// with WithResolvConfFunc.
type PodRef struct {
	UID, Namespace, Name string
	Hostname             string
	DNSPolicy            string
}

// PortMapping is a hostPort: traffic to HostIP:HostPort on the node (any local address
// when HostIP is empty) is forwarded to the pod's ContainerPort. Protocol is TCP, UDP or
// SCTP (case-insensitive); default TCP.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Sandbox is a pod's network sandbox as Setup created it. The executor joins every
// container of the pod to NetNSPath and bind-mounts HostsPath, ResolvConfPath and
// HostnamePath onto /etc/hosts, /etc/resolv.conf and /etc/hostname.
type Sandbox struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Hostname  string `json:"hostname"`
	NetNSPath string `json:"netnsPath"`
	// IPv4 and IPv6 are the pod's addresses; one is nil on a single-stack node.
	IPv4 net.IP `json:"ipv4,omitempty"`
	IPv6 net.IP `json:"ipv6,omitempty"`
	// Gateway4 and Gateway6 are the bridge's addresses, the pod's default gateways.
	Gateway4       net.IP `json:"gateway4,omitempty"`
	Gateway6       net.IP `json:"gateway6,omitempty"`
	HostsPath      string `json:"hostsPath"`
	ResolvConfPath string `json:"resolvConfPath"`
	HostnamePath   string `json:"hostnamePath"`
	// HostVeth is the host end of the pod's veth pair (on the bridge).
	HostVeth string `json:"hostVeth,omitempty"`
	// Network is the CNI network the sandbox was attached to.
	Network string        `json:"network"`
	Ports   []PortMapping `json:"ports,omitempty"`
}

// IPs returns the pod's addresses, IPv4 first.
func (s *Sandbox) IPs() []net.IP {
	var ips []net.IP
	if s.IPv4 != nil {
		ips = append(ips, s.IPv4)
	}
	if s.IPv6 != nil {
		ips = append(ips, s.IPv6)
	}
	return ips
}

// Setup creates the sandbox of pod p: a network namespace (lo up), its CNI attachment
// (bridge + host-local dual stack, portmap with ports) and the pod's hostname, hosts and
// resolv.conf files, and persists the result. The first Setup of a Manager installs the
// node-wide masquerade table (EnsureMasquerade); if that fails, Setup fails. Setup is
// Begin followed by Pending.Wait.
//
// Setup is idempotent: if a sandbox for p.UID exists and its netns is alive, it is
// returned unchanged (p and ports are not compared; a changed pod is a new pod). Remains
// of an incomplete or dead sandbox (a crash mid-Setup, a netns lost at reboot) are torn
// down first and the sandbox is built afresh.
//
// On any failure everything done so far is rolled back and the error is returned; a CNI
// failure carries the plugin's own error. Invalid input is api.ErrInvalidArgument.
func (m *Manager) Setup(ctx context.Context, p PodRef, ports []PortMapping) (*Sandbox, error) {
	pend, err := m.Begin(ctx, p, ports)
	if err != nil {
		return nil, err
	}
	return pend.Wait()
}

// Begin starts building the sandbox of pod p and returns as soon as its network
// namespace and its hostname, hosts and resolv.conf files exist (a few milliseconds);
// the CNI ADD (the plugins, the slow part) then runs in the background, under ctx.
// Pending.Sandbox is usable at once for what does not need the pod's addresses — a
// container joining NetNSPath and bind-mounting the files can be created meanwhile —
// and Pending.Wait returns the complete sandbox. A process must not run in the pod
// before Wait returned it: until then the netns has only lo, and /etc/hosts lacks
// the pod's addresses (the hosts file is rewritten in place, so a bind mount made
// before Wait shows the final contents).
//
// Begin has Setup's contract: idempotent (an existing live sandbox comes back as an
// already finished Pending), remains torn down first, the first call installs the
// masquerade table. An error from Begin means nothing was built; a failure of the CNI
// ADD is returned by Wait, after everything was rolled back. The sandbox's per-UID lock
// is held until the background part ends, so a Teardown of p.UID waits for it; cancel
// ctx to abort the ADD.
func (m *Manager) Begin(ctx context.Context, p PodRef, ports []PortMapping) (*Pending, error) {
	if err := validUID(p.UID); err != nil {
		return nil, err
	}
	where := fmt.Sprintf("sandbox of pod %s/%s (uid %s)", p.Namespace, p.Name, p.UID)
	hostname, err := podHostname(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	capPorts, err := portMappingArgs(ports)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	conf, err := m.confList(len(capPorts) > 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	if err := m.ensureMasqueradeOnce(); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}

	unlock := m.locks.lock(p.UID)
	handedOff := false
	defer func() {
		if !handedOff {
			unlock()
		}
	}()

	// A state that cannot be read counts as remains: it is torn down and rebuilt.
	existing, err := m.load(p.UID)
	if err == nil && isNetNS(existing.NetNSPath) {
		return finishedPending(existing), nil
	}
	if m.hasRemains(p.UID) {
		var oldPorts []PortMapping
		if existing != nil {
			oldPorts = existing.Ports
		}
		if err := m.teardown(ctx, p.UID, oldPorts); err != nil {
			return nil, fmt.Errorf("%s: removing the remains of an earlier sandbox: %w", where, err)
		}
	}

	sb, err := m.create(p, hostname, ports)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, m.rollback(ctx, p.UID, ports, err))
	}
	pend := &Pending{partial: *sb, done: make(chan struct{}), trace: m.trace}
	handedOff = true
	go func() {
		// done is closed before the lock is released: whoever gets the lock next
		// (a Teardown) finds the Pending finished.
		defer unlock()
		defer close(pend.done)
		full, err := m.attach(ctx, sb, conf, capPorts)
		if err != nil {
			pend.err = fmt.Errorf("%s: %w", where, m.rollback(ctx, p.UID, ports, err))
			return
		}
		pend.sb = full
	}()
	return pend, nil
}

// rollback undoes a failed Setup of uid and returns err, joined with the rollback's own
// errors if it could not remove everything. It runs with a context that outlives a
// cancelled ctx: a half-built sandbox must not leak because the caller gave up.
func (m *Manager) rollback(ctx context.Context, uid string, ports []PortMapping, err error) error {
	rbCtx := context.WithoutCancel(ctx)
	if rbErr := m.teardown(rbCtx, uid, ports); rbErr != nil {
		// CNI DEL failed too (a plugin that fails both ways): nothing of this
		// attachment was ever handed out, so remove it directly.
		if fcErr := m.forceClean(rbCtx, uid); fcErr != nil {
			err = errors.Join(err, fmt.Errorf("rolling back: %w", errors.Join(rbErr, fcErr)))
		}
	}
	return err
}

// create does the first, synchronous part of Begin: the netns, the bridge (when
// missing) and the pod's files, the hosts file without the pod's addresses yet. It
// returns the sandbox without addresses; the caller rolls back on error.
func (m *Manager) create(p PodRef, hostname string, ports []PortMapping) (*Sandbox, error) {
	for _, d := range []string{m.netnsDir(), m.podDir(p.UID)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	pin := m.netnsPath(p.UID)
	t0 := time.Now()
	if err := createNetNS(pin); err != nil {
		return nil, err
	}
	m.traced("netns", t0)
	if m.subnet6 != "" {
		prepareBridge(m.bridge)
	}
	sb := &Sandbox{
		UID:            p.UID,
		Namespace:      p.Namespace,
		Name:           p.Name,
		Hostname:       hostname,
		NetNSPath:      pin,
		HostsPath:      filepath.Join(m.podDir(p.UID), "hosts"),
		ResolvConfPath: filepath.Join(m.podDir(p.UID), "resolv.conf"),
		HostnamePath:   filepath.Join(m.podDir(p.UID), "hostname"),
		Network:        m.network,
		Ports:          append([]PortMapping(nil), ports...),
	}
	t0 = time.Now()
	defer m.traced("files", t0)
	resolv, err := m.resolvConfFor(p)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(sb.HostnamePath, []byte(hostname+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(sb.HostsPath, hostsFile(hostname, nil), 0o644); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(sb.ResolvConfPath, []byte(resolv), 0o644); err != nil {
		return nil, err
	}
	return sb, nil
}

// attach does the background part of Begin on a copy of sb: CNI ADD, the addresses, the
// IPv6 settle wait, the hosts file with the addresses (rewritten in place: containers
// created meanwhile have it bind-mounted already) and the saved state, written last.
func (m *Manager) attach(ctx context.Context, partial *Sandbox, conf *confList, capPorts []map[string]any) (*Sandbox, error) {
	sb := *partial
	sb.Ports = append([]PortMapping(nil), partial.Ports...)
	res, err := m.cniAdd(ctx, conf, sb.UID, sb.NetNSPath, capPorts)
	if err != nil {
		return nil, err
	}
	res.fill(&sb, m.bridge)
	if m.subnet4 != "" && sb.IPv4 == nil || m.subnet6 != "" && sb.IPv6 == nil {
		return nil, fmt.Errorf("CNI network %q returned %v, missing an address of a configured family (v4 %q, v6 %q)",
			m.network, sb.IPs(), m.subnet4, m.subnet6)
	}
	if sb.IPv6 != nil {
		// The bridge's own IPv6 address is tentative for a moment after the bridge is
		// created; until DAD ends the host cannot use it to reach the pod.
		t0 := time.Now()
		if err := waitIPv6Settled(ctx, m.bridge); err != nil {
			return nil, err
		}
		m.traced("ipv6-settle", t0)
	}
	if err := writeFileInPlace(sb.HostsPath, hostsFile(sb.Hostname, sb.IPs())); err != nil {
		return nil, err
	}
	if err := m.save(&sb); err != nil {
		return nil, err
	}
	return &sb, nil
}

// Teardown removes the sandbox of the pod with this UID: the CNI attachment (DEL: veth,
// IP lease, portmap rules), the netns and the pod's files and state. It is idempotent: an
// unknown UID is not an error. If the CNI DEL fails, the netns and state are kept so that
// a later Teardown can retry, and the error is returned.
func (m *Manager) Teardown(ctx context.Context, uid string) error {
	if err := validUID(uid); err != nil {
		return err
	}
	unlock := m.locks.lock(uid)
	defer unlock()
	var ports []PortMapping
	if sb, err := m.load(uid); err == nil {
		ports = sb.Ports
	}
	if err := m.teardown(ctx, uid, ports); err != nil {
		return fmt.Errorf("tearing down sandbox %s: %w", uid, err)
	}
	return nil
}

// teardown is Teardown without the lock. ports are the mappings of the attachment, used
// when the CNI cache has no record of it.
func (m *Manager) teardown(ctx context.Context, uid string, ports []PortMapping) error {
	if !m.hasRemains(uid) {
		return nil
	}
	pin := m.netnsPath(uid)
	netnsArg := ""
	if isNetNS(pin) {
		netnsArg = pin
	}
	// Without the pod's interface the bridge plugin cannot tell which masquerade rules
	// are the pod's; they are removed by tag below.
	staleNAT := netnsArg == "" || !hasInterface(pin, PodInterface)
	network := m.network
	if sb, err := m.load(uid); err == nil && sb.Network != "" {
		network = sb.Network
	}
	capPorts, err := portMappingArgs(ports)
	if err != nil {
		capPorts = nil
	}
	if err := m.cniDel(ctx, network, uid, netnsArg, capPorts); err != nil {
		return err
	}
	if staleNAT {
		if err := removeStaleNATRules(ctx, network, uid); err != nil {
			return err
		}
	}
	if err := removeNetNS(pin); err != nil {
		return err
	}
	if err := os.RemoveAll(m.podDir(uid)); err != nil {
		return fmt.Errorf("removing pod files: %w", err)
	}
	return nil
}

// List returns the UIDs of every sandbox that has anything on disk (state, netns pin or
// CNI cache entry), sorted, including incomplete ones, so that garbage collection can
// Teardown what belongs to no pod.
func (m *Manager) List() ([]string, error) {
	seen := map[string]bool{}
	for _, dir := range []string{m.netnsDir(), m.podsDir()} {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("listing sandboxes: %w", err)
		}
		for _, e := range entries {
			if validUID(e.Name()) == nil && !strings.HasPrefix(e.Name(), ".") {
				seen[e.Name()] = true
			}
		}
	}
	for _, uid := range m.cachedUIDs() {
		seen[uid] = true
	}
	uids := make([]string, 0, len(seen))
	for uid := range seen {
		uids = append(uids, uid)
	}
	sort.Strings(uids)
	return uids, nil
}

// Get returns the sandbox Setup created for uid, read from the data dir (so it survives
// an agent restart). Returns an error wrapping api.ErrNotFound if there is none.
func (m *Manager) Get(uid string) (*Sandbox, error) {
	if err := validUID(uid); err != nil {
		return nil, err
	}
	return m.load(uid)
}

func (m *Manager) netnsDir() string            { return filepath.Join(m.dataDir, "netns") }
func (m *Manager) netnsPath(uid string) string { return filepath.Join(m.netnsDir(), uid) }
func (m *Manager) podsDir() string             { return filepath.Join(m.dataDir, "pods") }
func (m *Manager) podDir(uid string) string    { return filepath.Join(m.podsDir(), uid) }
func (m *Manager) cacheDir() string            { return filepath.Join(m.dataDir, "cni-cache") }
func (m *Manager) ipamDir() string             { return filepath.Join(m.dataDir, "ipam") }

// hasRemains reports whether anything of sandbox uid exists on disk.
func (m *Manager) hasRemains(uid string) bool {
	for _, p := range []string{m.netnsPath(uid), m.podDir(uid)} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	_, err := os.Lstat(m.cacheFile(m.network, uid))
	return err == nil
}

// uidPattern is what CNI accepts as a container ID, and is safe as a file name.
var uidPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)

func validUID(uid string) error {
	if len(uid) == 0 || len(uid) > 128 || !uidPattern.MatchString(uid) {
		return fmt.Errorf("pod uid %q: must be 1-128 characters of [a-zA-Z0-9_.-], starting with a letter or digit: %w",
			uid, api.ErrInvalidArgument)
	}
	return nil
}

// keyedMutex serialises work per key.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[key]
	if e == nil {
		e = &keyedEntry{}
		k.locks[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// forceClean removes what a failed Setup left when CNI DEL cannot run: the netns pin
// (removing the namespace deletes the pod's veth end, and with it the host end), the
// host veth if it is still there, the host-local leases held by uid, nat rules tagged
// with uid, the CNI cache entry and the pod's files.
func (m *Manager) forceClean(ctx context.Context, uid string) error {
	var errs []error
	pin := m.netnsPath(uid)
	if isNetNS(pin) && hasInterface(pin, PodInterface) {
		// Deleting the pod end deletes the host end at once; the namespace itself may
		// die a moment after its unmount.
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+pin, "ip", "link", "del", PodInterface).CombinedOutput()
		if err != nil {
			errs = append(errs, fmt.Errorf("deleting the pod's %s: %w: %s", PodInterface, err, strings.TrimSpace(string(out))))
		}
	}
	if err := removeNetNS(pin); err != nil {
		errs = append(errs, err)
	}
	if err := m.releaseLeases(uid); err != nil {
		errs = append(errs, err)
	}
	if err := removeStaleNATRules(ctx, m.network, uid); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(m.cacheFile(m.network, uid)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing CNI cache entry: %w", err))
	}
	if err := os.RemoveAll(m.podDir(uid)); err != nil {
		errs = append(errs, fmt.Errorf("removing pod files: %w", err))
	}
	return errors.Join(errs...)
}

// releaseLeases deletes the host-local lease files of network whose holder is uid
// (host-local writes "<container id>\r\n<ifname>" into the file named after the IP).
func (m *Manager) releaseLeases(uid string) error {
	dir := filepath.Join(m.ipamDir(), m.network)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading leases: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		holder, _, _ := strings.Cut(string(b), "\n")
		if strings.TrimSpace(holder) == uid {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("releasing lease %s: %w", e.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) traced(phase string, since time.Time) {
	if m.trace != nil {
		m.trace(phase, time.Since(since))
	}
}
