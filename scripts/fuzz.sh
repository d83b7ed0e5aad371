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
# Build all targets first (one compile), then run each.
cargo +nightly fuzz build --fuzz-dir fuzz -O >/dev/null 2>&1 || cargo +nightly fuzz build --fuzz-dir fuzz -O
summary=()
for t in $targets; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/logs
  log="fuzz/logs/$t.log"
  if ! cargo +nightly fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -timeout=10 -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY|Failing input" "$log" | cut -c1-400 | head -30
    echo "fuzz: $t FAILED (reproducer in fuzz/artifacts/$t/; log $log)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-22s %10s execs  cov %6s  corpus %5s  (%ss)' "$t" "$runs" "$cov" "$corpus" "$seconds")")
done
printf 'fuzz: %s\n' "${summary[@]}"
