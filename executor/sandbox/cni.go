package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"gantry.io/gantry/api"
)

// cniVersion is the spec version of the conflist; Debian 12's plugins (1.1.1) speak it.
const cniVersion = "1.0.0"

type confList = libcni.NetworkConfigList

// confList builds the node's CNI network: bridge as the pods' gateway with hairpin
// (masquerade only with WithIPMasq(true)), host-local
// IPAM with one range set per configured family, and, when the pod has hostPorts
// (withPorts), portmap. lo is brought up by createNetNS itself (runc does not bring it
// up in a joined netns), which saves the loopback plugin's run; DEL of a sandbox made
// with loopback in the chain still runs it, from the cached config. Leaving portmap
// out otherwise saves a plugin run per Setup and
// Teardown; DEL uses the config cached at ADD, so it runs exactly the plugins ADD ran.
func (m *Manager) confList(withPorts bool) (*confList, error) {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, fam := range []struct {
		cidr, defaultRoute string
		v4                 bool
	}{{m.subnet4, "0.0.0.0/0", true}, {m.subnet6, "::/0", false}} {
		if fam.cidr == "" {
			continue
		}
		_, ipnet, err := net.ParseCIDR(fam.cidr)
		if err != nil || (ipnet.IP.To4() != nil) != fam.v4 {
			kind := "IPv6"
			if fam.v4 {
				kind = "IPv4"
			}
			return nil, fmt.Errorf("pod subnet %q is not an %s CIDR: %w", fam.cidr, kind, api.ErrInvalidArgument)
		}
		ranges = append(ranges, []map[string]string{{"subnet": ipnet.String()}})
		routes = append(routes, map[string]string{"dst": fam.defaultRoute})
	}
	if len(ranges) == 0 {
		return nil, fmt.Errorf("no pod subnet configured (IPv4 and IPv6 both empty): %w", api.ErrInvalidArgument)
	}
	plugins := []any{
		map[string]any{
			"type":        "bridge",
			"bridge":      m.bridge,
			"isGateway":   true,
			"ipMasq":      !m.noIPMasq,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": m.ipamDir(),
				"ranges":  ranges,
				"routes":  routes,
			},
		},
	}
	if withPorts {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	conf := map[string]any{"cniVersion": cniVersion, "name": m.network, "plugins": plugins}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("encoding CNI config: %w", err)
	}
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("CNI config: %w", err)
	}
	return l, nil
}

// portMappingArgs validates ports and turns them into portmap's runtimeConfig entries.
func portMappingArgs(ports []PortMapping) ([]map[string]any, error) {
	var out []map[string]any
	for i, p := range ports {
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		switch {
		case p.HostPort < 1 || p.HostPort > 65535:
			return nil, fmt.Errorf("port mapping %d: hostPort %d out of range 1-65535: %w", i, p.HostPort, api.ErrInvalidArgument)
		case p.ContainerPort < 1 || p.ContainerPort > 65535:
			return nil, fmt.Errorf("port mapping %d: containerPort %d out of range 1-65535: %w", i, p.ContainerPort, api.ErrInvalidArgument)
		case proto != "tcp" && proto != "udp" && proto != "sctp":
			return nil, fmt.Errorf("port mapping %d: protocol %q is not TCP, UDP or SCTP: %w", i, p.Protocol, api.ErrInvalidArgument)
		case p.HostIP != "" && net.ParseIP(p.HostIP) == nil:
			return nil, fmt.Errorf("port mapping %d: hostIP %q is not an IP address: %w", i, p.HostIP, api.ErrInvalidArgument)
		}
		e := map[string]any{"hostPort": p.HostPort, "containerPort": p.ContainerPort, "protocol": proto}
		if p.HostIP != "" {
			e["hostIP"] = p.HostIP
		}
		out = append(out, e)
	}
	return out, nil
}

func (m *Manager) cni() *libcni.CNIConfig {
	var ex invoke.Exec
	if m.trace != nil {
		ex = tracingExec{trace: m.trace, Exec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}}
	}
	return libcni.NewCNIConfigWithCacheDir(m.binDirs, m.cacheDir(), ex)
}

// tracingExec reports how long each plugin execution took, as "cni-add:bridge" etc.
type tracingExec struct {
	invoke.Exec
	trace func(phase string, d time.Duration)
}

func (t tracingExec) ExecPlugin(ctx context.Context, path string, stdin []byte, environ []string) ([]byte, error) {
	cmd := "exec"
	for _, e := range environ {
		if v, ok := strings.CutPrefix(e, "CNI_COMMAND="); ok {
			cmd = strings.ToLower(v)
		}
	}
	start := time.Now()
	out, err := t.Exec.ExecPlugin(ctx, path, stdin, environ)
	t.trace("cni-"+cmd+":"+filepath.Base(path), time.Since(start))
	return out, err
}

func runtimeConf(uid, netns string, capPorts []map[string]any) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: uid, NetNS: netns, IfName: PodInterface}
	if len(capPorts) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": capPorts}
	}
	return rt
}

// cniResult is the part of a CNI result a Sandbox records.
type cniResult struct{ *types100.Result }

func (m *Manager) cniAdd(ctx context.Context, conf *confList, uid, netns string, capPorts []map[string]any) (cniResult, error) {
	r, err := m.cni().AddNetworkList(ctx, conf, runtimeConf(uid, netns, capPorts))
	if err != nil {
		return cniResult{}, fmt.Errorf("CNI network %q: %w", conf.Name, err)
	}
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return cniResult{}, fmt.Errorf("CNI network %q: reading the result: %w", conf.Name, err)
	}
	return cniResult{res}, nil
}

// fill copies the pod's first IPv4 and IPv6 address on its interface, their gateways and
// the host end of the veth into sb.
func (r cniResult) fill(sb *Sandbox, bridge string) {
	for _, ipc := range r.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(r.Interfaces) || r.Interfaces[i].Sandbox == "" {
				continue
			}
		}
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			if sb.IPv4 == nil {
				sb.IPv4, sb.Gateway4 = ip4, ipc.Gateway.To4()
			}
		} else if sb.IPv6 == nil {
			sb.IPv6, sb.Gateway6 = ipc.Address.IP, ipc.Gateway
		}
	}
	for _, i := range r.Interfaces {
		if i.Sandbox == "" && i.Name != bridge && i.Name != "lo" {
			sb.HostVeth = i.Name
			break
		}
	}
}

// cniDel runs DEL for the attachment of uid on network. It prefers the configuration and
// runtime arguments cached at ADD (so a changed node config still removes exactly what
// was added); without a cache entry it uses the current config and capPorts. Plugins
// whose binary is missing cannot have added anything; if DEL fails because of one, DEL
// is retried without them, so a broken plugin dir does not strand a lease.
func (m *Manager) cniDel(ctx context.Context, network, uid, netns string, capPorts []map[string]any) error {
	c := m.cni()
	conf, err := m.confList(len(capPorts) > 0)
	if err != nil {
		return err
	}
	conf.Name = network
	rt := runtimeConf(uid, netns, capPorts)
	if b, cached, err := c.GetNetworkListCachedConfig(conf, rt); err == nil && b != nil {
		if l, err := libcni.ConfListFromBytes(b); err == nil {
			conf = l
			rt.CapabilityArgs, rt.Args = cached.CapabilityArgs, cached.Args
		}
	}
	err = c.DelNetworkList(ctx, conf, rt)
	if err == nil {
		return nil
	}
	present := *conf
	present.Plugins = nil
	for _, p := range conf.Plugins {
		if _, ferr := invoke.FindInPath(p.Network.Type, m.binDirs); ferr == nil {
			present.Plugins = append(present.Plugins, p)
		}
	}
	if len(present.Plugins) == len(conf.Plugins) {
		return fmt.Errorf("CNI network %q: %w", conf.Name, err)
	}
	if err2 := c.DelNetworkList(ctx, &present, rt); err2 != nil {
		return fmt.Errorf("CNI network %q: %w", conf.Name, errors.Join(err, err2))
	}
	return nil
}

func (m *Manager) cacheFile(network, uid string) string {
	return filepath.Join(m.cacheDir(), "results", network+"-"+uid+"-"+PodInterface)
}

// cachedUIDs returns the container IDs of the CNI cache entries in the data dir.
func (m *Manager) cachedUIDs() []string {
	dir := filepath.Join(m.cacheDir(), "results")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var uids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var c struct {
			ContainerID string `json:"containerId"`
		}
		if json.Unmarshal(b, &c) == nil && validUID(c.ContainerID) == nil {
			uids = append(uids, c.ContainerID)
		}
	}
	return uids
}
