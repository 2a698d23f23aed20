#!/usr/bin/env bash
# One command for nvemu's benchmark matrix (issues #7 and #15); bench/README.md explains it.
#   bench/run.sh [BUILD_DIR]          default BUILD_DIR: build-perf, else build
# Environment: BENCH_SECONDS (10), BENCH_REPS (3), BENCH_CASES (all; e.g.
# "randread-4k-qd1,randread-4k-qd32"; issue #15's chained namespace:
# "chain-tcp-qd32,chain-tcp-randwrite-qd32"; RBD: "rbd-tcp-qd16"), BENCH_TRANSPORTS ("TCP,VFIOUSER"),
# BENCH_EXTRAS (1: memcpy, idle CPU, start-up, 1024 namespaces; 0: skip),
# SPDK_DIR (an SPDK build: its nvmf_tgt is measured too, in the same repetitions),
# BENCH_INITIATORS ("nvemu-perf,spdk-perf" with SPDK_DIR: both against both targets).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-}
if [[ -z $build ]]; then
  if [[ -x $root/build-perf/apps/nvemu-perf ]]; then build=$root/build-perf; else build=$root/build; fi
fi
exec python3 "$here/bench.py" --bin-dir "$build/apps" "${@:2}"
