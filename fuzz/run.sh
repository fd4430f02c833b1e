#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20) from its seed corpus; fails on the
# first crash, leaving the input in fuzz/artifacts/<target>/. Prints executions/second.
# Uses the machine's nightly toolchain, or stable with RUSTC_BOOTSTRAP=1 if there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
cargo run --quiet --features lab --example fuzz_seeds
"${fuzz[@]}" build
for target in $("${fuzz[@]}" list); do
  log=$(mktemp)
  if ! "${fuzz[@]}" run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "FUZZ FAILURE in $target (input saved under fuzz/artifacts/$target/)"
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  printf '%-24s %8s runs in %ss (%s/s)\n' "$target" "$runs" "$seconds" "$((runs / seconds))"
  rm -f "$log"
done
