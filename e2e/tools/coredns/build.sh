#!/usr/bin/env bash
# build.sh OUT — build CoreDNS v1.15.0 (Apache-2.0) with the plugins of main.go into OUT,
# for gantry's DNS benchmark (netsvc/dnsbench_test.go).
#
# OUT.stamp records a sha256 over this module's go.mod, go.sum and main.go and the Go
# version; when it matches and OUT is executable, nothing is built. Callers running at the
# same time (make coredns, the benchmark building a missing binary) take turns on OUT.lock.
# A cold build downloads about 60 MB of modules and takes 1-3 minutes on 2 cores.
set -euo pipefail

out=${1:?usage: build.sh OUT}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

exec {lock}>"$out.lock"
flock "$lock"

fingerprint() {
	(cd "$src" && cat go.mod go.sum main.go && go version) | sha256sum | cut -d' ' -f1
}
want=$(fingerprint)
if [[ -x "$out" && "$(cat "$out.stamp" 2>/dev/null)" == "$want" ]]; then
	echo "coredns: $out is up to date"
	exit 0
fi

echo "coredns: building $out"
rm -f "$out.stamp"
# Its own module: never resolved through a workspace with the root module.
(cd "$src" && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$out.new" .)
mv -f "$out.new" "$out"
printf '%s\n' "$want" >"$out.stamp"
echo "coredns: built $out ($("$out" -version | head -1))"
