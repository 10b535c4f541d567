package executor

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"

	"gantry.io/gantry/api"
	"gantry.io/gantry/executor/sandbox"
)

// cfsPeriod is the CFS period used for CPU limits, Kubernetes' 100 ms.
const cfsPeriod = 100000

// cgroupPath is the cgroup (relative to each controller's root, cgroupfs layout) of one
// container run: /gantry/pod<uid>/<container id>.
func cgroupPath(uid, id string) string { return path.Join("/gantry", "pod"+uid, id) }

// specInput is everything a container's OCI spec is computed from.
type specInput struct {
	pod     *corev1.Pod
	c       *corev1.Container
	id      string
	img     containerd.Image
	env     []string
	sb      *sandbox.Sandbox
	volumes map[string]string // volume name → host path
}

// specOpts turns a corev1.Container into OCI spec options: the image config, then
// command/args/workingDir/env, the pod's network namespace and hostname, the per-pod
// hosts/resolv.conf/hostname files and volume mounts, cgroup limits and the
// securityContext subset gantry supports.
func specOpts(in specInput) ([]oci.SpecOpts, error) {
	c := in.c
	opts := []oci.SpecOpts{oci.WithDefaultSpec(), oci.WithDefaultUnixDevices}
	switch {
	case len(c.Command) > 0:
		opts = append(opts, oci.WithImageConfig(in.img), withArgs(append(append([]string{}, c.Command...), c.Args...)))
	case len(c.Args) > 0:
		opts = append(opts, oci.WithImageConfigArgs(in.img, c.Args))
	default:
		opts = append(opts, oci.WithImageConfig(in.img))
	}
	if c.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(c.WorkingDir))
	}
	if len(in.env) > 0 {
		opts = append(opts, oci.WithEnv(in.env))
	}
	opts = append(opts, oci.WithHostname(in.pod.Name))
	if in.sb != nil {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: in.sb.NetNSPath}))
	}
	mounts, err := mountsFor(in)
	if err != nil {
		return nil, err
	}
	opts = append(opts, oci.WithMounts(mounts))
	opts = append(opts, oci.WithCgroup(cgroupPath(string(in.pod.UID), in.id)))
	opts = append(opts, resourceOpts(c)...)
	sec, err := securityOpts(in.pod, c)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	return opts, nil
}

func withArgs(args []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.Args = args
		return nil
	}
}

func mountsFor(in specInput) ([]specs.Mount, error) {
	var ms []specs.Mount
	bind := func(src, dst string, ro bool) {
		o := []string{"rbind", "rprivate"}
		if ro {
			o = append(o, "ro")
		} else {
			o = append(o, "rw")
		}
		ms = append(ms, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: o})
	}
	if in.sb != nil {
		if in.sb.HostsPath != "" {
			bind(in.sb.HostsPath, "/etc/hosts", false)
		}
		if in.sb.ResolvConfPath != "" {
			bind(in.sb.ResolvConfPath, "/etc/resolv.conf", false)
		}
		if in.sb.HostnamePath != "" {
			bind(in.sb.HostnamePath, "/etc/hostname", false)
		}
	}
	for _, vm := range in.c.VolumeMounts {
		src, ok := in.volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("container %q mounts volume %q that the pod does not define: %w", in.c.Name, vm.Name, api.ErrInvalidArgument)
		}
		if vm.SubPath != "" {
			sub := filepath.Clean("/" + vm.SubPath)
			if sub == "/" || strings.Contains(vm.SubPath, "..") {
				return nil, fmt.Errorf("container %q volume %q: subPath %q: %w", in.c.Name, vm.Name, vm.SubPath, api.ErrInvalidArgument)
			}
			src = filepath.Join(src, sub)
		}
		if !path.IsAbs(vm.MountPath) {
			return nil, fmt.Errorf("container %q volume %q: mountPath %q is not absolute: %w", in.c.Name, vm.Name, vm.MountPath, api.ErrInvalidArgument)
		}
		bind(src, vm.MountPath, vm.ReadOnly)
	}
	return ms, nil
}

// resourceOpts maps requests and limits to cgroup settings: cpu shares from the cpu
// request (the limit when no request is given; 2 shares when neither, as for
// Kubernetes' BestEffort pods), a CFS quota from the cpu limit, and the memory limit.
func resourceOpts(c *corev1.Container) []oci.SpecOpts {
	var opts []oci.SpecOpts
	req, hasReq := c.Resources.Requests[corev1.ResourceCPU]
	lim, hasLim := c.Resources.Limits[corev1.ResourceCPU]
	shares := uint64(2)
	if hasReq {
		shares = milliToShares(req.MilliValue())
	} else if hasLim {
		shares = milliToShares(lim.MilliValue())
	}
	opts = append(opts, oci.WithCPUShares(shares))
	if hasLim {
		quota := lim.MilliValue() * cfsPeriod / 1000
		if quota < 1000 {
			quota = 1000
		}
		opts = append(opts, oci.WithCPUCFS(quota, cfsPeriod))
	}
	if mem, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && mem.Value() > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(mem.Value())))
	}
	return opts
}

func milliToShares(m int64) uint64 {
	s := m * 1024 / 1000
	if s < 2 {
		s = 2
	}
	return uint64(s)
}

// securityOpts applies the supported securityContext subset: runAsUser/runAsGroup
// (container over pod), readOnlyRootFilesystem, capabilities add/drop ("ALL" allowed in
// drop), privileged only when set, and allowPrivilegeEscalation: false → no_new_privs.
func securityOpts(pod *corev1.Pod, c *corev1.Container) ([]oci.SpecOpts, error) {
	var opts []oci.SpecOpts
	var uid, gid *int64
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid = psc.RunAsUser, psc.RunAsGroup
	}
	sc := c.SecurityContext
	if sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	switch {
	case uid != nil && gid != nil:
		opts = append(opts, oci.WithUIDGID(uint32(*uid), uint32(*gid)))
	case uid != nil:
		opts = append(opts, oci.WithUserID(uint32(*uid)))
	case gid != nil:
		opts = append(opts, withGID(uint32(*gid)))
	}
	if sc == nil {
		return opts, nil
	}
	if sc.Privileged != nil && *sc.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if caps := sc.Capabilities; caps != nil {
		var drop []string
		dropAll := false
		for _, d := range caps.Drop {
			if strings.EqualFold(string(d), "ALL") {
				dropAll = true
				continue
			}
			drop = append(drop, capName(d))
		}
		if dropAll {
			opts = append(opts, oci.WithCapabilities(nil))
		} else if len(drop) > 0 {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
		var add []string
		for _, a := range caps.Add {
			add = append(add, capName(a))
		}
		if len(add) > 0 {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			return nil, fmt.Errorf("container %q: privileged with allowPrivilegeEscalation: false: %w", c.Name, api.ErrInvalidArgument)
		}
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	return opts, nil
}

func capName(c corev1.Capability) string {
	s := strings.ToUpper(string(c))
	if !strings.HasPrefix(s, "CAP_") {
		s = "CAP_" + s
	}
	return s
}

func withGID(gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		s.Process.User.GID = gid
		return nil
	}
}
