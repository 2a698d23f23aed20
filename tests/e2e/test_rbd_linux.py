#!/usr/bin/python3
"""A namespace on a real Ceph RBD image, seen by a real Linux host.

The test starts a single-node Ceph cluster (tests/system/ceph_cluster.py),
creates an image, and gives it to nvemu-tgt with the record's subsystem:
bdev_rbd_register_cluster, bdev_rbd_create, nvmf_subsystem_add_ns, a TCP
listener. Debian's kernel in QEMU connects over NVMe/TCP and writes a pattern
with dd (O_DIRECT, fsync) and reads it back, runs fio verify; then the image
itself, read with `rbd export` outside nvemu, must hold the pattern.

Prints one line per check, then "N passed, N failed"; exits 1 on failure."""
import hashlib
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import guest  # noqa: E402
import harness  # noqa: E402
import linux_host  # noqa: E402
from ceph_cluster import CephCluster  # noqa: E402

NQN = "nqn.2016-06.io.spdk:cnode1"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
IMAGE, IMAGE_MB = "nvemu-e2e", 64
PATTERN_MB = 4
MiB = 1 << 20


def configure(tgt, ceph, port):
    tgt.result("framework_start_init")
    tgt.result("bdev_rbd_register_cluster", {"name": "ceph0", "config_file": ceph.conf,
                                             "key_file": ceph.keyring})
    assert tgt.result("bdev_rbd_create", {"name": "Rbd0", "pool_name": ceph.pool,
                                          "rbd_name": IMAGE, "block_size": 512,
                                          "cluster_name": "ceph0"}) == "Rbd0"
    tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                         "serial_number": "SPDK00000000000001"})
    assert tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {
        "bdev_name": "Rbd0"}}) == 1
    tgt.result("nvmf_create_transport", {"trtype": "TCP"})
    tgt.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


def main():
    checks = linux_host.Checks()
    pattern = os.urandom(PATTERN_MB * MiB)
    pattern_path = os.path.join("/tmp", f"nvemu-e2e-rbd-{os.getpid()}")
    with open(pattern_path, "wb") as f:
        f.write(pattern)
    digest = hashlib.sha256(pattern).hexdigest()
    port = guest.free_port()
    tgt = None
    try:
        with CephCluster() as ceph:
            ceph.create_image(IMAGE, IMAGE_MB)
            tgt = harness.Target(("-m", "0x1", "--wait-for-rpc"))
            configure(tgt, ceph, port)
            with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)]) as g:
                print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
                st = {}

                def connect():
                    st["disk"] = linux_host.connect_tcp(g, FWD_IP, FWD_PORT, NQN)
                    size = int(g.check(f"blockdev --getsize64 {st['disk']}"))
                    assert size == IMAGE_MB * MiB, f"the host sees {size} bytes"

                def dd_and_image():
                    linux_host.dd_roundtrip(g, st["disk"], pattern_path, digest, PATTERN_MB)
                    # dd's fsync was a FLUSH: the bytes must be in the cluster now.
                    image = ceph.read_image(IMAGE)
                    assert image[:PATTERN_MB * MiB] == pattern, \
                        "the RBD image does not hold the bytes the host wrote"

                def fio_verify():
                    job = linux_host.fio_job(g, st["disk"], size="8M", offset="16M",
                                             timeout=300)
                    assert job["read"]["io_bytes"] > 0, job["read"]

                def iostat_counts():
                    s = tgt.result("bdev_get_iostat", {"name": "Rbd0"})["bdevs"][0]
                    assert s["num_write_ops"] >= PATTERN_MB and s["num_read_ops"] > 0, s

                def host_saw_no_errors():
                    bad = linux_host.nvme_trouble(g)
                    assert not bad, "\n".join(bad[:10])

                if checks.run("connect: the host sees the image's size", connect):
                    checks.run("dd read-back, and the image holds the bytes", dd_and_image)
                    checks.run("fio --verify=crc32c on the RBD namespace", fio_verify)
                    checks.run("bdev_get_iostat counted the host's I/O", iostat_counts)
                    checks.run("the host saw no timeout, reset or I/O error",
                               host_saw_no_errors)
                    g.check(f"nvme disconnect -n {NQN}", timeout=60)
            assert tgt.alive(), "nvemu-tgt died:\n" + tgt.output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        if tgt:
            print(tgt.output()[-4000:])
    finally:
        if tgt:
            tgt.stop()
        os.unlink(pattern_path)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
