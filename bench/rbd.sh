#!/usr/bin/env bash
# nvemu's rbd bdev against librbd on a single-node Ceph test cluster (root;
# ceph-mon ceph-mgr ceph-osd ceph-common). bench/rbd_bench.py explains it.
#   bench/rbd.sh [BUILD_DIR]       BENCH_SECONDS (10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$here")/build}
exec python3 "$here/rbd_bench.py" "$build/apps"
