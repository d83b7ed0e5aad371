#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (default 60), starting from the
# committed seeds in fuzz/corpus/<target>/seed-* plus what earlier runs found. Prints one
# line per target: runs, coverage, corpus size; a crash stops with the reproducer path.
#   make fuzz [FUZZ_SECONDS=600]   scripts/fuzz.sh --ci (CI: FUZZ_SECONDS=10, skips with a
#   message when no nightly toolchain or cargo-fuzz can be had)
set -euo pipefail
cd "$(dirname "$0")/.."
ci=0
[ "${1:-}" = "--ci" ] && ci=1
seconds="${FUZZ_SECONDS:-$([ $ci = 1 ] && echo 10 || echo 60)}"

skip() {
  if [ $ci = 1 ]; then
    echo "fuzz: SKIPPED: $*"
    exit 0
  fi
  echo "fuzz: $*" >&2
  exit 1
}

status=0
bash scripts/setup.sh fuzz || status=$?
[ $status = 3 ] && skip "nightly toolchain or cargo-fuzz unavailable (see above)"
[ $status = 0 ] || exit $status

targets=$(cargo +nightly fuzz list --fuzz-dir fuzz)
# CI builds with 16 codegen units (cargo-fuzz's own advice for faster builds at some cost in
# execs/s; its default of 1 makes every crate, regorus included, a single-threaded compile)
# and runs as many targets at once as there are cores (each libFuzzer run is one thread).
# `run` must get the same build flags as `build`, or it rebuilds.
build_flags=(-O)
jobs=1
if [ $ci = 1 ]; then
  build_flags+=(--codegen-units 16)
  jobs=$(nproc 2>/dev/null || echo 1)
fi
# Build all targets first (one compile), then run each.
cargo +nightly fuzz build --fuzz-dir fuzz "${build_flags[@]}" >/dev/null 2>&1 ||
  cargo +nightly fuzz build --fuzz-dir fuzz "${build_flags[@]}"
mkdir -p fuzz/logs

# One target: its log in fuzz/logs/<t>.log, its summary line in fuzz/logs/<t>.summary.
run_target() {
  local t=$1 log="fuzz/logs/$1.log"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  rm -f "fuzz/logs/$t.summary"
  cargo +nightly fuzz run --fuzz-dir fuzz "${build_flags[@]}" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || return 1
  local runs cov corpus
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%-22s %10s execs  cov %6s  corpus %5s  (%ss)\n' "$t" "$runs" "$cov" "$corpus" "$seconds" \
    >"fuzz/logs/$t.summary"
}

declare -A pid_of
failed=()
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$t" &
  pid_of[$t]=$!
done
for t in $targets; do
  wait "${pid_of[$t]}" || failed+=("$t")
done
for t in "${failed[@]}"; do
  log="fuzz/logs/$t.log"
  grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY|Failing input" "$log" | cut -c1-400 | head -30
  echo "fuzz: $t FAILED (reproducer in fuzz/artifacts/$t/; log $log)"
done
[ ${#failed[@]} = 0 ] || exit 1
for t in $targets; do printf 'fuzz: %s' "$(cat "fuzz/logs/$t.summary")"; echo; done
