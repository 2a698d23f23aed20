#!/usr/bin/python3
"""Namespaces that live on another NVMe-oF target, seen by a real Linux host.

Target A serves a file-backed namespace over NVMe/TCP (through two loopback
forwarders the test can cut: two network paths) and another one as a PCIe
function over vfio-user. Target B attaches the first with bdev_nvme over TCP
with two paths (multipath failover) and the second over vfio-user, and
exports each in a subsystem of its own over NVMe/TCP. (Two namespaces, not
one exported twice: Linux ignores a namespace whose IDs another subsystem
already showed it.) Debian's kernel in QEMU connects to
B and checks, through the chain:

* dd of a pattern and its read-back, and the same bytes in A's backing file,
  and A's iostat counting the writes (over the TCP and the vfio-user chain);
* fio verify over both chains;
* failover: one of B's two paths to A is cut while fio verifies — 0 errors,
  and B's controller now runs on the other path;
* reconnect: A is killed (SIGKILL) while fio verifies and restarted on the
  same address within ctrlr_loss_timeout_sec — B queues the I/O, reconnects,
  and fio finishes with 0 errors; the host sees no I/O error.

Prints one line per check, then "N passed, N failed"; exits 1 on failure."""
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import guest  # noqa: E402
import harness  # noqa: E402
import linux_host  # noqa: E402
from tcp_proxy import TcpProxy  # noqa: E402

NQN_A = "nqn.2016-06.io.spdk:remote"
NQN_FN = "nqn.2016-06.io.spdk:remote-function"
NQN_TCP = "nqn.2016-06.io.spdk:chain-tcp"
NQN_VFU = "nqn.2016-06.io.spdk:chain-vfiouser"
NS_UUID = "6e76656d-7500-4e53-8000-00000000a001"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
FILE_MB = 64
PATTERN_MB = 4
MiB = 1 << 20


def start_a(port, backing, fn_backing):
    """Target A: one file namespace over TCP and, when fn_backing is given,
    another behind a PCIe function. Returns (target, function dir or None)."""
    a = harness.Target(("-m", "0x1", "--wait-for-rpc"))
    a.result("framework_start_init")
    a.result("bdev_uring_create", {"name": "File0", "filename": backing, "block_size": 512})
    a.result("nvmf_create_subsystem", {"nqn": NQN_A, "allow_any_host": True,
                                       "serial_number": "REMOTE000000001"})
    # The namespace's identity is explicit, so A restarted is the same namespace.
    assert a.result("nvmf_subsystem_add_ns", {"nqn": NQN_A, "namespace": {
        "bdev_name": "File0", "uuid": NS_UUID}}) == 1
    a.result("nvmf_create_transport", {"trtype": "TCP"})
    a.result("nvmf_subsystem_add_listener", {"nqn": NQN_A, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})
    if not fn_backing:
        return a, None
    a.result("bdev_uring_create", {"name": "File1", "filename": fn_backing,
                                   "block_size": 512})
    a.result("nvmf_create_subsystem", {"nqn": NQN_FN, "allow_any_host": True,
                                       "serial_number": "REMOTE000000002"})
    assert a.result("nvmf_subsystem_add_ns", {"nqn": NQN_FN, "namespace": {
        "bdev_name": "File1"}}) == 1
    manager = a.result("nvmf_doca_get_managers")[0]["name"]
    a.result("nvmf_create_transport", {"trtype": "DOCA"})
    vuid = a.result("nvmf_doca_create_function", {"dev_name": manager})
    a.result("nvmf_subsystem_add_listener", {"nqn": NQN_FN, "listen_address": {
        "trtype": "DOCA", "traddr": vuid}})
    fn = [f for f in a.result("nvmf_doca_list_functions", {"dev_name": manager})
          if f["vuid"] == vuid][0]
    return a, os.path.dirname(fn["socket"])


def configure_b(b, paths, vfu_dir, port):
    b.result("framework_start_init")
    common = {"name": "Nvme0", "trtype": "tcp", "adrfam": "ipv4", "traddr": "127.0.0.1",
              "subnqn": NQN_A, "multipath": "failover", "ctrlr_loss_timeout_sec": 60,
              "reconnect_delay_sec": 1, "fast_io_fail_timeout_sec": 0}
    names = b.result("bdev_nvme_attach_controller", {**common, "trsvcid": str(paths[0].port)})
    assert names == ["Nvme0n1"], names
    # A second path to the same controller makes no new bdev (SPDK answers []).
    names = b.result("bdev_nvme_attach_controller", {**common, "trsvcid": str(paths[1].port)})
    assert names == [], names
    names = b.result("bdev_nvme_attach_controller", {
        "name": "Nvme1", "trtype": "vfiouser", "traddr": vfu_dir, "subnqn": NQN_FN})
    assert names == ["Nvme1n1"], names
    b.result("nvmf_create_transport", {"trtype": "TCP"})
    addr = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
    for nqn, bdev in ((NQN_TCP, "Nvme0n1"), (NQN_VFU, "Nvme1n1")):
        b.result("nvmf_create_subsystem", {"nqn": nqn, "allow_any_host": True})
        assert b.result("nvmf_subsystem_add_ns", {"nqn": nqn, "namespace": {
            "bdev_name": bdev}}) == 1
        b.result("nvmf_subsystem_add_listener", {"nqn": nqn, "listen_address": addr})


def writes_on(tgt, bdev):
    return tgt.result("bdev_get_iostat", {"name": bdev})["bdevs"][0]["num_write_ops"]


def active_port(b, name):
    ctrlrs = b.result("bdev_nvme_get_controllers", {"name": name})[0]["ctrlrs"]
    return ctrlrs[0]["trid"]["trsvcid"]


def main():
    checks = linux_host.Checks()
    work = tempfile.mkdtemp(prefix="nvemu-e2e-remote-", dir="/var/tmp")
    backing = os.path.join(work, "remote.img")
    fn_backing = os.path.join(work, "function.img")
    for path in (backing, fn_backing):
        with open(path, "wb") as f:
            f.truncate(FILE_MB * MiB)
    pattern = os.urandom(PATTERN_MB * MiB)
    pattern_path = os.path.join("/tmp", f"nvemu-e2e-remote-{os.getpid()}")
    with open(pattern_path, "wb") as f:
        f.write(pattern)
    digest = hashlib.sha256(pattern).hexdigest()

    port_a, port_b = guest.free_port(), guest.free_port()
    a, vfu_dir = start_a(port_a, backing, fn_backing)
    paths = [TcpProxy(port_a), TcpProxy(port_a)]
    b = harness.Target(("-m", "0x1", "--wait-for-rpc"))
    st = {"a": a}
    try:
        configure_b(b, paths, vfu_dir, port_b)
        with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port_b)]) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)

            def chain(nqn, bdev_on_b, a_bdev, a_file, seek_mb, fio_offset):
                before = writes_on(st["a"], a_bdev)
                disk = linux_host.connect_tcp(g, FWD_IP, FWD_PORT, nqn)
                st[nqn] = disk
                linux_host.dd_roundtrip(g, disk, pattern_path, digest, PATTERN_MB, seek_mb)
                with open(a_file, "rb") as f:
                    f.seek(seek_mb * MiB)
                    assert f.read(PATTERN_MB * MiB) == pattern, \
                        "A's backing file does not hold the bytes the host wrote through B"
                after = writes_on(st["a"], a_bdev)
                assert after - before >= PATTERN_MB, f"A counted {after - before} writes"
                assert writes_on(b, bdev_on_b) >= PATTERN_MB
                linux_host.fio_verify(g, disk, size="8M", offset=fio_offset)

            def failover():
                assert active_port(b, "Nvme0") == str(paths[0].port)
                disk = st[NQN_TCP]
                job = linux_host.Background(lambda: linux_host.fio_job(
                    g, disk, size="8M", offset="8M", rw="randwrite", runtime=15))
                time.sleep(5)
                paths[0].cut()
                job.join(120)
                assert active_port(b, "Nvme0") == str(paths[1].port), \
                    "B's controller did not move to the second path"
                paths[0].mend()

            def reconnect_after_kill():
                disk = st[NQN_TCP]
                job = linux_host.Background(lambda: linux_host.fio_job(
                    g, disk, size="8M", offset="16M", rw="randwrite", runtime=20))
                time.sleep(5)
                st["a"].proc.kill()
                st["a"].proc.wait()
                st["a"].stop()
                time.sleep(2)
                st["a"], _ = start_a(port_a, backing, None)
                job.join(180)
                assert writes_on(st["a"], "File0") > 0, "no write reached the restarted A"
                state = b.result("bdev_nvme_get_controllers", {"name": "Nvme0"})[0]
                assert state["ctrlrs"][0]["state"] == "enabled", state

            def host_saw_no_errors():
                bad = linux_host.nvme_trouble(g)
                assert not bad, "\n".join(bad[:10])

            ok = checks.run("TCP chain: dd read-back, A's file and iostat, fio verify",
                            chain, NQN_TCP, "Nvme0n1", "File0", backing, 0, "8M")
            checks.run("vfio-user chain: dd read-back, A's file and iostat, fio verify",
                       chain, NQN_VFU, "Nvme1n1", "File1", fn_backing, 0, "8M")
            if ok:
                # The vfio-user attachment cannot outlive A's restart (its
                # function is gone); let the host go first.
                g.check(f"nvme disconnect -n {NQN_VFU}", timeout=60)
                checks.run("failover: one path cut under fio verify", failover)
                checks.run("reconnect: A killed and restarted under fio verify",
                           reconnect_after_kill)
                checks.run("the host saw no timeout, reset or I/O error", host_saw_no_errors)
            for t, name in ((st["a"], "A"), (b, "B")):
                assert t.alive(), f"target {name} died:\n" + t.output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print("--- B ---\n" + b.output()[-4000:])
        print("--- A ---\n" + st["a"].output()[-2000:])
    finally:
        b.stop()
        st["a"].stop()
        for p in paths:
            p.close()
        os.unlink(pattern_path)
        subprocess.run(["rm", "-rf", work])
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
