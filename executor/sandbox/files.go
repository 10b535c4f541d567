package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gantry.io/gantry/api"
)

// hostResolvConf is read for the default resolv.conf contents. systemdResolvConf is the
// upstream list systemd-resolved keeps when the host's resolv.conf only names its
// loopback stub.
var (
	hostResolvConf    = "/etc/resolv.conf"
	systemdResolvConf = "/run/systemd/resolve/resolv.conf"
)

// maxHostnameLen is the length of a DNS label; longer pod names are truncated, as the
// kubelet does.
const maxHostnameLen = 63

// podHostname returns p.Hostname, or p.Name when it is empty, truncated to 63 characters
// without a trailing '-' or '.'.
func podHostname(p PodRef) (string, error) {
	h := p.Hostname
	if h == "" {
		h = p.Name
	}
	if len(h) > maxHostnameLen {
		h = h[:maxHostnameLen]
	}
	h = strings.TrimRight(h, "-.")
	if h == "" {
		return "", fmt.Errorf("pod has no name to use as hostname: %w", api.ErrInvalidArgument)
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return "", fmt.Errorf("hostname %q: only letters, digits, '-' and '.' are allowed: %w", h, api.ErrInvalidArgument)
		}
	}
	return h, nil
}

// hostsFile renders a pod's /etc/hosts: the loopback names for IPv4 and IPv6, then each
// pod IP with the pod's hostname.
func hostsFile(hostname string, ips []net.IP) []byte {
	var b bytes.Buffer
	b.WriteString("# Pod hosts file, written by gantry.\n")
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\n")
	b.WriteString("fe00::0\tip6-mcastprefix\n")
	b.WriteString("fe00::1\tip6-allnodes\n")
	b.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s\t%s\n", ip, hostname)
	}
	return b.Bytes()
}

// resolvConfFor returns pod p's resolv.conf: WithResolvConfFunc's answer unless p's
// DNSPolicy is Default or the function declines, else resolvConfContents.
func (m *Manager) resolvConfFor(p PodRef) (string, error) {
	if m.resolvConfFunc != nil && p.DNSPolicy != "Default" {
		if s, ok := m.resolvConfFunc(p); ok {
			if s != "" && !strings.HasSuffix(s, "\n") {
				s += "\n"
			}
			return s, nil
		}
	}
	return m.resolvConfContents()
}

// resolvConfContents returns WithResolvConf's contents, or the host's resolv.conf
// filtered by filterResolvConf.
func (m *Manager) resolvConfContents() (string, error) {
	if m.resolvConf != nil {
		s := *m.resolvConf
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s, nil
	}
	b, err := os.ReadFile(hostResolvConf)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the host's resolv.conf: %w", err)
	}
	out, dropped := filterResolvConf(string(b))
	if dropped && !strings.Contains(out, "nameserver") {
		if b, err := os.ReadFile(systemdResolvConf); err == nil {
			out, _ = filterResolvConf(string(b))
		}
	}
	return out, nil
}

// filterResolvConf keeps the nameserver lines of non-loopback servers and the search,
// domain and options lines of a resolv.conf; dropped reports whether a loopback
// nameserver was removed.
func filterResolvConf(in string) (out string, dropped bool) {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(in))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") || strings.HasPrefix(fields[0], ";") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) < 2 {
				continue
			}
			if ip := net.ParseIP(strings.SplitN(fields[1], "%", 2)[0]); ip == nil || ip.IsLoopback() {
				dropped = true
				continue
			}
		case "search", "domain", "options":
		default:
			continue
		}
		b.WriteString(strings.Join(fields, " "))
		b.WriteByte('\n')
	}
	return b.String(), dropped
}

// writeFileAtomic writes data to a temporary file next to path and renames it over path,
// so a reader sees the old or the new contents, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

const stateFile = "sandbox.json"

// save persists sb; it is written last by Setup, so its presence means the sandbox is
// complete.
func (m *Manager) save(sb *Sandbox) error {
	b, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding sandbox state: %w", err)
	}
	return writeFileAtomic(filepath.Join(m.podDir(sb.UID), stateFile), append(b, '\n'), 0o600)
}

// load reads the state Setup saved for uid; api.ErrNotFound if there is none.
func (m *Manager) load(uid string) (*Sandbox, error) {
	p := filepath.Join(m.podDir(uid), stateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %s: %w", uid, api.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading sandbox state: %w", err)
	}
	var sb Sandbox
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, fmt.Errorf("sandbox state %s is corrupt: %w", p, err)
	}
	// JSON gives IPv4 addresses in their 16-byte form; keep the 4-byte form Setup returns.
	if v4 := sb.IPv4.To4(); v4 != nil {
		sb.IPv4 = v4
	}
	if gw := sb.Gateway4.To4(); gw != nil {
		sb.Gateway4 = gw
	}
	return &sb, nil
}
