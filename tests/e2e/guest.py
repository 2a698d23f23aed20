"""End-to-end harness: Debian's own Linux kernel booted in QEMU as an NVMe host.

The guest is a throw-away VM (TCG, no KVM needed) built from host packages:

* kernel  - Debian's linux-image-amd64 (or the package the caller names),
            fetched with apt-get download into the cache, never installed
            on this machine (kernel.py); decompressed once to a
            plain ELF vmlinux so QEMU can use the PVH entry point (~3 s boot
            under TCG instead of running the bzImage decompressor).
* initrd  - a small cpio: busybox-static, the nvme/9p/virtio modules of that
            kernel, /init and a command agent.
* userland - the host's / shared read-only over 9p; commands run chrooted in
            it, so the guest uses Debian's nvme-cli, fio, bash, python3...

Network: QEMU user networking with restrict=on, so the guest can reach nothing
but the host loopback ports the caller forwards (guestfwd + socat); the host
reaches guest servers only through the caller's host_forwards (hostfwd,
bound to 127.0.0.1).

Control: a second serial port (/dev/ttyS1) carries commands to an agent in the
guest and framed base64 output back; see Guest.run().

Both artifacts are cached in ${NVEMU_CACHE:-/var/cache/nvemu}/e2e/ and rebuilt
only when their inputs change.
"""

import atexit
import base64
import fcntl
import hashlib
import lzma
import os
import re
import secrets
import shutil
import shlex
import socket
import struct
import subprocess
import tempfile
import time
import uuid
import weakref
import zlib

import kernel

# --------------------------------------------------------------------------
# Constants the tests may rely on.

GUEST_IP = "10.0.2.15"          # slirp's default guest address, set statically
DEFAULT_MODULES = (
    # Crypto back ends the kernel would otherwise request_module() lazily:
    # crc64-rocksoft (t10-pi, via nvme-core) and crc32c (NVMe/TCP digests).
    "crc64_rocksoft_generic", "crc32c_generic", "crc32c-intel",
    # The NVMe host stack: PCI driver and the TCP fabrics transport.
    "nvme", "nvme-tcp",
    # virtio transport, 9p root share and the NIC (all modules on Debian).
    "virtio_pci", "9p", "9pnet_virtio", "virtio_net",
)
HOST_TMP = "/run/host-tmp"      # where the guest sees the host's /tmp
DEFAULT_APPEND = (
    "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off "
    "nvme_core.admin_timeout=5 nvme_core.io_timeout=10"
)

CACHE_FORMAT = "1"              # bump when the artifact layout changes
HOST_SHARE_TAG = "hostroot"
READY_MARKER = b"@@NVEMU-READY@@"
# Nothing throttles the host->guest serial stream: bytes the guest's tty layer
# cannot buffer (~64 KiB) are dropped. Keep every message well below that.
MAX_PAYLOAD = 48 * 1024
WRITE_CHUNK = 32 * 1024         # raw bytes per write_file() command


class GuestError(Exception):
    """The guest failed to boot, died, or a command could not be run."""


class GuestTimeout(GuestError):
    """A command (or the boot) did not finish in time."""


class CommandError(GuestError):
    """Guest.check(): a command exited non-zero."""

    def __init__(self, cmd, rc, output):
        super().__init__(f"guest command failed (rc={rc}): {cmd}\n"
                         f"--- output ---\n{output}")
        self.cmd, self.rc, self.output = cmd, rc, output


# --------------------------------------------------------------------------
# Small helpers for tests.

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_host_identity():
    """(hostnqn, hostid) for `nvme connect --hostnqn/--hostid`.

    The host's /etc/nvme may not exist (and the chroot is read-only), so each
    guest gets its own uuid-based identity, as nvme-cli's gen-hostnqn does.
    """
    hostid = str(uuid.uuid4())
    return f"nqn.2014-08.org.nvmexpress:uuid:{hostid}", hostid


def cache_dir():
    return os.path.join(os.environ.get("NVEMU_CACHE", "/var/cache/nvemu"), "e2e")


# --------------------------------------------------------------------------
# Kernel discovery and vmlinux extraction.

def find_kernel(package=None):
    """(uname -r, vmlinuz path, modules dir) of the guest kernel.

    `package` (default $NVEMU_GUEST_KERNEL or linux-image-amd64) is fetched
    from Debian's archive into the harness cache (tests/e2e/kernel.py); the
    machine's own /boot is never used nor changed.
    """
    with _CacheLock(cache_dir()):
        try:
            return kernel.fetch(package or kernel.default_package(), cache_dir())
        except kernel.KernelError as e:
            raise GuestError(str(e)) from None


def _decompress_xz(data):
    return lzma.LZMADecompressor().decompress(data)   # ignores trailing bytes


def _decompress_gzip(data):
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def _decompress_tool(*argv):
    def run(data):
        # The tools complain about trailing garbage after the frame but still
        # write the full output; the ELF check below is the real verdict.
        r = subprocess.run(argv, input=data, capture_output=True)
        return r.stdout
    return run


# Magic numbers of the payload compressors a bzImage may use, as in the
# kernel's scripts/extract-vmlinux.
_COMPRESSORS = (
    (b"\xfd7zXZ\x00", "xz", _decompress_xz),
    (b"\x28\xb5\x2f\xfd", "zstd", _decompress_tool("zstd", "-dcq")),
    (b"\x1f\x8b\x08", "gzip", _decompress_gzip),
    (b"\x02\x21\x4c\x18", "lz4", _decompress_tool("lz4", "-dcq")),
)


def extract_vmlinux(bzimage):
    """The uncompressed ELF kernel inside a bzImage (bytes -> bytes)."""
    for magic, name, decompress in _COMPRESSORS:
        start = bzimage.find(magic)
        while start != -1:
            try:
                out = decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error, OSError):
                out = b""
            if out[:4] == b"\x7fELF":
                return out
            start = bzimage.find(magic, start + 1)
    raise GuestError("no known compressed ELF payload found in the kernel "
                     "image (tried " + ", ".join(c[1] for c in _COMPRESSORS) + ")")


# --------------------------------------------------------------------------
# Cache plumbing: one lock for all builders, atomic publication of results.

class _CacheLock:
    """flock on the cache dir so parallel tests build each artifact once."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, ".lock")

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _publish(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _kernel_stamp(vmlinuz):
    """Changes when the package is upgraded in place under the same ABI name."""
    st = os.stat(vmlinuz)
    return hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]


def build_vmlinux(version=None):
    """Path of the cached vmlinux for the kernel (built on first use)."""
    ver, vmlinuz, _ = find_kernel(version)
    out = os.path.join(cache_dir(), ver, f"vmlinux-{_kernel_stamp(vmlinuz)}")
    if os.path.exists(out):
        return out
    with _CacheLock(cache_dir()):
        if not os.path.exists(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
            for old in os.listdir(os.path.dirname(out)):   # 60+ MB each
                if old.startswith("vmlinux-"):
                    os.unlink(os.path.join(os.path.dirname(out), old))
            with open(vmlinuz, "rb") as f:
                _publish(out, extract_vmlinux(f.read()))
    return out


# --------------------------------------------------------------------------
# Kernel modules: dependency closure from modules.dep/softdep/alias.

class ModuleDb:
    """Read-only view of /lib/modules/<ver> metadata."""

    def __init__(self, moddir):
        self.moddir = moddir
        self.deps = {}      # module name -> (relpath, [dep relpaths, in load-last order])
        self.by_path = {}   # relpath -> module name
        with open(f"{moddir}/modules.dep") as f:
            for line in f:
                path, _, rest = line.partition(":")
                name = self.name_of(path)
                self.deps[name] = (path, rest.split())
                self.by_path[path] = name
        self.aliases = self._read_pairs("modules.alias", "alias")
        self.softdeps = {}
        for mod, args in self._read_pairs("modules.softdep", "softdep").items():
            # "softdep mod pre: a b post: c" -> only the "pre:" part matters
            # for load order; "post:" modules are not needed by us.
            for words in args:
                pre, in_pre = [], False
                for w in words.split():
                    if w.endswith(":"):
                        in_pre = (w == "pre:")
                    elif in_pre:
                        pre.append(w)
                self.softdeps.setdefault(mod, []).extend(pre)
        self.builtin = set()
        if os.path.exists(f"{moddir}/modules.builtin"):
            with open(f"{moddir}/modules.builtin") as f:
                self.builtin = {self.name_of(line.strip()) for line in f}

    @staticmethod
    def name_of(path):
        base = os.path.basename(path)
        base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
        return base.replace("-", "_")

    def _read_pairs(self, fname, keyword):
        out = {}
        path = f"{self.moddir}/{fname}"
        if not os.path.exists(path):
            return out
        with open(path) as f:
            for line in f:
                words = line.split(None, 2)
                if len(words) == 3 and words[0] == keyword:
                    out.setdefault(words[1].replace("-", "_"), []).append(words[2])
        return out

    def resolve(self, name):
        """Module names a (module or alias) name stands for; [] if builtin/unknown."""
        norm = name.replace("-", "_")
        if norm in self.deps:
            return [norm]
        if norm in self.builtin:
            return []
        # Aliases are matched exactly (softdeps use plain names like "crc32c");
        # an alias may name several modules (e.g. generic + accelerated).
        targets = (t.strip().replace("-", "_") for t in self.aliases.get(norm, []))
        return [m for m in targets if m in self.deps]

    def load_order(self, names):
        """Relative paths of all modules needed for `names`, deps first.

        Unknown names raise; builtin ones are skipped (nothing to load).
        """
        order, seen = [], set()

        def visit(mod):
            if mod in seen:
                return
            seen.add(mod)
            for soft in self.softdeps.get(mod, []):
                for m in self.resolve(soft):
                    visit(m)
            path, deps = self.deps[mod]
            # modules.dep lists a module's deps so that the last is loaded
            # first; visit them (recursively, for their softdeps) in that order.
            for dep in reversed(deps):
                visit(self.by_path[dep])
            order.append(path)

        for name in names:
            mods = self.resolve(name)
            if not mods and name.replace("-", "_") not in self.builtin:
                raise GuestError(f"kernel module {name!r} not found in {self.moddir}")
            for m in mods:
                visit(m)
        return order


# --------------------------------------------------------------------------
# initramfs.

INIT_SCRIPT = r"""#!/bin/sh
# PID 1 of the nvemu e2e guest: mount the basics, load the modules, bring up
# the NIC, mount the host's / at /host, then serve the host via the agent.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
log() { echo "nvemu-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# bash process substitution and many scripts need /dev/fd and friends.
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
# Let the kernel's request_module() find modules we staged but did not load.
echo /sbin/modprobe > /proc/sys/kernel/modprobe

kver=$(uname -r)
while read -r ko; do
  # Skip what request_module() already pulled in (e.g. crypto back ends).
  name=$(basename "$ko" .ko | tr - _)
  [ -d "/sys/module/$name" ] && continue
  insmod "/lib/modules/$kver/$ko" 2>/tmp/insmod.err ||
    log "insmod $ko failed: $(cat /tmp/insmod.err)"
done < /etc/nvemu/modules

ip link set lo up
if ip link set eth0 up 2>/dev/null; then
  ip addr add 10.0.2.15/24 dev eth0
else
  log "no eth0"
fi

# The chroot the agent runs commands in: host / read-only plus fresh
# kernel filesystems and the guest's own writable /tmp and /run. The host's
# /tmp (where tests keep their files) stays visible at /run/host-tmp.
# cache=loose makes exec from 9p several times faster; the price is that a
# host file rewritten after the guest read it may look stale.
cache=$(sed -n 's/.*nvemu\.hostcache=\([a-z]*\).*/\1/p' /proc/cmdline)
mkdir -p /host /run/host-tmp
if mount -t 9p -o "trans=virtio,version=9p2000.L,ro,msize=512000,cache=${cache:-loose}" \
    hostroot /host; then
  mount -t proc proc /host/proc
  mount -t sysfs sysfs /host/sys
  mount -o bind /dev /host/dev
  mount -o bind /dev/pts /host/dev/pts
  mount -o bind /dev/shm /host/dev/shm
  mount -o bind /host/tmp /run/host-tmp
  mount -o bind /tmp /host/tmp
  mount -o bind /run /host/run
  mount -o bind /run/host-tmp /host/run/host-tmp
else
  log "9p mount of the host root failed"
fi
# Fewer receive interrupts on the command channel (16550A FIFO trigger).
echo 14 > /sys/class/tty/ttyS1/rx_trig_bytes 2>/dev/null

log "up after $(cut -d' ' -f1 /proc/uptime)s"
while :; do
  /bin/sh /etc/nvemu/agent
  log "agent exited (rc=$?), restarting"
  sleep 1
done
"""

AGENT_SCRIPT = r"""#!/bin/sh
# Command agent. For each command the host writes on /dev/ttyS1 a line
#   TAG MODE TIMEOUT CMDLEN INLEN      MODE: c = chrooted in /host, h = not
# followed by CMDLEN bytes of base64(command) and INLEN bytes of
# base64(its stdin), and reads back
#   @@NVEMU-BEGIN TAG@@ base64(stdout+stderr) @@NVEMU-END TAG RC TIMEDOUT SIZE@@
# Output is base64 so it can never be confused with the markers; SIZE lets
# the host detect loss.
port=/dev/ttyS1
dir=/run/nvemu-agent
mkdir -p "$dir"
# Raw: no echo, no line editing, no CR/LF mangling. 115200 only matters for
# QEMU's receive-timeout interrupt, which scales with the character time.
stty -F "$port" 115200 raw -echo
exec <"$port" >"$port" 2>/dev/console

# Kill the command's whole session (setsid below) when it overruns.
watchdog() {
  n=0
  while kill -0 "$1" 2>/dev/null; do
    if [ "$n" -ge "$2" ]; then
      : > "$dir/timedout"
      kill -KILL -- "-$1" 2>/dev/null
      return
    fi
    sleep 1
    n=$((n + 1))
  done
}

# Replies go out through cat, never straight from this shell: ash's printf
# loses output when a write is interrupted by SIGCHLD (e.g. the watchdog
# dying), while cat retries.
send() { cat "$dir/reply"; }
printf '\n@@NVEMU-READY@@\n' > "$dir/reply"
send
# `read` takes the header byte by byte (so nothing after it is lost); dd
# reads the payloads in large blocks (much faster) and exactly to size.
payload() { dd bs=16384 count="$1" iflag=count_bytes,fullblock 2>/dev/null; }
while read -r tag mode tmo clen ilen; do
  cmd=$(payload "$clen" | base64 -d)
  payload "$ilen" | base64 -d > "$dir/in"
  rm -f "$dir/timedout"
  # setsid: the command leads its own process group, killable as a whole.
  # stdin is a file so nothing can eat the command channel.
  if [ "$mode" = c ]; then
    setsid chroot /host /bin/sh -c "$cmd" <"$dir/in" >"$dir/out" 2>&1 &
  else
    setsid /bin/sh -c "$cmd" <"$dir/in" >"$dir/out" 2>&1 &
  fi
  pid=$!
  # The watchdog is double-forked so it is not our child: its exit must not
  # send us a SIGCHLD while we sit in `read`, which busybox aborts on EINTR
  # (losing channel sync).
  rm -f "$dir/wd.pid"
  if [ "$tmo" -gt 0 ]; then
    (watchdog "$pid" "$tmo" </dev/null >/dev/null 2>&1 & echo $! > "$dir/wd.pid")
  fi
  wait "$pid"
  rc=$?
  [ -s "$dir/wd.pid" ] && kill "$(cat "$dir/wd.pid")" 2>/dev/null
  to=0
  [ -e "$dir/timedout" ] && to=1
  {
    printf '\n@@NVEMU-BEGIN %s@@\n' "$tag"
    base64 "$dir/out"
    printf '\n@@NVEMU-END %s %s %s %s@@\n' "$tag" "$rc" "$to" "$(wc -c < "$dir/out")"
  } > "$dir/reply"
  send
done
"""


def _is_static_elf(path):
    """True if the ELF64 at `path` has no PT_INTERP (no dynamic loader)."""
    with open(path, "rb") as f:
        hdr = f.read(64)
        if hdr[:5] != b"\x7fELF\x02":
            return False
        phoff, = struct.unpack_from("<Q", hdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3   # PT_INTERP
               for i in range(phnum))


def _find_busybox():
    # The initramfs has no libc, so only a static busybox will do.
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path) and _is_static_elf(path):
            return path
    raise GuestError("static busybox not found: install busybox-static")


def _cpio_entry(name, mode, data=b"", ino=0, rdev=(0, 0)):
    """One 'newc' cpio record (header, name, data, each 4-byte aligned)."""
    name_b = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1],
              len(name_b), 0)
    hdr = b"070701" + b"".join(b"%08X" % v for v in fields)
    pad = lambda n: b"\0" * (-n % 4)   # noqa: E731
    return hdr + name_b + pad(len(hdr) + len(name_b)) + data + pad(len(data))


def write_cpio(root, out_path, extra=()):
    """Pack directory `root` into an uncompressed newc cpio.

    Uncompressed on purpose: unpacking is then a memcpy for the guest, while
    decompression under TCG would cost seconds. `extra` adds (name, mode,
    rdev) device nodes without needing mknod on the host.
    """
    chunks, ino = [], 1
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()   # deterministic archive; parents precede children
        for name in dirnames + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if os.path.islink(full):
                data = os.readlink(full).encode()
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    data = f.read()
            else:
                data = b""
            chunks.append(_cpio_entry(rel, st.st_mode, data, ino))
            ino += 1
    for name, mode, rdev in extra:
        chunks.append(_cpio_entry(name, mode, b"", ino, rdev))
        ino += 1
    chunks.append(_cpio_entry("TRAILER!!!", 0))
    _publish(out_path, b"".join(chunks))


def _stage_modules(db, ver, paths, stage):
    """Copy modules as plain .ko (decompressing if needed) and run depmod."""
    dst_root = os.path.join(stage, "lib/modules", ver)
    staged = []
    for rel in paths:
        with open(os.path.join(db.moddir, rel), "rb") as f:
            data = f.read()
        if rel.endswith(".xz"):
            data = lzma.decompress(data)
        elif rel.endswith(".gz"):
            data = _decompress_gzip(data)
        elif rel.endswith(".zst"):
            data = subprocess.run(["zstd", "-dcq"], input=data,
                                  capture_output=True, check=True).stdout
        rel = re.sub(r"\.(xz|gz|zst)$", "", rel)
        os.makedirs(os.path.dirname(os.path.join(dst_root, rel)), exist_ok=True)
        with open(os.path.join(dst_root, rel), "wb") as f:
            f.write(data)
        staged.append(rel)
    for meta in ("modules.builtin", "modules.builtin.modinfo"):
        if os.path.exists(os.path.join(db.moddir, meta)):
            shutil.copy(os.path.join(db.moddir, meta), dst_root)
    # depmod wants modules.order; the host's lists thousands of modules.
    with open(os.path.join(dst_root, "modules.order"), "w") as f:
        f.write("".join(rel + "\n" for rel in staged))
    depmod = shutil.which("depmod") or "/sbin/depmod"
    subprocess.run([depmod, "-b", stage, ver], check=True, capture_output=True)
    return staged


def _stage_busybox(stage):
    busybox = _find_busybox()
    os.makedirs(os.path.join(stage, "bin"))
    shutil.copy(busybox, os.path.join(stage, "bin/busybox"))
    applets = subprocess.run([busybox, "--list-full"], capture_output=True,
                             text=True, check=True).stdout.split()
    for applet in applets + ["bin/sh"]:
        link = os.path.join(stage, applet)
        if os.path.lexists(link):
            continue
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink("/bin/busybox", link)


def _initramfs_key(ver, vmlinuz, modules):
    """Hash of everything that goes into the initramfs."""
    h = hashlib.sha256()
    st = os.stat(_find_busybox())
    for part in (CACHE_FORMAT, ver, _kernel_stamp(vmlinuz), INIT_SCRIPT,
                 AGENT_SCRIPT, "\n".join(modules), f"{st.st_size}:{st.st_mtime_ns}"):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


def build_initramfs(version=None, modules=DEFAULT_MODULES):
    """Path of the cached initramfs for this kernel and module list."""
    ver, vmlinuz, moddir = find_kernel(version)
    key = _initramfs_key(ver, vmlinuz, modules)
    out = os.path.join(cache_dir(), ver, f"initramfs-{key}.cpio")
    if os.path.exists(out):
        return out
    with _CacheLock(cache_dir()):
        if os.path.exists(out):
            return out
        os.makedirs(os.path.dirname(out), exist_ok=True)
        db = ModuleDb(moddir)
        with tempfile.TemporaryDirectory(prefix="nvemu-initramfs-") as stage:
            _stage_busybox(stage)
            staged = _stage_modules(db, ver, db.load_order(modules), stage)
            for d in ("proc", "sys", "dev", "tmp", "run", "root", "host", "etc/nvemu"):
                os.makedirs(os.path.join(stage, d), exist_ok=True)
            for name, text, mode in (("init", INIT_SCRIPT, 0o755),
                                     ("etc/nvemu/agent", AGENT_SCRIPT, 0o755),
                                     ("etc/nvemu/modules", "\n".join(staged) + "\n", 0o644)):
                path = os.path.join(stage, name)
                with open(path, "w") as f:
                    f.write(text)
                os.chmod(path, mode)
            # The kernel opens /dev/console for init before devtmpfs exists.
            write_cpio(stage, out, extra=[("dev/console", 0o020600, (5, 1))])
    return out


def build_artifacts(version=None, modules=DEFAULT_MODULES):
    """(vmlinux, initramfs) paths, building whatever is missing."""
    return build_vmlinux(version), build_initramfs(version, modules)


# --------------------------------------------------------------------------
# The VM.

_live_guests = weakref.WeakSet()


@atexit.register
def _kill_leftovers():
    for g in list(_live_guests):
        g.close()


def _die_with_parent():
    """argv prefix so QEMU gets SIGKILL if the test dies, even by SIGKILL
    (e.g. a ctest timeout), where neither atexit nor __exit__ run.

    util-linux's setpriv (Essential in Debian) rather than a preexec_fn,
    which is unsafe when the test has threads (servers usually do).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def _qemu_escape(value):
    """QEMU option values escape ',' by doubling it."""
    return value.replace(",", ",,")


class Guest:
    """A booted Linux guest. Use as a context manager:

        with Guest(forwards=[("10.0.2.100", 4420, port)]) as g:
            rc, out = g.run("nvme list")
    """

    def __init__(self, forwards=(), extra_qemu_args=(), qemu=None,
                 memory="1G", smp=1, append="", modules=DEFAULT_MODULES,
                 kernel=None, workdir=None, boot_timeout=90, host_cache="loose",
                 host_forwards=()):
        """forwards: (guest_ip, guest_port, host_port) triples; a guest TCP
        connection to guest_ip:guest_port reaches 127.0.0.1:host_port.
        host_forwards: (host_port, guest_port) pairs; a host connection to
        127.0.0.1:host_port reaches the guest's guest_port (a guest server,
        e.g. Linux nvmet).
        extra_qemu_args: appended to QEMU's command line (devices, memory
        backends...). qemu: binary to use (default $NVEMU_QEMU or the
        system's). append: extra kernel command line. modules: kernel
        modules to load at boot (deps are added). host_cache: 9p cache mode
        of the host root ("loose" is fast, "none" never stale).
        """
        self.forwards = list(forwards)
        self.host_forwards = list(host_forwards)
        self.extra_qemu_args = list(extra_qemu_args)
        self.qemu = qemu or os.environ.get("NVEMU_QEMU") or "qemu-system-x86_64"
        self.memory, self.smp = memory, smp
        self.append = f"{append} nvemu.hostcache={host_cache}".strip()
        self.modules = tuple(modules)
        self.kernel = kernel
        self.boot_timeout = boot_timeout
        self.host_nqn, self.host_id = make_host_identity()
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="nvemu-e2e-")
        self.console_path = os.path.join(self.workdir, "console.log")
        self.qemu_log_path = os.path.join(self.workdir, "qemu.log")
        self.boot_seconds = None
        self.proc = None
        self._sock = None
        self._buf = b""
        self._seq = 0
        self._session = secrets.token_hex(4)
        self._broken = None       # reason the channel can no longer be used
        self._transcript = None   # raw copy of what the guest sent, for debugging

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(keep_workdir=exc_type is not None)

    def start(self):
        """Boot and wait for the agent; on failure QEMU is gone and the
        logs are kept."""
        try:
            return self._start()
        except BaseException:
            self.close(keep_workdir=True)
            raise

    def _start(self):
        vmlinux, initrd = build_artifacts(self.kernel, self.modules)
        t0 = time.monotonic()
        ctl_path = os.path.join(self.workdir, "ctl.sock")
        # We listen and QEMU connects, so the socket exists before QEMU needs
        # it and no byte the guest writes can be lost.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(ctl_path)
        listener.listen(1)
        try:
            argv = self._qemu_argv(vmlinux, initrd, ctl_path)
            with open(os.path.join(self.workdir, "qemu.cmd"), "w") as f:
                f.write(shlex.join(argv) + "\n")
            with open(self.qemu_log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    _die_with_parent() + argv, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log)
            _live_guests.add(self)
            self._sock = self._accept(listener, t0)
            self._transcript = open(os.path.join(self.workdir, "ctl.log"), "wb",
                                    buffering=0)
        finally:
            listener.close()
        self._read_until(lambda: READY_MARKER in self._buf,
                         t0 + self.boot_timeout, "boot")
        self._buf = self._buf.split(READY_MARKER, 1)[1]
        self.boot_seconds = time.monotonic() - t0
        return self

    def close(self, keep_workdir=False):
        if self._sock:
            self._sock.close()
            self._sock = None
        if self._transcript:
            self._transcript.close()
            self._transcript = None
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _live_guests.discard(self)
        keep = keep_workdir or os.environ.get("NVEMU_E2E_KEEP") == "1"
        if self._own_workdir and os.path.isdir(self.workdir):
            if keep:
                print(f"guest: kept logs in {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _qemu_argv(self, vmlinux, initrd, ctl_path):
        append = f"{DEFAULT_APPEND} {self.append}".strip()
        argv = [
            self.qemu, "-accel", "tcg", "-machine", "q35", "-cpu", "max",
            "-m", str(self.memory), "-smp", str(self.smp),
            "-nodefaults", "-display", "none", "-no-reboot", "-monitor", "none",
            "-kernel", vmlinux, "-initrd", initrd, "-append", append,
            "-chardev", f"file,id=con,path={_qemu_escape(self.console_path)}",
            "-serial", "chardev:con",
            "-chardev", f"socket,id=ctl,path={_qemu_escape(ctl_path)}",
            "-serial", "chardev:ctl",
            "-virtfs", f"local,path=/,mount_tag={HOST_SHARE_TAG},"
                       "security_model=none,readonly=on,multidevs=remap",
            "-netdev", self._netdev(), "-device", "virtio-net-pci,netdev=n0",
        ]
        return argv + self.extra_qemu_args

    def _netdev(self):
        """slirp restricted to the chosen forwards: nothing else is reachable.

        guestfwd's cmd: form runs one socat per guest connection; the plain
        tcp: form would merge all guest connections into one host socket,
        which breaks NVMe/TCP (one connection per queue). socat only ever
        connects to 127.0.0.1. hostfwd (host->guest) is not affected by
        restrict=on, which only stops the guest's own outbound traffic; it
        binds 127.0.0.1 only.
        """
        socat = shutil.which("socat")
        if self.forwards and not socat:
            raise GuestError("socat not found: install socat")
        log = os.path.join(self.workdir, "socat.log")
        parts = ["user", "id=n0", "restrict=on", "ipv6=off"]
        for guest_ip, guest_port, host_port in self.forwards:
            cmd = (f"{socat} -lf {log} STDIO "
                   f"TCP:127.0.0.1:{int(host_port)},nodelay")
            parts.append(f"guestfwd=tcp:{guest_ip}:{int(guest_port)}-cmd:"
                         + _qemu_escape(cmd))
        for host_port, guest_port in self.host_forwards:
            parts.append(f"hostfwd=tcp:127.0.0.1:{int(host_port)}-:{int(guest_port)}")
        return ",".join(parts)

    def _accept(self, listener, t0):
        """Wait for QEMU to connect the control channel (or die trying)."""
        while True:
            if self.proc.poll() is not None:
                raise self._failure("QEMU exited before connecting the control channel")
            listener.settimeout(0.2)
            try:
                conn, _ = listener.accept()
                return conn
            except socket.timeout:
                if time.monotonic() - t0 > self.boot_timeout:
                    raise self._failure("QEMU never connected the control channel",
                                        GuestTimeout)

    # ---- command channel -------------------------------------------------

    def run(self, cmd, timeout=60, chroot=True, binary=False, input=b""):
        """Run `cmd` with sh -c in the guest; returns (rc, stdout+stderr).

        chroot=True runs it in the host's userland (/host), False in the
        busybox initramfs. `input` (bytes/str, < MAX_PAYLOAD together with
        the command) is its stdin. The guest kills the command's process
        group after `timeout` s (0 = never) and GuestTimeout is raised; if
        the guest does not answer at all (e.g. a task stuck in the kernel)
        the channel is declared broken. Output is str, or bytes if binary.
        """
        if self._broken:
            raise GuestError(f"guest unusable: {self._broken}")
        if not cmd.strip():
            raise ValueError("empty command")
        self._seq += 1
        tag = f"{self._session}-{self._seq}"
        if isinstance(input, str):
            input = input.encode()
        cmd_b64 = base64.b64encode(cmd.encode())
        in_b64 = base64.b64encode(input)
        if len(cmd_b64) + len(in_b64) > MAX_PAYLOAD:
            raise ValueError(f"command + input too long ({len(cmd) + len(input)} "
                             "bytes); use write_file() for bulk data")
        header = "%s %s %d %d %d\n" % (tag, "c" if chroot else "h", int(timeout),
                                       len(cmd_b64), len(in_b64))
        self._send(header.encode() + cmd_b64 + in_b64)
        end_re = re.compile(rb"@@NVEMU-END " + tag.encode() + rb" (-?\d+) ([01]) (\d+)@@\n")
        begin = b"@@NVEMU-BEGIN " + tag.encode() + b"@@\n"
        # The guest's own watchdog fires at `timeout`; allow for the reply
        # to travel back (slow under TCG) before giving up on the guest.
        deadline = time.monotonic() + (timeout + 30 if timeout else 10**9)
        try:
            m = self._read_until(lambda: end_re.search(self._buf), deadline, cmd)
        except GuestError as e:
            self._broken = str(e).splitlines()[0]
            raise
        start = self._buf.rfind(begin, 0, m.start())
        payload = self._buf[start + len(begin):m.start()]
        try:
            out = base64.b64decode(re.sub(rb"\s", b"", payload), validate=True)
        except ValueError:
            out = None
        if start < 0 or out is None or len(out) != int(m.group(3)):
            # Never hand a test silently corrupted output.
            self._broken = "control channel protocol error"
            raise self._failure(f"{self._broken} in the reply to {cmd!r}: "
                                f"{self._buf[-500:]!r}")
        self._buf = self._buf[m.end():]
        rc, timed_out = int(m.group(1)), m.group(2) == b"1"
        text = out if binary else out.decode(errors="replace")
        if timed_out:
            raise GuestTimeout(f"guest command timed out after {timeout}s: {cmd}\n"
                               f"--- output ---\n{text}")
        return rc, text

    def check(self, cmd, timeout=60, chroot=True, input=b""):
        """Like run() but returns only the output and raises on non-zero rc."""
        rc, out = self.run(cmd, timeout=timeout, chroot=chroot, input=input)
        if rc != 0:
            raise CommandError(cmd, rc, out)
        return out

    def dmesg(self):
        """The guest kernel log."""
        return self.run("dmesg", chroot=False)[1]

    def write_file(self, path, data, mode=0o644, chroot=True):
        """Create `path` in the guest (under the writable /tmp or /run)."""
        if isinstance(data, str):
            data = data.encode()
        q = shlex.quote(path)
        self.check(f": > {q} && chmod {mode:o} {q}", chroot=chroot)
        for i in range(0, len(data), WRITE_CHUNK):
            self.check(f"cat >> {q}", chroot=chroot, input=data[i:i + WRITE_CHUNK])

    def guest_path(self, host_path, chroot=True):
        """Where the guest sees a host file (read-only, via 9p).

        The host's /tmp is hidden under the guest's own tmpfs, so it is
        mapped to HOST_TMP; e.g. files a test puts in self.workdir. Faster
        than write_file() for bulk data (the serial line does ~50 KB/s).
        """
        path = os.path.abspath(host_path)
        if path == "/tmp" or path.startswith("/tmp/"):
            return HOST_TMP + path[len("/tmp"):]    # same in both views
        return path if chroot else "/host" + path

    def console(self):
        """Everything the guest printed on ttyS0 so far."""
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def _send(self, data):
        self._transcript.write(b">>> " + data[:200] + b"\n")
        try:
            self._sock.sendall(data)
        except OSError as e:
            self._broken = f"control channel write failed: {e}"
            raise self._failure(self._broken)

    def _read_until(self, done, deadline, what):
        """Read the control channel until done() is truthy; return its value."""
        while True:
            result = done()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure(f"timed out waiting for: {what}", GuestTimeout)
            self._sock.settimeout(min(remaining, 1.0))
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.proc.wait(timeout=5)
                raise self._failure(f"guest went away (QEMU rc={self.proc.returncode}) "
                                    f"while waiting for: {what}")
            self._buf += chunk
            self._transcript.write(chunk)

    def _failure(self, msg, cls=GuestError, lines=40):
        """An exception carrying the tails of the console and QEMU logs."""
        parts = [msg, f"(logs in {self.workdir})"]
        for title, path in (("console", self.console_path),
                            ("qemu", self.qemu_log_path)):
            try:
                with open(path, "rb") as f:
                    tail = f.read().decode(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            if tail:
                parts.append(f"--- {title} tail ---\n" + "\n".join(tail))
        return cls("\n".join(parts))


def main():
    """Debugging aid: boot a guest and run commands typed on stdin.

    Lines starting with '!' run in the busybox initramfs instead of the
    chroot. Forwards can be given as GUEST_IP:GUEST_PORT=HOST_PORT args.
    """
    import sys
    forwards = []
    for arg in sys.argv[1:]:
        guest_addr, host_port = arg.split("=")
        ip, port = guest_addr.split(":")
        forwards.append((ip, int(port), int(host_port)))
    with Guest(forwards=forwards) as g:
        print(f"booted in {g.boot_seconds:.1f}s; logs in {g.workdir}; "
              f"hostnqn {g.host_nqn}")
        while True:
            try:
                line = input("guest# ")
            except EOFError:
                break
            if not line.strip():
                continue
            chroot = not line.startswith("!")
            try:
                rc, out = g.run(line.lstrip("!"), timeout=0, chroot=chroot)
            except GuestError as e:
                print(e)
                break
            print(out, end="" if out.endswith("\n") or not out else "\n")
            if rc:
                print(f"[rc={rc}]")


if __name__ == "__main__":
    main()
