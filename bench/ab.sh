#!/usr/bin/env bash
# Interleaved A/B of two nvemu-tgt variants: two builds, or one build's two
# socket implementations. Each round starts a fresh target per variant (A
# first), target on core 0 and initiator on core 1, and runs one job. Prints
# each run's IOPS and mean latency, then the median of the per-round B/A
# IOPS ratios. docs/performance.md quotes its results.
#   bench/ab.sh A B        each BUILD_DIR[:posix|uring], e.g. build-old build
#                          or build:posix build:uring
# Environment: TRANSPORT (tcp; or vfio-user), ROUNDS (10), QD (1),
# SIZE (4096), PATTERN (randread), SECONDS_PER_RUN (2), SPDK_DIR (use SPDK's
# perf as the initiator; else nvemu-perf of build A).
set -euo pipefail
[[ $# -eq 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
transport=${TRANSPORT:-tcp}
case $transport in
  tcp | vfio-user) ;;
  *) echo "TRANSPORT must be tcp or vfio-user, not '$transport'" >&2; exit 2 ;;
esac
rounds=${ROUNDS:-10} qd=${QD:-1} size=${SIZE:-4096} pattern=${PATTERN:-randread}
secs=${SECONDS_PER_RUN:-2}
nqn=nqn.2016-06.io.spdk:cnode1
variants=("$@")
for v in "${variants[@]}"; do
  [[ -x ${v%%:*}/apps/nvemu-tgt ]] || { echo "no ${v%%:*}/apps/nvemu-tgt: build it first" >&2; exit 2; }
done
work=$(mktemp -d /tmp/nvemu-ab.XXXXXX)
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
  perf=${variants[0]%%:*}/apps/nvemu-perf
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

run_one() {  # variant log-name -> "IOPS LAT_US"
  local build=${1%%:*} impl= sock=$work/rpc.sock vfu=$work/vfu trid
  [[ $1 == *:* ]] && impl=${1##*:}
  rm -rf "$sock" "$vfu"
  "$build/apps/nvemu-tgt" -m 0x1 -r "$sock" --wait-for-rpc >"$work/tgt-$2.log" 2>&1 &
  pid=$!
  for _ in $(seq 250); do [[ -S $sock ]] && break; sleep 0.02; done
  if [[ ! -S $sock ]]; then
    echo "nvemu-tgt did not come up; its log:" >&2
    cat "$work/tgt-$2.log" >&2
    return 1
  fi
  rpc() { "$build/apps/nvemu-rpc" -s "$sock" "$@" >/dev/null; }
  [[ -n $impl ]] && rpc sock_set_default_impl -i "$impl"
  rpc framework_start_init
  rpc bdev_malloc_create 512 512 -b Malloc0
  rpc nvmf_create_subsystem $nqn -a -s SPDK00000000000001
  rpc nvmf_subsystem_add_ns $nqn Malloc0
  if [[ $transport == tcp ]]; then
    rpc nvmf_create_transport -t TCP
    rpc nvmf_subsystem_add_listener $nqn -t TCP -a 127.0.0.1 -s "$port"
    trid="trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$port subnqn:$nqn"
  else
    mkdir -p "$vfu"
    rpc nvmf_create_transport -t VFIOUSER -q 256  # QD128 needs 129 SQ entries
    rpc nvmf_subsystem_add_listener $nqn -t VFIOUSER -a "$vfu" -s 0
    trid="trtype:VFIOUSER traddr:$vfu subnqn:$nqn"
  fi
  "$perf" -q "$qd" -o "$size" -w "$pattern" -t "$secs" -c 0x2 -r "$trid" 2>&1 |
    awk '/^Total/ {print $3, $5; found=1} END {if (!found) print "nan nan"}'
  kill -INT "$pid"
  wait "$pid" || true
  pid=
}

echo "# $(date -u +%FT%TZ) $(uname -r) $(basename "$perf") $transport QD$qd ${size}B $pattern" \
  "${secs}s x $rounds: A=${variants[0]} B=${variants[1]}"
echo "round variant IOPS avg_lat_us"
ratios=()
for r in $(seq "$rounds"); do
  # $(...) waits for the whole run, the target's exit included, so no two
  # targets ever overlap (a process substitution would not).
  read -r a_iops a_lat <<<"$(run_one "${variants[0]}" A)"
  read -r b_iops b_lat <<<"$(run_one "${variants[1]}" B)"
  echo "$r A $a_iops $a_lat"
  echo "$r B $b_iops $b_lat"
  ratios+=("$(python3 -c "print($b_iops/$a_iops)" 2>/dev/null || echo nan)")
done
python3 - "${ratios[@]}" <<'PY'
import math, statistics, sys
r = [float(x) for x in sys.argv[1:] if not math.isnan(float(x))]
print(f"B/A IOPS: median {statistics.median(r):.3f}, "
      f"min {min(r):.3f}, max {max(r):.3f} over {len(r)} rounds")
PY
