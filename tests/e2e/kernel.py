"""Guest kernels for the e2e harness, fetched from Debian's archive.

`make test` must leave the machine's boot alone: installing linux-image-*
would put a kernel in /boot and rebuild an initramfs on whatever machine runs
the tests, a developer's workstation included. Instead the kernel package is
fetched with `apt-get download` and unpacked into the harness cache, where
only the guest uses it, as the harness does with its QEMU build.

A kernel is asked for by package name, metapackages included:
    fetch("linux-image-amd64")        # bookworm's 6.1, the default
    fetch("linux-image-6.12-amd64")   # 6.12 (DH-HMAC-CHAP, TLS)
NVEMU_GUEST_KERNEL names the default package.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile

DEFAULT_PACKAGE = "linux-image-amd64"


class KernelError(Exception):
    pass


def default_package():
    return os.environ.get("NVEMU_GUEST_KERNEL") or DEFAULT_PACKAGE


def kernels_dir(cache_root):
    return os.path.join(cache_root, "kernels")


def _apt(*argv, cwd=None):
    r = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd)
    if r.returncode != 0:
        raise KernelError(f"{' '.join(argv)} failed ({r.returncode}): "
                          f"{r.stderr.strip()[-400:]}")
    return r.stdout


def resolve(package):
    """The package that holds the image: metapackages (linux-image-amd64,
    linux-image-6.12-amd64) depend on exactly one linux-image-<abi> package."""
    seen = []
    while package not in seen:
        seen.append(package)
        deps = re.findall(r"^\s+Depends: (linux-image-\S+)$",
                          _apt("apt-cache", "depends", "--important", package),
                          re.MULTILINE)
        if not deps:
            return package
        package = deps[0]
    raise KernelError(f"dependency loop resolving {seen[0]}: {seen}")


def candidate_version(package):
    m = re.search(r"^\s+Candidate: (\S+)$", _apt("apt-cache", "policy", package),
                  re.MULTILINE)
    if not m or m.group(1) == "(none)":
        raise KernelError(f"{package} has no installable version: run "
                          f"`apt-get update` (and check the package name)")
    return m.group(1)


def _unpacked(root):
    """(uname -r, vmlinuz, modules dir) of an unpacked package, or None."""
    for vmlinuz in sorted(glob.glob(os.path.join(root, "boot", "vmlinuz-*"))):
        ver = os.path.basename(vmlinuz)[len("vmlinuz-"):]
        moddir = os.path.join(root, "lib", "modules", ver)
        if os.path.exists(os.path.join(moddir, "modules.dep")):
            return ver, vmlinuz, moddir
    return None


def _download_and_unpack(package, version, dest):
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".fetch-", dir=parent)
    try:
        # apt drops to the _apt user to download; let it write here.
        if os.geteuid() == 0:
            shutil.chown(work, user="_apt")
        _apt("apt-get", "download", "-q", f"{package}={version}", cwd=work)
        debs = glob.glob(os.path.join(work, "*.deb"))
        if len(debs) != 1:
            raise KernelError(f"apt-get download {package} left {debs}")
        root = os.path.join(work, "root")
        _apt("dpkg-deb", "-x", debs[0], root)
        found = glob.glob(os.path.join(root, "boot", "vmlinuz-*"))
        if not found:
            raise KernelError(f"{package} {version} has no /boot/vmlinuz-*")
        ver = os.path.basename(found[0])[len("vmlinuz-"):]
        # The package's postinst would run depmod; the harness needs its
        # modules.dep/alias/softdep to compute module closures.
        depmod = shutil.which("depmod") or "/sbin/depmod"
        _apt(depmod, "-b", root, ver)
        os.replace(root, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch(package, cache_root):
    """(uname -r, vmlinuz, modules dir) of `package`, downloading and
    unpacking it into the cache on first use. The caller holds the cache
    lock. Without apt's lists (offline), a copy unpacked earlier is used."""
    base = kernels_dir(cache_root)
    try:
        concrete = resolve(package)
        version = candidate_version(concrete)
    except KernelError as e:
        try:
            with open(os.path.join(base, f"{package}.last")) as f:
                found = _unpacked(os.path.join(base, f.read().strip()))
        except OSError:
            found = None
        if found:
            return found
        raise KernelError(f"guest kernel {package}: {e}") from None
    dest = os.path.join(base, f"{concrete}_{version}")
    if not _unpacked(dest):
        shutil.rmtree(dest, ignore_errors=True)
        _download_and_unpack(concrete, version, dest)
    found = _unpacked(dest)
    if not found:
        raise KernelError(f"{concrete} {version} unpacked into {dest} without "
                          f"a kernel and modules.dep")
    with open(os.path.join(base, f"{package}.last"), "w") as f:
        f.write(os.path.basename(dest) + "\n")
    return found
