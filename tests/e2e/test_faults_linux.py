#!/usr/bin/python3
"""Faults as a real Linux host sees them, over NVMe/TCP (Debian's kernel in
QEMU, its nvme-tcp driver, nvme-cli, fio), one guest boot for every case:

  - an injected media error: dd fails with EIO, dmesg names the status,
    `nvme error-log` lists it; cleared, I/O works again;
  - `nvme reset` of the controller, three times, under fio verify: 0 errors;
  - a target-initiated disconnect (drop_connection) under fio verify: the
    host reconnects (ctrl-loss-tmo) and fio finishes with 0 errors;
  - a Keep Alive that never completes: the host's keep-alive timeout runs
    its error recovery, reconnects, and I/O resumes;
  - a Read that never completes: the host's I/O timeout runs error recovery
    (NVMe/TCP: reconnect), the read is retried and returns the data; nvemu
    frees the held command and its queues.

Prints one line per check (and the host's view for docs/faults.md), then
"N passed, N failed"; exits 1 on failure."""
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "system"))
import guest  # noqa: E402
import harness  # noqa: E402
import linux_host  # noqa: E402

NQN = "nqn.2016-06.io.spdk:faults"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
FILE_MB = 64


def configure(tgt, port, backing):
    tgt.result("framework_start_init")
    tgt.result("bdev_uring_create", {"name": "File0", "filename": backing, "block_size": 512})
    tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                         "serial_number": "NVEMUFAULTS0001"})
    tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "File0"}})
    tgt.result("nvmf_create_transport", {"trtype": "TCP"})
    tgt.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}})


def show(title, text):
    """The host's view, for docs/faults.md."""
    print(f"--- {title}")
    lines = [ln for ln in text.strip().splitlines() if "requeuing" not in ln]
    for ln in lines[-12:]:
        print(f"    {ln}")


def main():
    checks = linux_host.Checks()
    port = guest.free_port()
    work, backing = linux_host.scratch("nvemu-e2e-faults-", FILE_MB)
    tgt = harness.Target(("-m", "0x1", "--wait-for-rpc"))

    def inject(**p):
        return tgt.result("nvmf_fault_inject", {"nqn": NQN, **p})

    def fault(fid):
        return [f for f in tgt.result("nvmf_fault_list") if f["id"] == fid][0]

    try:
        configure(tgt, port, backing)
        with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)]) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            st = {}
            new_dmesg = linux_host.DmesgTail(g)

            def ctrl_state():
                return g.check(f"cat /sys/class/nvme/{st['ctrl']}/state", chroot=False).strip()

            def wait_live(timeout=90):
                deadline = time.time() + timeout
                while time.time() < deadline:
                    if ctrl_state() == "live":
                        return
                    time.sleep(0.5)
                raise AssertionError(f"{st['ctrl']} is {ctrl_state()}, not live")

            def connect():
                st["disk"] = linux_host.connect_tcp(
                    g, FWD_IP, FWD_PORT, NQN,
                    "--ctrl-loss-tmo=-1 --reconnect-delay=1 --keep-alive-tmo=5")
                st["ctrl"] = g.check(
                    "for d in /sys/class/nvme-subsystem/*; do "
                    f"[ \"$(cat $d/subsysnqn)\" = {NQN} ] && ls $d | grep -E '^nvme[0-9]+$'; "
                    "done; true", chroot=False).split()[0]
                g.check(f"dd if=/dev/urandom of={st['disk']} bs=1M count=4 oflag=direct "
                        "status=none", timeout=120)
                new_dmesg()

            def eio_then_recovery():
                disk = st["disk"]
                # A media error is ENODATA to the block layer; Internal Error is EIO.
                fid = inject(action="status", queue="io", opcode=2, sct=2, sc=0x81, dnr=True)
                rc, out = g.run(f"dd if={disk} of=/dev/null bs=4k count=1 iflag=direct", timeout=60)
                assert rc != 0 and "No data available" in out, (rc, out)
                show("dd under an injected Unrecovered Read Error", out)
                tgt.result("nvmf_fault_clear", {"id": fid})
                fid = inject(action="status", queue="io", opcode=2, sct=0, sc=0x06, dnr=True)
                rc, out = g.run(f"dd if={disk} of=/dev/null bs=4k count=1 iflag=direct", timeout=60)
                assert rc != 0 and "Input/output error" in out, (rc, out)
                show("dd under an injected Internal Error", out)
                msgs = new_dmesg()
                assert re.search(r"sct 0x2 / sc 0x81|Unrecovered Read Error", msgs), msgs
                assert re.search(r"sct 0x0 / sc 0x6|Internal Error", msgs), msgs
                show("dmesg", msgs)
                log = g.check(f"nvme error-log /dev/{st['ctrl']} -e 2")
                assert re.search(r"status_field\s*:\s*0x(4|c)?281|0x4281|0x8102|0x81", log), log
                show("nvme error-log", log)
                smart = g.check(f"nvme smart-log /dev/{st['ctrl']}")
                m = re.search(r"num_err_log_entries\s*:\s*(\d+)", smart)
                assert m and int(m.group(1)) >= 1, smart
                show("nvme smart-log (errors)", "\n".join(
                    ln for ln in smart.splitlines() if "err" in ln.lower()))
                assert fault(fid)["hits"] >= 1
                tgt.result("nvmf_fault_clear", {"id": fid})
                g.check(f"dd if={disk} of=/dev/null bs=4k count=1 iflag=direct status=none")

            def resets_under_fio():
                # The guest runs one command at a time: fio and the resets
                # share one shell there.
                fio = (f"fio --name=verify --filename={st['disk']} --direct=1 --rw=randrw "
                       "--bs=4k --bsrange=4k-64k --iodepth=16 --ioengine=libaio --size=8M "
                       "--offset=16M --time_based=1 --runtime=25 --verify=crc32c "
                       "--do_verify=1 --verify_backlog=64 --verify_fatal=1 "
                       "--verify_state_save=0 --output-format=json")
                resets = "; ".join([f"sleep 4; nvme reset /dev/{st['ctrl']}; "
                                    f"cat /sys/class/nvme/{st['ctrl']}/state"] * 3)
                out = g.check(f"{fio} > /tmp/fio.json 2>&1 & pid=$!; {resets}; wait $pid; "
                              "echo fio_rc=$?; cat /tmp/fio.json", timeout=240)
                assert "fio_rc=0" in out, out[-2000:]
                job = json.loads(out[out.index("{"):])["jobs"][0]
                assert job["error"] == 0 and job["read"]["io_bytes"] > 0, job
                wait_live()
                msgs = new_dmesg()
                assert msgs.count("resetting controller") >= 3, msgs
                show("dmesg during nvme reset x3 under fio verify", msgs)

            def drop_connection_under_fio():
                bg = linux_host.Background(lambda: linux_host.fio_job(
                    g, st["disk"], size="8M", offset="24M", runtime=20, timeout=240))
                time.sleep(5)
                fid = inject(action="drop_connection")
                assert fault(fid)["hits"] == 1
                job = bg.join(240)
                assert job["error"] == 0, job
                wait_live()
                msgs = new_dmesg()
                assert re.search(r"reconnect", msgs, re.I), msgs
                show("dmesg after drop_connection", msgs)
                tgt.result("nvmf_fault_clear", {"id": fid})

            def keep_alive_expiry():
                fid = inject(action="no_completion", queue="admin", opcode=0x18, count=1)
                msgs = ""
                deadline = time.time() + 60
                while time.time() < deadline and "reconnect" not in msgs.lower():
                    time.sleep(1)
                    msgs += new_dmesg() + "\n"
                wait_live()
                assert fault(fid)["hits"] == 1, fault(fid)
                assert re.search(r"keep.?alive", msgs, re.I), msgs
                show("dmesg after a Keep Alive that never completes", msgs)
                g.check(f"dd if={st['disk']} of=/dev/null bs=4k count=16 iflag=direct "
                        "status=none", timeout=60)
                tgt.result("nvmf_fault_clear", {"id": fid})

            def never_completing_read():
                disk = st["disk"]
                # The multipath head is bio-based: the path device has the timeout.
                tmo = f"/sys/class/nvme/{st['ctrl']}/{st['ctrl']}c*n1/queue/io_timeout"
                g.check(f"for f in {tmo}; do echo 5000 > $f; done", chroot=False)
                want = g.check(f"dd if={disk} bs=4k count=1 skip=7 iflag=direct status=none "
                               "| sha256sum")
                fid = inject(action="no_completion", queue="io", opcode=2, count=1)
                t0 = time.time()
                got = g.check(f"dd if={disk} bs=4k count=1 skip=7 iflag=direct status=none "
                              "| sha256sum", timeout=120)
                took = time.time() - t0
                assert got == want, (got, want)
                assert took >= 4, f"the read came back in {took:.1f}s: it was not held"
                assert fault(fid)["hits"] == 1
                wait_live()
                msgs = new_dmesg()
                assert re.search(r"timeout|timed out", msgs, re.I), msgs
                show(f"dmesg: a Read held for good (dd returned the data in {took:.0f}s)", msgs)
                tgt.result("nvmf_fault_clear", {"id": fid})
                # nvemu let go of the held command's queue: only the live
                # association's qpairs are left, none held.
                qps = tgt.result("nvmf_subsystem_get_qpairs", {"nqn": NQN})
                ctrls = tgt.result("nvmf_subsystem_get_controllers", {"nqn": NQN})
                assert len(ctrls) == 1, ctrls
                assert all(q["cntlid"] == ctrls[0]["cntlid"] for q in qps), qps
                g.check(f"for f in {tmo}; do echo 30000 > $f; done", chroot=False)

            def fio_after_all():
                linux_host.fio_job(g, st["disk"], size="8M", offset="40M", timeout=240)

            def disconnect():
                out = g.check(f"nvme disconnect -n {NQN}", timeout=60)
                assert "disconnected 1" in out, out
                deadline = time.time() + 10
                while time.time() < deadline and tgt.result(
                        "nvmf_subsystem_get_controllers", {"nqn": NQN}):
                    time.sleep(0.2)
                assert not tgt.result("nvmf_subsystem_get_qpairs", {"nqn": NQN})

            def clean(fn):
                def run():
                    try:
                        fn()
                    finally:
                        tgt.result("nvmf_fault_clear")
                        new_dmesg()
                return run

            if checks.run("nvme connect --ctrl-loss-tmo=-1", connect):
                checks.run("injected media error: EIO, dmesg, error-log, smart; cleared: I/O ok",
                           clean(eio_then_recovery))
                checks.run("nvme reset x3 under fio verify: 0 errors", clean(resets_under_fio))
                checks.run("drop_connection under fio verify: reconnect, 0 errors",
                           clean(drop_connection_under_fio))
                checks.run("Keep Alive never completes: recovery, I/O resumes",
                           clean(keep_alive_expiry))
                checks.run("Read never completes: timeout, reconnect, data; nvemu frees it",
                           clean(never_completing_read))
                checks.run("fio verify after everything", fio_after_all)
                checks.run("nvme disconnect: nothing left on the target", disconnect)
            assert tgt.alive(), "nvemu-tgt died:\n" + tgt.output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgt.output()[-4000:])
    finally:
        tgt.stop()
        try:
            os.unlink(backing)
            os.rmdir(work)
        except OSError:
            pass
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
