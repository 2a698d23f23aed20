#!/usr/bin/env bash
# Long libFuzzer campaigns: every wire parser's target run to FUZZ_RUNS
# executions (default 10 M), growing from and merged back into the corpus
# kept in the repo (tests/fuzz/corpus/<target>), which `make test` replays.
# Prints one markdown row per target for docs/fuzzing.md.
#
#   scripts/fuzz-campaign.sh                  # every target, 10 M runs each
#   FUZZ_RUNS=1000000 scripts/fuzz-campaign.sh fuzz_tcp_pdu
#   FUZZ_ARGS=-entropic=0 scripts/fuzz-campaign.sh fuzz_jsonrpc_stream
#
# FUZZ_ARGS goes to libFuzzer as is. -entropic=0 (the older power schedule)
# runs fuzz_jsonrpc_stream ~2.5x faster: with ~10 k features, the entropic
# schedule's bookkeeping takes most of each execution.
#
# A crash stops that target's campaign and leaves the input in
# $build/crashes/; turn it into a regression input under
# tests/fuzz/regressions/<target>/ (replayed by make test) and fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz-campaign}
runs=${FUZZ_RUNS:-10000000}
read -r -a extra <<<"${FUZZ_ARGS:-}"

# Optimised, unlike make test's short run: a campaign's cost is executions.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNVEMU_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
if (($#)); then
  targets="$*"
else
  targets=$(cd tests/fuzz && ls fuzz_*.cpp | sed 's/\.cpp$//')
fi
# shellcheck disable=SC2086
ninja -C "$build" $targets >/dev/null

echo "| target | executions | exec/s | wall s | coverage (edges) | features | corpus files (kept) | crashes |"
echo "|---|---|---|---|---|---|---|---|"
for t in $targets; do
  kept=tests/fuzz/corpus/$t
  work=$build/campaign/$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/merged" "$kept" "$build/crashes"
  log=$work/fuzz.log
  start=$(date +%s)
  status=0
  # New inputs go to the first directory; the kept corpus seeds the run.
  "$build/tests/$t" -runs="$runs" -print_final_stats=1 "${extra[@]}" \
    -artifact_prefix="$build/crashes/$t-" "$work/corpus" "$kept" >"$log" 2>&1 || status=$?
  wall=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=0
  if ((status != 0)); then
    crashes=$(ls "$build/crashes/$t-"* 2>/dev/null | wc -l)
    echo "fuzz-campaign: $t stopped with status $status; see $log" >&2
  fi
  # Keep the smallest corpus with the same coverage.
  "$build/tests/$t" -merge=1 "$work/merged" "$kept" "$work/corpus" >>"$log" 2>&1
  rm -rf "$kept"
  mv "$work/merged" "$kept"
  echo "| $t | ${execs:-?} | ${rate:-?} | $wall | ${cov:-?} | ${ft:-?} | $(ls "$kept" | wc -l) | $crashes |"
done
