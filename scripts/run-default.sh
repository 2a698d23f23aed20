#!/usr/bin/env bash
# `make run`: starts nvemu-tgt with a default configuration (a 512 MiB
# malloc namespace reachable over NVMe/TCP and as a PCIe function over
# vfio-user) and prints how to reach it. Ctrl-C stops it.
set -euo pipefail
build=${1:-build}
bin="$build/apps"
sock=${NVEMU_RPC_SOCKET:-/var/tmp/spdk.sock}
port=${NVEMU_TCP_PORT:-4420}
vfu_dir=${NVEMU_VFIO_USER_DIR:-/var/tmp/nvemu-vfio-user/cnode1}
nqn=nqn.2016-06.io.spdk:cnode1
rpc() { "$bin/nvemu-rpc" -s "$sock" "$@" >/dev/null; }

mkdir -p "$(dirname "$vfu_dir")"
"$bin/nvemu-tgt" -m 0x3 --main-core 0 --wait-for-rpc -r "$sock" &
tgt=$!
trap 'kill -INT $tgt 2>/dev/null; wait $tgt 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do
  "$bin/nvemu-rpc" -s "$sock" spdk_get_version >/dev/null 2>&1 && break
  kill -0 $tgt 2>/dev/null || { echo "nvemu-tgt failed to start (see above)" >&2; exit 1; }
  sleep 0.05
done

rpc framework_start_init
rpc bdev_malloc_create -b Malloc0 512 512
rpc nvmf_create_subsystem $nqn -a -s SPDK00000000000001 -d "nvemu Controller"
rpc nvmf_subsystem_add_ns $nqn Malloc0
rpc nvmf_create_transport -t TCP
rpc nvmf_subsystem_add_listener $nqn -t TCP -a 127.0.0.1 -s "$port"
rpc nvmf_subsystem_add_listener nqn.2014-08.org.nvmexpress.discovery -t TCP -a 127.0.0.1 -s "$port"
rpc nvmf_create_transport -t VFIOUSER
rpc nvmf_subsystem_add_listener $nqn -t VFIOUSER -a "$vfu_dir" -s 0

cat <<INFO

nvemu is running (pid $tgt). Namespace 1 of $nqn is Malloc0 (512 MiB, 512 B blocks).

  JSON-RPC:   $bin/nvemu-rpc -s $sock nvmf_get_subsystems   (SPDK's rpc.py works too)
  NVMe/TCP:   nvme discover -t tcp -a 127.0.0.1 -s $port
              nvme connect  -t tcp -a 127.0.0.1 -s $port -n $nqn
  vfio-user:  $vfu_dir/cntrl, e.g. for QEMU >= 10.1:
              -device '{"driver":"vfio-user-pci","socket":{"path":"$vfu_dir/cntrl","type":"unix"}}'
              (guest RAM must be shareable: -object memory-backend-memfd,id=mem,size=1G,share=on
               -machine q35,memory-backend=mem)

Ctrl-C stops it.
INFO
wait $tgt
