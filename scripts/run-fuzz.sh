#!/usr/bin/env bash
# Builds the libFuzzer targets with clang, replays every input kept in the
# repo (tests/fuzz/corpus/<target>: the campaigns' corpora;
# tests/fuzz/regressions/<target>: inputs that once crashed), then fuzzes
# each target briefly from its corpus, so a wire parser that crashes on
# garbage fails CI. Long campaigns: scripts/fuzz-campaign.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${FUZZ_SECONDS:-20}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNVEMU_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.cpp 2>/dev/null | sed 's/\.cpp$//')
if [[ -z "$targets" ]]; then
  echo "run-fuzz: no fuzz targets"
  exit 0
fi
ninja -C "$build" $targets
for t in $targets; do
  kept=()
  for d in "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"; do
    [[ -d "$d" ]] && kept+=("$d")
  done
  if ((${#kept[@]})); then
    n=$(find "${kept[@]}" -type f | wc -l)
    echo "run-fuzz: $t replays $n kept inputs"
    # -runs=0: execute each input once, mutate nothing.
    "$build/tests/$t" -runs=0 "${kept[@]}" 2>&1 | tail -1
  fi
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  echo "run-fuzz: $t for ${seconds}s"
  # New inputs go to the first directory: the kept corpus stays untouched.
  "$build/tests/$t" -max_total_time="$seconds" -print_final_stats=0 "$corpus" \
    ${kept[@]+"${kept[@]}"} 2>&1 | tail -3
done
