#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each briefly, so a wire
# parser that crashes on garbage fails CI. Longer runs: FUZZ_SECONDS=600.
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
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  echo "run-fuzz: $t for ${seconds}s"
  "$build/tests/$t" -max_total_time="$seconds" -print_final_stats=0 "$corpus" 2>&1 | tail -3
done
