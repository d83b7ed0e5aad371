#!/usr/bin/env bash
# `make soak MINUTES=N`: the demo chain (envoy-configs/demo.yaml, on free loopback ports) in
# the real Envoy from .venv under a stream of distinct valid JWTs plus hostile requests, for N
# minutes. Every 30 s it samples Envoy's RSS, its heap (admin /stats
# server.memory_allocated) and each wasm VM's linear memory (the resident part of V8's wasm
# memory reservations in /proc/<pid>/smaps), then prints the slope of each (KiB per minute).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/soak.py --minutes "${MINUTES:-10}"
