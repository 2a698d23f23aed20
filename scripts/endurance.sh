#!/usr/bin/env bash
# The full endurance run (docs/faults.md): 10,000 NVMe/TCP connect/disconnect
# cycles and 1,000 DOCA function create/plug/unplug/destroy cycles against one
# nvemu-tgt, asserting open fds, threads and RSS flat (RSS growth < 5 % after
# a warm-up). `make test` runs a shorter tests/system/test_endurance.py.
#   scripts/endurance.sh [BUILD_DIR]      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
export NVEMU_BIN_DIR=${NVEMU_BIN_DIR:-$PWD/$build/apps}
export NVEMU_ENDURANCE_TCP=${NVEMU_ENDURANCE_TCP:-10000}
export NVEMU_ENDURANCE_DOCA=${NVEMU_ENDURANCE_DOCA:-1000}
exec python3 tests/system/test_endurance.py
