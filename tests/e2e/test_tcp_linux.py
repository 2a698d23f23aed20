#!/usr/bin/python3
"""A real Linux host over NVMe/TCP: Debian's kernel in QEMU connects to nvemu
with its own nvme-tcp driver and Debian's nvme-cli and fio. Asserts on what
the host sees (identify fields, bytes read back, fio's verify, a hot-added
namespace) and on what reached the backing file.

Prints one line per check, then "N passed, N failed"; exits 1 on failure.
NVEMU_SOCK_IMPL=uring runs it with the target's sockets on io_uring
(sock_set_default_impl; the default is posix)."""
import hashlib
import json
import os
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import guest  # noqa: E402
import harness  # noqa: E402
import linux_host  # noqa: E402

NQN = "nqn.2016-06.io.spdk:cnode1"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
FILE_MB = 64
PATTERN_MB = 4


def configure(tgt, port, backing):
    impl = os.environ.get("NVEMU_SOCK_IMPL")
    if impl:
        tgt.result("sock_set_default_impl", {"impl_name": impl})
        tgt.result("log_set_print_level", {"level": "INFO"})  # each connection names its impl
        tgt.result("log_set_flag", {"flag": "tcp"})
    tgt.result("framework_start_init")
    tgt.result("bdev_uring_create", {"name": "File0", "filename": backing, "block_size": 512})
    tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                         "serial_number": "SPDK00000000000001",
                                         "model_number": "nvemu e2e"})
    assert tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN,
                                                "namespace": {"bdev_name": "File0"}}) == 1
    tgt.result("nvmf_create_transport", {"trtype": "TCP"})
    addr = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
    tgt.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": addr})
    tgt.result("nvmf_subsystem_add_listener", {"nqn": "nqn.2014-08.org.nvmexpress.discovery",
                                               "listen_address": addr})


def used_uring(tgt):
    assert "(io_uring)" in tgt.output(), "no connection on io_uring in the target log"


def main():
    checks = linux_host.Checks()
    port = guest.free_port()
    work, backing = linux_host.scratch("nvemu-e2e-tcp-", FILE_MB)
    pattern = os.urandom(PATTERN_MB << 20)
    pattern_path = os.path.join("/tmp", f"nvemu-e2e-pattern-{os.getpid()}")
    with open(pattern_path, "wb") as f:
        f.write(pattern)
    digest = hashlib.sha256(pattern).hexdigest()

    tgt = harness.Target(("-m", "0x1", "--wait-for-rpc"))
    try:
        configure(tgt, port, backing)
        with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)]) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            hostnqn, hostid = g.host_nqn, g.host_id
            ids = f"--hostnqn={hostnqn} --hostid={hostid}"
            state = {}

            def discover():
                out = g.check(f"nvme discover -t tcp -a {FWD_IP} -s {FWD_PORT} {ids}", timeout=60)
                assert NQN in out, out
                assert "nqn.2014-08.org.nvmexpress.discovery" in out or "subtype" in out, out

            def connect():
                g.check(f"nvme connect -t tcp -a {FWD_IP} -s {FWD_PORT} -n {NQN} {ids}",
                        timeout=60)
                state["disk"] = linux_host.find_disk(g, NQN)
                out = g.check("nvme list")
                assert state["disk"] in out and "SPDK00000000000001" in out, out

            def identify():
                disk = state["disk"]
                out = json.loads(g.check(f"nvme id-ctrl {disk} -o json"))
                assert out["sn"].strip() == "SPDK00000000000001", out["sn"]
                assert out["mn"].strip() == "nvemu e2e", out["mn"]
                assert out["subnqn"] == NQN, out["subnqn"]
                ns = json.loads(g.check(f"nvme id-ns {disk} -o json"))
                assert ns["nsze"] == (FILE_MB << 20) // 512, ns["nsze"]
                lbaf = ns["lbafs"][ns["flbas"] & 0xf]
                assert lbaf["ds"] == 9, lbaf
                smart = json.loads(g.check(f"nvme smart-log {disk} -o json"))
                assert "critical_warning" in smart, smart
                g.check(f"nvme get-feature {disk} -f 7")  # number of queues
                g.check(f"nvme list-ns {disk}")

            def dd_roundtrip():
                disk = state["disk"]
                src = g.guest_path(pattern_path)
                g.check(f"dd if={src} of={disk} bs=1M count={PATTERN_MB} oflag=direct "
                        f"conv=fsync status=none", timeout=120)
                out = g.check(f"dd if={disk} bs=1M count={PATTERN_MB} iflag=direct status=none"
                              f" | sha256sum", timeout=120)
                assert out.split()[0] == digest, f"read back {out.split()[0]} != {digest}"
                with open(backing, "rb") as f:
                    on_disk = f.read(PATTERN_MB << 20)
                assert on_disk == pattern, "the backing file does not hold the written bytes"

            def fio_verify():
                job = linux_host.fio_job(g, state["disk"], size="16M", offset="32M",
                                         timeout=240)
                assert job["read"]["io_bytes"] > 0, job["read"]

            def hot_add_namespace():
                tgt.result("bdev_malloc_create", {"name": "Hot0", "num_blocks": 16384,
                                                  "block_size": 512})
                assert tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace":
                                                            {"bdev_name": "Hot0",
                                                             "nsid": 2}}) == 2
                disk2 = state["disk"][:-1] + "2"
                for _ in range(100):
                    rc, _ = g.run(f"test -b {disk2}", chroot=False)
                    if rc == 0:
                        break
                    time.sleep(0.2)
                else:
                    raise AssertionError(f"{disk2} did not appear after the namespace was "
                                         f"added (no AEN?)")
                ns = json.loads(g.check(f"nvme id-ns {disk2} -o json"))
                assert ns["nsze"] == 16384, ns

            def disconnect():
                out = g.check(f"nvme disconnect -n {NQN}", timeout=60)
                assert "disconnected 1" in out, out
                rc, _ = g.run(f"test -b {state['disk']}", chroot=False)
                assert rc != 0, "the disk is still there after disconnect"

            def clean_dmesg():
                bad = linux_host.nvme_trouble(g)
                assert not bad, "\n".join(bad[:10])

            ok = checks.run("nvme discover", discover)
            ok = ok and checks.run("nvme connect + list", connect)
            if ok:
                checks.run("id-ctrl, id-ns, smart-log, get-feature, list-ns", identify)
                checks.run("dd pattern O_DIRECT, read back, backing file", dd_roundtrip)
                checks.run("fio --verify=crc32c randrw", fio_verify)
                checks.run("namespace hot-added over RPC appears (AEN)", hot_add_namespace)
                checks.run("no timeouts/resets in dmesg", clean_dmesg)
                checks.run("nvme disconnect", disconnect)
            assert tgt.alive(), "nvemu-tgt died:\n" + tgt.output()[-3000:]
            if os.environ.get("NVEMU_SOCK_IMPL") == "uring":
                checks.run("the connections used io_uring", used_uring, tgt)
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgt.output()[-4000:])
    finally:
        tgt.stop()
        os.unlink(pattern_path)
        try:
            os.unlink(backing)
            os.rmdir(work)
        except OSError:
            pass
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
