#!/usr/bin/env bash
# `make run`: serves envoy-configs/demo.yaml in the real Envoy from .venv, with the freshly
# built filters, and shows what to curl. Ctrl-C stops Envoy (it is this script's child in
# the same process group, and the trap makes sure).
#
# The demo listens on loopback only: LISTEN (default 127.0.0.1; `make run LISTEN=0.0.0.0` to
# serve other machines) replaces the config's 0.0.0.0 listener addresses (the config binds
# 0.0.0.0 for docker-compose, where the container's port mapping decides). The admin stays on
# 127.0.0.1. `scripts/run-demo.sh --print-config` prints the config it would serve and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY="${ENVOY_BIN:-.venv/bin/envoy}"
LISTEN="${LISTEN:-127.0.0.1}"
if ! [[ "$LISTEN" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
  echo "LISTEN=$LISTEN: expected an IPv4 address such as 127.0.0.1 or 0.0.0.0" >&2
  exit 2
fi
# NATIVE=1: the same filters as Envoy dynamic modules (dist/lib<name>.so), config
# envoy-configs/native/demo.yaml (generated from demo.yaml by `xtask native-configs`).
CONFIG=envoy-configs/demo.yaml
if [ "${NATIVE:-0}" = 1 ]; then
  CONFIG=envoy-configs/native/demo.yaml
fi
config="$(sed "s/address: 0\.0\.0\.0,/address: $LISTEN,/" "$CONFIG")"
if [ "${1:-}" = "--print-config" ]; then
  printf '%s\n' "$config"
  exit 0
fi
echo "serving $CONFIG on $LISTEN"
dir="$(mktemp -d)"
printf '%s\n' "$config" > "$dir/demo.yaml"
"$ENVOY" -c "$dir/demo.yaml" --concurrency 2 --disable-hot-restart --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"; exit 0' INT TERM EXIT
for _ in $(seq 1 100); do
  curl -sf -o /dev/null http://127.0.0.1:9901/ready && break
  kill -0 $pid 2>/dev/null || { echo "Envoy exited; see its log above"; exit 1; }
  sleep 0.1
done
host="$LISTEN"
[ "$host" = "0.0.0.0" ] && host=localhost
cat <<MSG

Envoy is serving the filters on http://$host:10000 (listening on $LISTEN; admin: http://127.0.0.1:9901).
The upstream echoes the request headers it received, so you can see each filter act:

  # header-rules: strips x-internal-user, adds x-client-ip / x-original-path / x-tags /
  # x-request-source upstream, sets cache-control and x-echo-request-id on the response
  curl -i http://$host:10000/api/hello -H 'x-internal-user: mallory' -H 'x-request-id: demo-1'

  # template: /admin is denied with a JSON 403 (so are //admin, /%61dmin, /ADMIN: the paths
  # are normalised before the filters see them)
  curl -i http://$host:10000/admin/users

  # jwt-auth: /secure needs a valid JWT (401 without); mint one with PyJWT from the test keys
  curl -i http://$host:10000/secure/data
  TOKEN=\$(.venv/bin/python integration/peer/mint_tokens.py https://issuer.example.com api.example.com \\
          | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["ES256"])')
  curl -i http://$host:10000/secure/data -H "authorization: Bearer \$TOKEN"

  # the filters' metrics, and the same as Prometheus labels (reason, rule)
  curl -s http://127.0.0.1:9901/stats | grep wasmcustom
  curl -s http://127.0.0.1:9901/stats/prometheus | grep wasmcustom

Ctrl-C stops Envoy.
MSG
wait $pid
