#!/usr/bin/env bash
# Installs, with apt-get, the host packages gantry's tests and `gantry up` need, and only
# those that are missing. Idempotent. Called by `make deps` and `make test`.
set -euo pipefail

packages=(
  containerd                 # the container runtime gantry drives
  runc                       # the OCI runtime containerd uses
  containernetworking-plugins # CNI: bridge, host-local, loopback, portmap in /usr/lib/cni
  git                        # sync tests serve repositories with git daemon / http-backend
  nftables                   # service VIPs
  iproute2                   # ip netns, used by network tests
  docker-registry            # a real OCI registry on 127.0.0.1 for pull tests
  busybox-static             # a tiny static toolbox for probes and test containers
  ca-certificates
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: must run as root to install packages (missing ones: run 'sudo $0')" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-host: all ${#packages[@]} packages present"
else
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -qq; then
    echo "setup-host: apt-get update failed; check the machine's package sources" >&2
    exit 1
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/gantry-setup-host.log 2>&1; then
    echo "setup-host: apt-get install ${missing[*]} failed; last lines of /tmp/gantry-setup-host.log:" >&2
    tail -n 20 /tmp/gantry-setup-host.log >&2
    exit 1
  fi
fi

# The Debian packages start a system containerd and registry when systemd runs them. gantry's
# tests start their own on their own sockets, so nothing else is needed here. IP forwarding is
# needed for pod traffic through the CNI bridge.
sysctl -qw net.ipv4.ip_forward=1 2>/dev/null || true
sysctl -qw net.ipv6.conf.all.forwarding=1 2>/dev/null || true
modprobe br_netfilter 2>/dev/null || true
for tool in containerd runc git nft ip; do
  command -v "$tool" >/dev/null || { echo "setup-host: $tool not on PATH after install" >&2; exit 1; }
done
[ -x /usr/lib/cni/bridge ] || { echo "setup-host: /usr/lib/cni/bridge missing" >&2; exit 1; }
