package executor

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// ContainerdConfig returns a containerd configuration file (version 2, understood by
// containerd 1.6 and later) that keeps every piece of state of that daemon apart from a
// system containerd: its own root and state directories, its own gRPC socket (and the
// ttrpc socket next to it), no debug or metrics listener, the opt plugin under root, and
// the CRI plugin disabled (gantry talks to containerd directly, not through CRI).
// overlayfs is the default snapshotter. socket should be short: unix socket paths are
// limited to 107 bytes, and containerd derives longer paths from it.
func ContainerdConfig(root, state, socket string) string {
	q := strconv.Quote
	return fmt.Sprintf(`version = 2
root = %s
state = %s
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
oom_score = 0

[grpc]
  address = %s

[ttrpc]
  address = %s

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %s
  [plugins."io.containerd.service.v1.diff-service"]
    default = ["walking"]
`, q(root), q(state), q(socket), q(socket+".ttrpc"), q(filepath.Join(root, "opt")))
}
