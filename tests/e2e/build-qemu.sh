#!/usr/bin/env bash
# build-qemu.sh - build a QEMU that has the vfio-user client (-device vfio-user-pci)
#
# nvemu serves an emulated PCIe NVMe function over vfio-user; booting a real
# Linux guest against it needs QEMU >= 10.1 (first release with vfio-user-pci).
# Debian 12 ships QEMU 7.2, so we build Debian's own `qemu` source package from
# a newer suite, fetched from the same Debian archive this machine's apt uses.
#
# What it does, in order (each step explained where it is implemented):
#   1. fast path: an existing, verified build -> print its path, exit 0 (< 1 s)
#   2. install build deps + firmware from Debian 12 with the system apt
#   3. private apt state (own sources list / lists / cache) for the newer
#      suites, so the system apt configuration is never touched
#   4. `apt-get source qemu` (version >= 10.1) + meson/pycotap .debs unpacked
#      with dpkg-deb -x (bookworm's meson 1.0 is too old; QEMU wants >= 1.5)
#   5. configure (x86_64-softmmu, TCG, slirp, virtfs), ninja -j2 on the
#      installed targets only, meson install into the cache
#   6. verify: vfio-user-pci listed, kernel boot smoke, memfd backend and
#      vfio-user-pci option syntax accepted; then write the stamp
#
# Output:  ${NVEMU_CACHE:-/var/cache/nvemu}/qemu-vfio-user/bin/qemu-system-x86_64
#          (last line of stdout on success; progress goes to stderr)
# Log:     ${NVEMU_CACHE:-/var/cache/nvemu}/qemu-vfio-user.work/build.log
#
# Environment knobs (all optional):
#   NVEMU_CACHE        cache root (default /var/cache/nvemu)
#   QEMU_DEB_VERSION   Debian version of the qemu source to build, or "newest"
#                      (default: the tested 1:10.2.2+ds-1, falling back to the
#                      newest >= 10.1 the archive can actually serve)
#   QEMU_SMOKE_KERNEL  bzImage for the boot smoke (default /boot/vmlinuz-*,
#                      else extracted from bookworm's linux-image .deb)
#   FORCE=1            rebuild even if a verified build exists
#   KEEP_WORK=1        keep the unpacked source and build tree after success
#   JOBS               parallel jobs (default 2: the CI machine has 2 cores)
#
# Must run as root (installs packages with apt-get). Writes nothing outside
# the cache root except what apt-get install does.
set -euo pipefail

CACHE=${NVEMU_CACHE:-/var/cache/nvemu}
PREFIX=$CACHE/qemu-vfio-user
BIN=$PREFIX/bin/qemu-system-x86_64
STAMP=$PREFIX/BUILD-INFO
WORK=$CACHE/qemu-vfio-user.work
LOG=$WORK/build.log
JOBS=${JOBS:-2}

ARCHIVE=http://deb.debian.org/debian          # same archive as /etc/apt/sources.list.d/debian.sources
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# sid carries the tested 10.2.x; trixie-backports/forky carry newer ones;
# trixie (a released, hence stable, suite) provides meson 1.7 + pycotap.
NEW_SUITES="trixie trixie-backports forky sid"
QEMU_MIN=1:10.1~                              # vfio-user-pci appeared in 10.1
QEMU_TESTED=1:10.2.2+ds-1
QEMU_DEB_VERSION=${QEMU_DEB_VERSION:-$QEMU_TESTED}

# Bookworm packages: toolchain, libraries for the enabled features, and the
# firmware the binary loads at run time (it is built with --disable-install-blobs).
BUILD_DEPS=(gcc make pkgconf python3 python3-venv ninja-build flex bison
            dpkg-dev xz-utils zlib1g-dev libglib2.0-dev libpixman-1-dev
            libslirp-dev libcap-ng-dev libattr1-dev libfdt-dev device-tree-compiler)
FIRMWARE_PKGS=(seabios qemu-system-data ipxe-qemu)

# Firmware comes from Debian 12's packages, not from this build: the +ds source
# has no blobs, and building the x86 option ROMs needs a 32-bit libgcc
# (gcc-multilib), which Debian 12 cannot co-install with the cross compilers
# other tools may need. The 7.2 option ROMs (linuxboot_dma.bin, ...) talk the
# stable fw_cfg interface and boot fine with this QEMU.
# QEMU searches these first, then its own datadir ($PREFIX/share/qemu: keymaps),
# which it resolves relative to the binary (the build is relocatable).
FIRMWAREPATH=/usr/share/seabios:/usr/lib/ipxe/qemu:/usr/share/qemu

CONFIGURE_FLAGS=(--target-list=x86_64-softmmu --without-default-features
                 --enable-tcg --enable-slirp --enable-virtfs --enable-attr
                 --enable-cap-ng --enable-fdt=system --disable-docs --disable-werror
                 --disable-install-blobs --python=/usr/bin/python3)

# ---------------------------------------------------------------------------
# helpers

say() { printf '[build-qemu] %s\n' "$*" >&2; }

die() {
    say "ERROR: $*"
    if [[ -s $LOG ]]; then
        say "last 50 lines of $LOG:"
        tail -n 50 "$LOG" >&2
    fi
    exit 1
}

# run DESCRIPTION CMD... : run CMD with output appended to the log; die on failure.
run() {
    local desc=$1 t=$SECONDS; shift
    say "$desc"
    printf '\n=== %s\n=== %s\n' "$desc" "$*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || die "$desc failed (exit $?)"
    printf '=== took %ss\n' "$((SECONDS - t))" >>"$LOG"
}

# in_dir DIR CMD... : run CMD inside DIR (a subshell, so the cwd is unchanged).
in_dir() { (cd "$1" && shift && "$@"); }

# The binary lists vfio-user-pci among its devices. Output is captured first so
# that grep closing the pipe early cannot SIGPIPE qemu under pipefail.
has_vfio_user() {
    local out
    out=$("$1" -device help 2>/dev/null) || return 1
    grep -q '"vfio-user-pci"' <<<"$out"
}

# ---------------------------------------------------------------------------
# 1. fast path

already_built() {
    [[ -x $BIN && -f $STAMP ]] && has_vfio_user "$BIN"
}

# ---------------------------------------------------------------------------
# 2. build dependencies from Debian 12, via the system apt (configuration untouched)

SYSTEM_APT_UPDATED=0
system_apt_update() {
    [[ $SYSTEM_APT_UPDATED == 1 ]] && return 0
    run "apt-get update (system, bookworm)" apt-get update
    SYSTEM_APT_UPDATED=1
}

install_build_deps() {
    local missing=() p
    for p in "${BUILD_DEPS[@]}" "${FIRMWARE_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        say "build deps already installed"
        return 0
    fi
    system_apt_update
    run "apt-get install ${missing[*]}" \
        env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------
# 3. private apt state for the newer suites
#
# Own sources list, lists, cache and (empty) dpkg status, so neither
# /etc/apt nor /var/lib/apt changes. apt.conf.d is still read on purpose: it
# carries this machine's archive access settings (and Check-Valid-Until off).

APT_DIR=$WORK/apt
APT_OPTS=(
    -o Dir::State="$APT_DIR/state"
    -o Dir::State::status="$APT_DIR/state/status"
    -o Dir::Cache="$APT_DIR/cache"
    -o Dir::Etc::SourceList="$APT_DIR/sources.list"
    -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d"
    -o Dir::Etc::Preferences="$APT_DIR/preferences"
    -o Dir::Etc::PreferencesParts="$APT_DIR/preferences.d"
    # downloads land in root-owned work dirs the _apt user cannot write
    -o APT::Sandbox::User=root
    # a frozen/mirrored archive may serve Release files past Valid-Until
    -o Acquire::Check-Valid-Until=false
)
apt_private()       { apt-get   "${APT_OPTS[@]}" "$@"; }
apt_cache_private() { apt-cache "${APT_OPTS[@]}" "$@"; }

setup_private_apt() {
    mkdir -p "$APT_DIR"/{state/lists/partial,cache/archives/partial,sources.list.d,preferences.d}
    : >"$APT_DIR/state/status"
    local s
    {
        for s in $NEW_SUITES; do
            echo "deb     [signed-by=$KEYRING] $ARCHIVE $s main"
            echo "deb-src [signed-by=$KEYRING] $ARCHIVE $s main"
        done
    } >"$APT_DIR/sources.list"
    # --error-on=any: a missing/unsigned suite must fail here, not later.
    run "apt-get update (private: $NEW_SUITES)" apt_private update --error-on=any
}

# ---------------------------------------------------------------------------
# 4. sources: qemu source package + meson/pycotap tools

# Print candidate qemu source versions, preferred first: the requested one,
# then every other version >= QEMU_MIN the suites list, newest first. The
# archive proxy on these machines only serves part of the pool, so we try
# them in order until one downloads.
qemu_candidates() {
    local all=() v i j t
    for v in $(apt_cache_private showsrc qemu | awk '/^Version:/ {print $2}' | sort -u); do
        dpkg --compare-versions "$v" ge "$QEMU_MIN" && all+=("$v")
    done
    # newest first, in Debian version order (a handful of entries: insertion sort)
    for ((i = 1; i < ${#all[@]}; i++)); do
        for ((j = i; j > 0; j--)); do
            dpkg --compare-versions "${all[j]}" gt "${all[j-1]}" || break
            t=${all[j]}; all[j]=${all[j-1]}; all[j-1]=$t
        done
    done
    if [[ $QEMU_DEB_VERSION != newest ]]; then
        echo "$QEMU_DEB_VERSION"
    fi
    for v in "${all[@]}"; do
        [[ $v == "$QEMU_DEB_VERSION" ]] || echo "$v"
    done
}

fetch_qemu_source() {
    local dl=$WORK/dl v ok=
    mkdir -p "$dl"
    for v in $(qemu_candidates); do
        dpkg --compare-versions "$v" ge "$QEMU_MIN" || die "QEMU_DEB_VERSION=$v is older than $QEMU_MIN"
        say "trying qemu source $v"
        # apt verifies the files' hashes against the signed Sources index
        if (cd "$dl" && apt_private source --download-only "qemu=$v") >"$WORK/dl.out" 2>&1; then
            ok=$v
        elif local_source_ok "$dl/qemu_${v#*:}.dsc"; then
            # downloaded by an earlier run, and the suites dropped it since
            say "  not in the archive any more; using the copy downloaded earlier"
            ok=$v
        fi
        cat "$WORK/dl.out" >>"$LOG"
        [[ -n $ok ]] && break
        say "  qemu $v not downloadable from the archive, trying next"
    done
    [[ -n $ok ]] || die "no qemu source >= $QEMU_MIN could be downloaded"
    QEMU_VERSION=$ok
    # which suite served it, for the stamp ("Get:1 http://... sid/main qemu ...")
    QEMU_SUITE=$(grep -m1 -oE ' [a-z-]+/main qemu ' "$WORK/dl.out" | cut -d/ -f1 | tr -d ' ' || true)
    say "qemu source $ok from ${QEMU_SUITE:-an already downloaded copy}"
    local upstream=${ok#*:}; upstream=${upstream%-*}
    local dsc=$dl/qemu_${ok#*:}.dsc
    rm -rf "$WORK/src"
    # dpkg-source applies Debian's patch series; among them
    # skip-unpack-edk2-blobs.patch and disable-pycotap.patch, which the +ds
    # tarball (no firmware blobs, no python wheels) needs.
    run "unpack qemu $upstream (dpkg-source -x)" dpkg-source --no-copy -x "$dsc" "$WORK/src"
}

# local_source_ok DSC : DSC (checked by apt when it was downloaded) is here and
# the files it lists are complete: their SHA-256 sums match.
local_source_ok() {
    [[ -f $1 ]] || return 1
    awk '/^Checksums-Sha256:/ {on = 1; next} /^[^ ]/ {on = 0} on && NF == 3 {print $1 "  " $3}' "$1" |
        (cd "$(dirname "$1")" && sha256sum --check --strict --quiet) >>"$LOG" 2>&1
}

# Guard: the +ds tarball lacks pc-bios/edk2-*.fd.bz2. Debian's patch disables
# unpacking them; if a future Debian version drops that patch, do it here.
guard_edk2_blobs() {
    local mb=$WORK/src/pc-bios/meson.build
    if grep -q '^if unpack_edk2_blobs$' "$mb"; then
        say "patching pc-bios/meson.build: skip unpacking absent edk2 blobs"
        sed -i 's/^if unpack_edk2_blobs$/if unpack_edk2_blobs and false/' "$mb"
    fi
}

# meson >= 1.5 (bookworm has 1.0) and pycotap (only needed if Debian's
# disable-pycotap.patch goes away). Unpacked, not installed: they only go on
# PATH/PYTHONPATH of this script (configure, ninja's regeneration step and
# the install all run meson).
fetch_tools() {
    local debs=$WORK/debs tools=$WORK/tools p f
    rm -rf "$debs" "$tools"; mkdir -p "$debs" "$tools"
    for p in meson python3-pycotap; do
        # prefer trixie's (a released suite: does not move); else the newest
        (cd "$debs" && apt_private download "$p/trixie") >>"$LOG" 2>&1 ||
            (cd "$debs" && apt_private download "$p") >>"$LOG" 2>&1 ||
            die "cannot download $p from the newer suites"
    done
    for f in "$debs"/*.deb; do
        run "unpack $(basename "$f")" dpkg-deb -x "$f" "$tools"
    done
    export PATH="$tools/usr/bin:$PATH"
    export PYTHONPATH="$tools/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"
    MESON_VERSION=$(meson --version) || die "unpacked meson does not run"
    say "meson $MESON_VERSION"
}

# ---------------------------------------------------------------------------
# 5. configure, build, install

build_qemu() {
    local b=$WORK/build
    rm -rf "$b"; mkdir -p "$b"
    # Relocatable (QEMU's default): data paths under $PREFIX are resolved
    # relative to the binary, so $PREFIX may later be moved as a whole.
    run "configure" in_dir "$b" \
        "$WORK/src/configure" --prefix="$PREFIX" --firmwarepath="$FIRMWAREPATH" \
        "${CONFIGURE_FLAGS[@]}"
    # Build only what gets installed: ninja's default target also builds
    # ~950 of the ~2600 steps for unit/qtest tests and softfloat/testfloat,
    # which we never run. (No firmware subdirs to make either: configure
    # finds no 32-bit libgcc, see FIRMWAREPATH.)
    local targets
    targets=$(installed_targets "$b") || die "meson introspect failed"
    [[ -n $targets ]] || die "meson introspect listed no installed targets"
    # shellcheck disable=SC2086  # one word per ninja target
    run "ninja -j$JOBS $(wc -w <<<"$targets") installed targets (nice)" \
        nice -n 10 ninja -C "$b" -j"$JOBS" $targets
    # A fresh prefix: the stamp is written only after verification passes.
    rm -rf "$PREFIX"
    run "meson install -> $PREFIX" "$b/pyvenv/bin/meson" install --no-rebuild -C "$b"
}

# Ninja names (paths relative to the build dir) of every target meson installs.
installed_targets() {
    "$1/pyvenv/bin/meson" introspect --targets "$1" | /usr/bin/python3 -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t.get("installed"):
        for f in t["filename"]:
            print(os.path.relpath(f, sys.argv[1]))' "$1"
}

# ---------------------------------------------------------------------------
# 6. verification

find_smoke_kernel() {
    if [[ -n ${QEMU_SMOKE_KERNEL:-} ]]; then echo "$QEMU_SMOKE_KERNEL"; return; fi
    local k=() kd=$WORK/kernel pkg
    k=(/boot/vmlinuz-*)
    if [[ -r ${k[-1]} ]]; then echo "${k[-1]}"; return; fi
    # A clean CI machine has no kernel in /boot: take bookworm's bzImage out
    # of its .deb (installing it would run initramfs/bootloader hooks, and
    # the modules are 450 MB we do not need).
    rm -rf "$kd"; mkdir -p "$kd"
    system_apt_update >&2
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [[ -n $pkg ]] || die "cannot resolve linux-image-amd64 to a kernel package"
    (cd "$kd" && apt-get download "$pkg") >>"$LOG" 2>&1 || die "apt-get download $pkg failed"
    dpkg-deb --fsys-tarfile "$kd/$pkg"_*.deb |
        tar -x -C "$kd" --wildcards './boot/vmlinuz-*' >>"$LOG" 2>&1 ||
        die "cannot extract the kernel from $pkg"
    k=("$kd"/boot/vmlinuz-*)
    [[ -r ${k[0]} ]] || die "no vmlinuz in $pkg"
    rm -f "$kd/$pkg"_*.deb
    echo "${k[0]}"
}

# Boot a kernel under TCG until it prints its banner on the serial console.
# No initrd: it would panic at mount-root later, we stop long before.
smoke_boot() {
    local kernel out pid i
    kernel=$(find_smoke_kernel)
    out=$WORK/smoke-boot.log
    : >"$out"                                # exists before the first grep
    say "boot smoke: $kernel"
    "$BIN" -machine q35,accel=tcg -nographic -kernel "$kernel" \
        -append "console=ttyS0 panic=-1" -m 512 -no-reboot </dev/null >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < 120; i++)); do          # up to 60 s; ~2-5 s is typical
        grep -q 'Linux version' "$out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    cat "$out" >>"$LOG"
    grep -q 'Linux version' "$out" || { tail -n 20 "$out" >&2; die "guest kernel printed nothing"; }
    say "  ok: $(grep -m1 -o 'Linux version [^ ]*' "$out")"
}

# nvemu shares guest RAM with the vfio-user server through a memfd backend.
smoke_memfd() {
    local out
    say "check: memory-backend-memfd,share=on + q35,memory-backend=mem"
    out=$(printf '%s\n' '{"execute":"qmp_capabilities"}' '{"execute":"quit"}' |
          "$BIN" -nodefaults -display none -m 1G \
              -object memory-backend-memfd,id=mem,size=1G,share=on \
              -machine q35,accel=tcg,memory-backend=mem -qmp stdio 2>&1) ||
        { echo "$out" >&2; die "memfd backend options rejected"; }
    echo "$out" >>"$LOG"
}

# The device must exist; with no server behind the socket it has to fail on
# connecting, not with "not a valid device model name".
smoke_vfio_user_device() {
    local dir out rc=0
    dir=$(mktemp -d)
    say "check: -device vfio-user-pci (no server: expect a connect error)"
    out=$(timeout 20 "$BIN" -nodefaults -display none -m 1G \
              -object memory-backend-memfd,id=mem,size=1G,share=on \
              -machine q35,accel=tcg,memory-backend=mem \
              -device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$dir/cntrl\",\"type\":\"unix\"}}" \
              -S </dev/null 2>&1) || rc=$?
    rmdir "$dir"
    echo "$out" >>"$LOG"
    ((rc != 0)) || die "vfio-user-pci started without a server?"
    if grep -qiE 'not a valid device|unknown|invalid parameter' <<<"$out" ||
       ! grep -qiE 'connect|no such file' <<<"$out"; then
        echo "$out" >&2
        die "vfio-user-pci option not accepted as expected"
    fi
    say "  ok: $(head -n 1 <<<"$out")"
}

verify() {
    has_vfio_user "$BIN" || die "$BIN does not list vfio-user-pci"
    say "ok: -device help lists vfio-user-pci"
    smoke_boot
    smoke_memfd
    smoke_vfio_user_device
}

write_stamp() {
    cat >"$STAMP" <<EOF
qemu_source_package=qemu $QEMU_VERSION
qemu_source_suite=${QEMU_SUITE:-unknown}
meson=$MESON_VERSION
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
build_seconds=$1
configure=--prefix=$PREFIX --firmwarepath=$FIRMWAREPATH ${CONFIGURE_FLAGS[*]}
EOF
}

# ---------------------------------------------------------------------------

main() {
    if [[ ${FORCE:-0} != 1 ]] && already_built; then
        echo "$BIN"
        return 0
    fi
    [[ $(id -u) == 0 ]] || { say "must run as root (apt-get install)"; exit 1; }

    mkdir -p "$CACHE" "$WORK"
    # One build at a time (parallel CI jobs share the cache).
    exec 9>"$CACHE/qemu-vfio-user.lock"
    flock 9
    if [[ ${FORCE:-0} != 1 ]] && already_built; then  # another job just built it
        echo "$BIN"
        return 0
    fi

    local t0=$SECONDS
    : >"$LOG"
    say "log: $LOG"
    install_build_deps
    setup_private_apt
    fetch_qemu_source
    guard_edk2_blobs
    fetch_tools
    build_qemu
    verify
    local dt=$((SECONDS - t0))
    write_stamp "$dt"
    if [[ ${KEEP_WORK:-0} != 1 ]]; then
        # keep dl/ (the source, reusable) and the log; the rest is rebuilt on demand
        rm -rf "$WORK/src" "$WORK/build" "$WORK/kernel" "$WORK/apt"
    fi
    say "done in ${dt}s: qemu $QEMU_VERSION (meson $MESON_VERSION)"
    echo "$BIN"
}

# Run unless sourced (sourcing gives the functions, e.g. to test one step).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
