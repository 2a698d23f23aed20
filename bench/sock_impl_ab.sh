#!/usr/bin/env bash
# Interleaved A/B of nvemu-tgt's two socket implementations over NVMe/TCP
# (sock_set_default_impl posix vs uring): for each round a fresh target per
# impl, target on core 0, initiator on core 1, posix first. Prints each run's
# IOPS and mean latency, then the median of the per-round uring/posix ratios.
#   bench/sock_impl_ab.sh [BUILD_DIR]        default: build
# Environment: ROUNDS (10), QD (1), SIZE (4096), PATTERN (randread),
# SECONDS_PER_RUN (2), SPDK_DIR (use SPDK's perf as the initiator; else
# nvemu-perf). docs/performance.md quotes its results.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$here")/build}
rounds=${ROUNDS:-10} qd=${QD:-1} size=${SIZE:-4096} pattern=${PATTERN:-randread}
secs=${SECONDS_PER_RUN:-2}
nqn=nqn.2016-06.io.spdk:cnode1
work=$(mktemp -d /tmp/nvemu-sock-ab.XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
if [[ -n ${SPDK_DIR:-} ]]; then
  perf=$SPDK_DIR/build/examples/perf
  [[ -x $perf ]] || perf=$SPDK_DIR/build/bin/spdk_nvme_perf
  export LD_LIBRARY_PATH=$SPDK_DIR/build/lib:$SPDK_DIR/build/libvfio-user/usr/local/lib
  grep -q "HugePages_Free: *[1-9]" /proc/meminfo ||
    { echo "SPDK's perf needs hugepages: echo 512 > /proc/sys/vm/nr_hugepages" >&2; exit 1; }
else
  perf=$build/apps/nvemu-perf
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

run_one() {  # impl -> "IOPS LAT_US"
  local sock=$work/rpc.sock rpc
  rm -f "$sock"
  "$build/apps/nvemu-tgt" -m 0x1 -r "$sock" --wait-for-rpc >"$work/tgt-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 250); do [[ -S $sock ]] && break; sleep 0.02; done
  if [[ ! -S $sock ]]; then
    echo "nvemu-tgt did not come up; its log:" >&2
    cat "$work/tgt-$1.log" >&2
    return 1
  fi
  rpc() { "$build/apps/nvemu-rpc" -s "$sock" "$@" >/dev/null; }
  rpc sock_set_default_impl -i "$1"
  rpc framework_start_init
  rpc bdev_malloc_create 512 512 -b Malloc0
  rpc nvmf_create_transport -t TCP
  rpc nvmf_create_subsystem $nqn -a -s SPDK00000000000001
  rpc nvmf_subsystem_add_ns $nqn Malloc0
  rpc nvmf_subsystem_add_listener $nqn -t TCP -a 127.0.0.1 -s "$port"
  "$perf" -q "$qd" -o "$size" -w "$pattern" -t "$secs" -c 0x2 \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$port subnqn:$nqn" 2>&1 |
    awk '/^Total/ {print $3, $5; found=1} END {if (!found) print "nan nan"}'
  kill -INT "$pid"
  wait "$pid" || true
  pid=
}

echo "# $(date -u +%FT%TZ) $(uname -r) $(basename "$perf") QD$qd ${size}B $pattern ${secs}s x $rounds"
echo "round impl IOPS avg_lat_us"
ratios=()
for r in $(seq "$rounds"); do
  read -r p_iops p_lat < <(run_one posix)
  read -r u_iops u_lat < <(run_one uring)
  echo "$r posix $p_iops $p_lat"
  echo "$r uring $u_iops $u_lat"
  ratios+=("$(python3 -c "print($u_iops/$p_iops)" 2>/dev/null || echo nan)")
done
python3 - "${ratios[@]}" <<'PY'
import math, statistics, sys
r = [float(x) for x in sys.argv[1:] if not math.isnan(float(x))]
print(f"uring/posix IOPS: median {statistics.median(r):.3f}, "
      f"min {min(r):.3f}, max {max(r):.3f} over {len(r)} rounds")
PY
