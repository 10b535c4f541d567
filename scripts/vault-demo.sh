#!/usr/bin/env bash
# DEMO ONLY. Runs a throwaway HashiCorp Vault dev server for `make run` and then the
# command after "--" (gantry up) in the foreground; when the command ends (Ctrl-C
# included) the Vault is stopped.
#
#   scripts/vault-demo.sh RUNDIR -- COMMAND [ARGS...]
#
# The dev server (the binary `make vault` builds into .cache/vault/vault, or $VAULT)
# listens on 127.0.0.1:8200 (and 8201, its cluster port) — the address
# manifests-example/secrets.yaml names — keeps everything in memory, is unsealed and
# has a random root token. It is seeded with DEMO values for the ExternalSecret
# web-secrets (secret/web: api-token, db-password), and the token is written where
# gantry finds the SecretStore's tokenSecretRef {name: vault-token, key: token} in
# namespace default: RUNDIR/credentials/default/vault-token/token (0600), the
# default --vault-credentials-dir of `gantry up --data-dir RUNDIR`.
#
# Never use this for real secrets: a dev server is in memory, unsealed, over plain
# HTTP, with a root token. docs/SECRETS.md shows how to point gantry at a real Vault.
set -euo pipefail

if [ $# -lt 2 ] || [ "$2" != "--" ]; then
  echo "usage: $0 RUNDIR -- COMMAND [ARGS...]" >&2
  exit 2
fi
rundir=$1
shift 2

root=$(cd "$(dirname "$0")/.." && pwd)
vault=${VAULT:-$root/.cache/vault/vault}
listen=127.0.0.1:8200
export VAULT_ADDR=http://$listen

if [ ! -x "$vault" ]; then
  echo "vault-demo: $vault not found: run 'make vault' first" >&2
  exit 1
fi
mkdir -p "$rundir"
pidfile=$rundir/vault-demo.pid
logfile=$rundir/vault-demo.log

# A demo Vault left by an earlier run that was killed (no trap ran): stop it.
if [ -s "$pidfile" ]; then
  old=$(cat "$pidfile")
  if kill -0 "$old" 2>/dev/null && grep -qa 'server' "/proc/$old/cmdline" 2>/dev/null &&
     [ "$(readlink "/proc/$old/exe" 2>/dev/null)" = "$(readlink -f "$vault")" ]; then
    echo "vault-demo: stopping the demo Vault an earlier run left (pid $old)"
    kill "$old" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
fi

if (exec 3<>/dev/tcp/127.0.0.1/8200) 2>/dev/null; then
  echo "vault-demo: something already listens on $listen; stop it (the demo Vault needs this address, see manifests-example/secrets.yaml)" >&2
  exit 1
fi

token=demo-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
vault_pid=
cleanup() {
  if [ -n "$vault_pid" ] && kill -0 "$vault_pid" 2>/dev/null; then
    echo "vault-demo: stopping the DEMO Vault (pid $vault_pid)"
    kill "$vault_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$vault_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$vault_pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Its own session: a Ctrl-C at the terminal reaches gantry, not Vault, which the trap
# stops after gantry has.
setsid "$vault" server -dev -dev-root-token-id="$token" -dev-listen-address="$listen" \
  -dev-no-store-token >"$logfile" 2>&1 </dev/null &
vault_pid=$!
echo "$vault_pid" >"$pidfile"

ready=
for _ in $(seq 100); do
  if ! kill -0 "$vault_pid" 2>/dev/null; then
    echo "vault-demo: the Vault dev server exited at start; its log ($logfile):" >&2
    tail -n 20 "$logfile" >&2
    exit 1
  fi
  if VAULT_TOKEN=$token "$vault" status >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "vault-demo: the Vault dev server did not answer on $listen within 10s; its log: $logfile" >&2
  exit 1
fi

# The values web-secrets reads (manifests-example/secrets.yaml). Fixed, so a restart
# of make run does not change their hash and roll web.
VAULT_TOKEN=$token "$vault" kv put -mount=secret web \
  api-token=demo-api-token-not-a-secret db-password=demo-db-password-not-a-secret >/dev/null

creddir=$rundir/credentials/default/vault-token
install -d -m 0700 "$rundir/credentials" "$rundir/credentials/default" "$creddir"
(umask 077; printf '%s\n' "$token" >"$creddir/token")

cat <<EOF
vault-demo: ==================================== DEMO ====================================
vault-demo: a throwaway Vault dev server (in memory, unsealed, plain HTTP) on $VAULT_ADDR
vault-demo: seeded secret/web with DEMO values (api-token, db-password) for web-secrets;
vault-demo: its root token is in $creddir/token (0600), where gantry looks for the
vault-demo: SecretStore's tokenSecretRef vault-token/token. Stopped when gantry stops.
vault-demo: change a value (web rolls within the ExternalSecret's refreshInterval, 1m):
vault-demo:   VAULT_ADDR=$VAULT_ADDR VAULT_TOKEN=\$(cat $creddir/token) \\
vault-demo:     $vault kv patch -mount=secret web api-token=new-demo-value
vault-demo: a real Vault instead: see the README (Secrets) and docs/SECRETS.md
vault-demo: ==============================================================================
EOF

status=0
"$@" || status=$?
exit "$status"
