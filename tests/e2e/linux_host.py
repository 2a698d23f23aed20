"""What the end-to-end tests ask of a Linux host in the guest: find the block
device of a subsystem's namespace, write a pattern with dd and read it back,
run fio's verify, and look for trouble in dmesg. Each check asserts on what
the host really saw (bytes, fio's error count, kernel messages)."""
import json
import os
import re
import subprocess
import tempfile
import threading
import time


class Checks:
    """Runs named checks, prints one line each, counts passes and failures."""

    def __init__(self):
        self.passed, self.failed = 0, 0

    def run(self, name, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
            self.passed += 1
            print(f"ok   {name} ({time.time() - t0:.1f}s)", flush=True)
            return True
        except Exception as e:  # noqa: BLE001
            self.failed += 1
            print(f"FAIL {name} ({time.time() - t0:.1f}s): {e}", flush=True)
            return False

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


class DmesgTail:
    """Called: the guest kernel log lines printed since the last call (the
    host's view of one step)."""

    def __init__(self, g):
        self.g, self.seen = g, 0

    def __call__(self):
        lines = self.g.dmesg().splitlines()
        out = lines[self.seen:]
        self.seen = len(lines)
        return "\n".join(out)


def find_disk(g, nqn, nsid=1, tries=50):
    """/dev/nvmeXnN of namespace `nsid` of subsystem `nqn` (multipath naming)."""
    for _ in range(tries):
        out = g.check(f"for d in /sys/class/nvme-subsystem/*; do "
                      f"[ \"$(cat $d/subsysnqn)\" = {nqn} ] && ls $d | grep -E 'nvme[0-9]+n{nsid}$'; "
                      f"done; true", chroot=False).split()
        if out:
            return "/dev/" + out[0]
        time.sleep(0.2)
    raise AssertionError(f"no block device for namespace {nsid} of {nqn}")


def connect_tcp(g, ip, port, nqn, extra=""):
    g.check(f"nvme connect -t tcp -a {ip} -s {port} -n {nqn} "
            f"--hostnqn={g.host_nqn} --hostid={g.host_id} {extra}", timeout=60)
    return find_disk(g, nqn)


def dd_roundtrip(g, disk, pattern_path, digest, mb, seek_mb=0):
    """Writes the host file `pattern_path` (mb MiB) at seek_mb with O_DIRECT and
    fsync, reads it back and compares its SHA-256 with `digest`."""
    src = g.guest_path(pattern_path)
    g.check(f"dd if={src} of={disk} bs=1M count={mb} seek={seek_mb} oflag=direct "
            f"conv=fsync status=none", timeout=180)
    out = g.check(f"dd if={disk} bs=1M count={mb} skip={seek_mb} iflag=direct status=none"
                  f" | sha256sum", timeout=180)
    got = out.split()[0]
    assert got == digest, f"read back {got} != written {digest}"


def fio_job(g, disk, *, size="16M", offset="0", rw="randrw", runtime=None, timeout=300):
    """fio with crc32c verification; returns its JSON job. A verify failure
    makes fio exit non-zero (verify_fatal), which check() raises."""
    timed = f"--time_based=1 --runtime={runtime} " if runtime else ""
    out = g.check(f"fio --name=verify --filename={disk} --direct=1 --rw={rw} "
                  f"--bs=4k --bsrange=4k-64k --iodepth=16 --ioengine=libaio "
                  f"--size={size} --offset={offset} {timed}--verify=crc32c --do_verify=1 "
                  f"--verify_backlog=64 --verify_fatal=1 --verify_state_save=0 "
                  f"--output-format=json", timeout=timeout)
    job = json.loads(out[out.index("{"):])["jobs"][0]
    assert job["error"] == 0, f"fio error {job['error']}"
    assert job["write"]["io_bytes"] > 0, job["write"]
    return job


def fio_verify(g, disk, **kw):
    fio_job(g, disk, **kw)


class Background:
    """Runs fn() in a thread (a long guest command), so the test can break
    something while it runs; join() re-raises what fn raised."""

    def __init__(self, fn):
        self.result, self.error = None, None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"still running after {timeout}s")
        if self.error:
            raise self.error
        return self.result


def nvme_trouble(g, allow=()):
    """dmesg lines where the host's NVMe driver timed out, reset or failed I/O,
    less those matching a pattern in `allow`."""
    bad = []
    for ln in g.dmesg().splitlines():
        if "command line" in ln.lower():
            continue
        if not re.search(r"nvme.*(timeout|reset|I/O error|failed)", ln, re.I):
            continue
        if any(re.search(a, ln, re.I) for a in allow):
            continue
        bad.append(ln)
    return bad


def build_vfio_user_qemu():
    """The QEMU with vfio-user-pci (builds it when missing: ~5-8 min once)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build-qemu.sh")
    out = subprocess.run([script], stdout=subprocess.PIPE, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def vfio_user_qemu_or_report():
    """build_vfio_user_qemu(), or None once the failure and the test's
    summary line are printed (the caller then returns 1)."""
    try:
        return build_vfio_user_qemu()
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"FAIL building QEMU with vfio-user-pci (tests/e2e/build-qemu.sh): {e}")
        print("0 passed, 1 failed")
        return None


def scratch(prefix, file_mb):
    """A work directory under /var/tmp (a tmpfs /tmp may be too small) with
    a sparse namespace backing file ns1.img of file_mb MiB in it; returns
    (work, backing)."""
    work = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")
    backing = os.path.join(work, "ns1.img")
    with open(backing, "wb") as f:
        f.truncate(file_mb << 20)
    return work, backing


def show(title, text, tail=12):
    """The last `tail` lines of what the host printed, for the docs."""
    print(f"--- {title}")
    for ln in text.strip().splitlines()[-tail:]:
        print(f"    {ln}")
