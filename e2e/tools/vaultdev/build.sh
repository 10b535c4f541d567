#!/usr/bin/env bash
# build.sh OUT — build the Vault dev binary (HashiCorp Vault v1.14.1, MPL-2.0) into OUT.
#
# The build is skipped when OUT exists and OUT.stamp holds the sha256 of this module's
# go.mod, go.sum and main.go plus the Go version: a second run (CI's, or a test's) is
# instant. Concurrent callers (make vault, testenv.StartVault) serialize on OUT.lock, so
# the slow cold build (about 520 MB of module downloads, 5-7 min on 2 cores) runs once.
set -euo pipefail

out=${1:?usage: build.sh OUT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")

exec 9>"$out.lock"
flock 9

stamp() {
	cd "$here"
	{ cat go.mod go.sum main.go; go version; } | sha256sum | cut -d' ' -f1
}
want=$(stamp)
if [[ -x "$out" && -f "$out.stamp" && "$(cat "$out.stamp")" == "$want" ]]; then
	echo "vault: $out is up to date"
	exit 0
fi

echo "vault: building $out (cold builds take several minutes)"
cd "$here"
rm -f "$out.stamp"
# GOWORK=off: this is its own module, never part of a workspace with the root module.
GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "$out.tmp" .
mv -f "$out.tmp" "$out"
echo "$want" >"$out.stamp"
echo "vault: built $out ($(du -h "$out" | cut -f1))"
