#!/usr/bin/env bash
# Installs everything nvemu needs to build, test and run on Debian 12.
# Idempotent: packages already present are skipped, so `make run`/`make test`
# can call it every time at little cost.
set -euo pipefail

BUILD_PKGS=(build-essential cmake ninja-build pkg-config clang clang-format
  libclang-rt-14-dev liburing-dev libisal-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev python3 gnuplot-nox
  librbd-dev librados-dev libssl-dev)
# Host-side tools for the end-to-end tests (a real Linux kernel in QEMU).
# The guest kernel itself is not installed here: tests/e2e/kernel.py fetches
# it with `apt-get download` into the harness cache, leaving /boot alone.
E2E_PKGS=(qemu-system-x86 busybox-static kmod socat
  nvme-cli fio cpio xz-utils zstd iproute2 procps)
# A single-node Ceph cluster for the rbd bdev's system test and benchmark
# (tests/system/ceph_cluster.py).
TEST_PKGS=(ceph-mon ceph-mgr ceph-osd ceph-common)

# Packaging and service (make deb, test_deb_service, test_metrics): Debian's
# build tooling, man pages from --help, the unit checker, the Prometheus
# text parser the metrics test scrapes with.
SERVICE_PKGS=(debhelper dpkg-dev fakeroot lintian help2man systemd
  python3-prometheus-client)

want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${SERVICE_PKGS[@]}")
if [[ "${NVEMU_SKIP_E2E_DEPS:-0}" != 1 ]]; then
  want+=("${E2E_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
