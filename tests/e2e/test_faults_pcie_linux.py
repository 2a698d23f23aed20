#!/usr/bin/python3
"""Faults as a real Linux host sees them on a PCIe function: a DOCA function
(vfio-user) attached to QEMU's vfio-user-pci, probed by Debian's `nvme` PCI
driver, one guest boot for every case:

  - `nvme reset`, PCIe FLR and `echo 1 > .../reset` under fio verify: 0 errors;
  - an injected Internal Error: dd fails with EIO, dmesg names the status;
  - a Read that never completes: the driver's timeout sends Abort (admin
    08h), nvemu completes the Read with Command Aborted by Request and the
    Abort with DW0 bit 0 = 0; the driver retries and dd gets the data;
  - CSTS.CFS raised, then a Read held: the timeout finds CFS, the driver
    resets the controller, the reset clears CFS and frees the held Read.

Prints one line per check (and the host's view for docs/faults.md), then
"N passed, N failed"; exits 1 on failure."""
import json
import os
import re
import shutil
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
TGT_CMD = ("-m", "0x1", "--wait-for-rpc")
FILE_MB = 64
GUEST_MEM = "1G"


def main():
    checks = linux_host.Checks()
    t_start = time.time()
    qemu = linux_host.vfio_user_qemu_or_report()
    if qemu is None:
        return 1
    work, backing = linux_host.scratch("nvemu-e2e-faults-pcie-", FILE_MB)
    doca_dir = os.path.join(work, "doca")
    tgt = harness.Target(TGT_CMD, env={"NVEMU_DOCA_DIR": doca_dir})

    def inject(**p):
        return tgt.result("nvmf_fault_inject", {"nqn": NQN, **p})

    def fault(fid):
        return [f for f in tgt.result("nvmf_fault_list") if f["id"] == fid][0]

    try:
        tgt.result("framework_start_init")
        tgt.result("bdev_uring_create", {"name": "File0", "filename": backing,
                                         "block_size": 512})
        tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True})
        tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "File0"}})
        tgt.result("nvmf_create_transport", {"trtype": "DOCA"})
        vuid = tgt.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        tgt.result("nvmf_subsystem_add_listener",
                   {"nqn": NQN, "listen_address": {"trtype": "DOCA", "traddr": vuid}})
        sock = os.path.join(doca_dir, vuid, "cntrl")
        device = json.dumps({"driver": "vfio-user-pci", "id": "nvemu0",
                             "socket": {"path": sock, "type": "unix"}})
        extra = ["-object", f"memory-backend-memfd,id=mem,size={GUEST_MEM},share=on",
                 "-machine", "memory-backend=mem", "-device", device]
        with guest.Guest(qemu=qemu, memory=GUEST_MEM, extra_qemu_args=extra) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            st = {}
            new_dmesg = linux_host.DmesgTail(g)

            def find_controller():
                for _ in range(150):
                    out = g.check("for c in /sys/class/nvme/nvme*; do "
                                  "[ \"$(cat $c/transport 2>/dev/null)\" = pcie ] && "
                                  "echo ${c##*/} $(cat $c/address); done; true",
                                  chroot=False).split()
                    if out and g.run(f"test -b /dev/{out[0]}n1", chroot=False)[0] == 0:
                        st["ctrl"], st["bdf"] = out[0], out[1]
                        st["disk"] = f"/dev/{out[0]}n1"
                        return
                    time.sleep(0.2)
                raise AssertionError("no nvme PCIe controller:\n" + g.dmesg()[-3000:])

            def probed():
                find_controller()
                g.check(f"dd if=/dev/urandom of={st['disk']} bs=1M count=4 oflag=direct "
                        "status=none", timeout=120)
                new_dmesg()

            def clean(fn):
                def run():
                    try:
                        fn()
                    finally:
                        tgt.result("nvmf_fault_clear")
                return run

            def resets_under_fio():
                pci = f"/sys/bus/pci/devices/{st['bdf']}"
                fio = (f"fio --name=verify --filename={st['disk']} --direct=1 --rw=randrw "
                       "--bs=4k --bsrange=4k-64k --iodepth=16 --ioengine=libaio --size=8M "
                       "--offset=16M --time_based=1 --runtime=25 --verify=crc32c "
                       "--do_verify=1 --verify_backlog=64 --verify_fatal=1 "
                       "--verify_state_save=0 --output-format=json")
                steps = (f"sleep 4; nvme reset /dev/{st['ctrl']}; "
                         f"sleep 4; echo flr > {pci}/reset_method; echo 1 > {pci}/reset; "
                         f"sleep 4; echo 1 > {pci}/reset")
                out = g.check(f"{fio} > /tmp/fio.json 2>&1 & pid=$!; {steps}; wait $pid; "
                              "echo fio_rc=$?; cat /tmp/fio.json", timeout=240)
                assert "fio_rc=0" in out, out[-2000:]
                job = json.loads(out[out.index("{"):])["jobs"][0]
                assert job["error"] == 0 and job["read"]["io_bytes"] > 0, job
                msgs = new_dmesg()
                linux_host.show("dmesg: nvme reset, FLR, reset under fio verify", msgs)

            def eio():
                fid = inject(action="status", queue="io", opcode=2, sc=6, dnr=True)
                rc, out = g.run(f"dd if={st['disk']} of=/dev/null bs=4k count=1 iflag=direct",
                                timeout=60)
                assert rc != 0 and "Input/output error" in out, (rc, out)
                msgs = new_dmesg()
                assert re.search(r"sct 0x0 / sc 0x6|Internal Error", msgs), msgs
                linux_host.show("dmesg", msgs)
                assert fault(fid)["hits"] >= 1
                tgt.result("nvmf_fault_clear")
                g.check(f"dd if={st['disk']} of=/dev/null bs=4k count=1 iflag=direct status=none")

            def held_read(what):
                blk = os.path.basename(st["disk"])
                g.check(f"echo 5000 > /sys/block/{blk}/queue/io_timeout", chroot=False)
                cmd = f"dd if={st['disk']} bs=4k count=1 skip=9 iflag=direct status=none | sha256sum"
                want = g.check(cmd)
                fid = inject(action="no_completion", queue="io", opcode=2, count=1)
                t0 = time.time()
                got = g.check(cmd, timeout=120)
                took = time.time() - t0
                g.check(f"echo 30000 > /sys/block/{blk}/queue/io_timeout", chroot=False)
                assert got == want, (got, want)
                assert took >= 4, f"the read came back in {took:.1f}s: it was not held"
                assert fault(fid)["hits"] == 1
                msgs = new_dmesg()
                linux_host.show(f"dmesg: {what} (dd returned the data in {took:.0f}s)", msgs)
                return msgs

            def never_completing_read():
                msgs = held_read("a Read held for good")
                assert re.search(r"timeout, aborting", msgs), msgs
                assert not re.search(r"reset", msgs), "the Abort should have been enough"
                log = g.check(f"nvme error-log /dev/{st['ctrl']} -e 1")
                assert re.search(r"status_field\s*:\s*0x7\b|0x7\(", log), log
                linux_host.show("nvme error-log", log)

            def cfs_then_held_read():
                inject(action="cfs")
                msgs = held_read("CSTS.CFS raised, then a Read held")
                assert re.search(r"CSTS=0x3|controller is down|resetting", msgs), msgs

            def fio_after():
                linux_host.fio_job(g, st["disk"], size="8M", offset="40M", timeout=240)

            if checks.run("guest nvme PCI driver probed the function", probed):
                checks.run("nvme reset + FLR + reset under fio verify: 0 errors",
                           clean(resets_under_fio))
                checks.run("injected Internal Error: EIO, dmesg; cleared: I/O ok", clean(eio))
                checks.run("Read never completes: timeout -> Abort -> retried, data",
                           clean(never_completing_read))
                checks.run("CFS + a held Read: timeout sees CFS, reset, data",
                           clean(cfs_then_held_read))
                checks.run("fio verify after everything", fio_after)
            assert tgt.alive(), "nvemu-tgt died:\n" + tgt.output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgt.output()[-4000:])
    finally:
        tgt.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed ({time.time() - t_start:.0f}s)")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
