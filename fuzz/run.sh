#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60) and prints the
# executions per target. Installs cargo-fuzz if missing. Uses the stable toolchain with
# RUSTC_BOOTSTRAP=1 for the sanitizer flags cargo-fuzz passes.
#   bash fuzz/run.sh                 # all targets, 60 s each
#   FUZZ_SECONDS=5 bash fuzz/run.sh  # the CI smoke
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz --version 0.13.2
export RUSTC_BOOTSTRAP=1
total=0
for target in verify_token verify_claims verify_signed_claims verify_header authorization_header auth_layer caller_text query_refusal; do
  mkdir -p "corpus/$target" "seeds/$target"
  log=$(mktemp)
  cargo fuzz run --release "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -dict=dict -max_len=20000 -print_final_stats=1 2>"$log" || { tail -40 "$log"; exit 1; }
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "$target: ${runs:-0} executions in ${seconds} s, no crash"
  total=$((total + ${runs:-0}))
  rm -f "$log"
done
echo "total: $total executions"
