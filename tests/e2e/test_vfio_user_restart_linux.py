#!/usr/bin/python3
"""kill -9 of nvemu-tgt under a QEMU guest's vfio-user-pci function, restart
from the autosaved configuration.

QEMU's vfio-user client has no reconnect: when the server's socket closes it
marks its proxy broken ("server closed socket") and every later message to
the server fails, so the guest's BAR reads return all-ones. The test checks
what that means for Linux: the guest's reads return an error within a bound
(no task stays blocked), QEMU keeps running, the restarted target (same
VUID, same socket path, from the autosave) accepts a new client. A
function hot-plugged again through QMP (device_del + device_add on the same
socket) would be the way back in the same guest, but QEMU 10.2 aborts on
device_del of the dead function; so a new QEMU on the same socket path shows
the same serial number, namespace identifiers and the data written before
the kill. Two guest boots.

Prints one line per check (and the guest's and QEMU's view for
docs/faults.md), then "N passed, N failed"; exits 1 on failure."""
import json
import os
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

NQN = "nqn.2016-06.io.spdk:vfurestart"
FILE_MB = 32
GUEST_MEM = "1G"
IO_TIMEOUT_MS = 5000
ERROR_BOUND_S = 60  # io_timeout, a failed reset and the removal, with room


def main():
    checks = linux_host.Checks()
    t_start = time.time()
    qemu = linux_host.vfio_user_qemu_or_report()
    if qemu is None:
        return 1
    work, backing = linux_host.scratch("nvemu-e2e-vfu-restart-", FILE_MB)
    doca_dir = os.path.join(work, "doca")
    auto = os.path.join(work, "config.json")
    env = {"NVEMU_DOCA_DIR": doca_dir}
    tgts = [harness.Target(("-m", "0x1", "--config-autosave", auto), env=env)]
    try:
        t = tgts[0]
        t.result("bdev_uring_create", {"name": "File0", "filename": backing,
                                       "block_size": 512})
        t.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                           "serial_number": "NVEMU0000VFURESTART"})
        t.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "File0"}})
        t.result("nvmf_create_transport", {"trtype": "DOCA"})
        vuid = t.result("nvmf_doca_create_function", {"dev_name": "nvemu0"})
        t.result("nvmf_subsystem_add_listener",
                 {"nqn": NQN, "listen_address": {"trtype": "DOCA", "traddr": vuid}})
        sock = os.path.join(doca_dir, vuid, "cntrl")

        def device(dev_id):
            return {"driver": "vfio-user-pci", "id": dev_id,
                    "socket": {"path": sock, "type": "unix"}}

        extra = ["-object", f"memory-backend-memfd,id=mem,size={GUEST_MEM},share=on",
                 "-machine", "memory-backend=mem",
                 "-device", json.dumps(device("nvemu0"))]
        with guest.Guest(qemu=qemu, memory=GUEST_MEM, extra_qemu_args=extra) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            st = {}
            new_dmesg = linux_host.DmesgTail(g)

            def find_controller(g, timeout=60):
                deadline = time.time() + timeout
                while time.time() < deadline:
                    out = g.check("for c in /sys/class/nvme/nvme*; do "
                                  "[ \"$(cat $c/transport 2>/dev/null)\" = pcie ] && "
                                  "echo ${c##*/}; done; true", chroot=False).split()
                    if out and g.run(f"test -b /dev/{out[0]}n1", chroot=False)[0] == 0:
                        c = out[0]
                        return {"ctrl": c, "disk": f"/dev/{c}n1",
                                "serial": g.check(f"cat /sys/class/nvme/{c}/serial",
                                                  chroot=False).strip(),
                                "wwid": g.check(f"cat /sys/block/{c}n1/wwid",
                                                chroot=False).strip()}
                    time.sleep(0.3)
                raise AssertionError("no nvme PCIe controller:\n" + g.dmesg()[-3000:])

            def sha(g, disk):
                return g.check(f"dd if={disk} bs=64k count=16 iflag=direct status=none "
                               "| sha256sum", timeout=60).split()[0]

            def probed_and_written():
                st.update(find_controller(g))
                g.check(f"dd if=/dev/urandom of={st['disk']} bs=64k count=16 oflag=direct "
                        "status=none", timeout=60)
                st["sha"] = sha(g, st["disk"])
                g.check(f"echo {IO_TIMEOUT_MS} > /sys/block/{st['ctrl']}n1/queue/io_timeout",
                        chroot=False)
                new_dmesg()

            def kill_under_reads():
                # A reader loops in the background until a read fails.
                g.check(f"setsid sh -c 'while dd if={st['disk']} of=/dev/null bs=4k "
                        "count=256 iflag=direct status=none; do :; done; "
                        "echo reader_rc=$? > /tmp/reader.done' > /dev/null 2>&1 "
                        "< /dev/null &", chroot=False)
                time.sleep(2)
                tgts[0].proc.kill()  # SIGKILL: no shutdown path runs
                tgts[0].proc.wait()
                t0 = time.time()
                rc, out = g.run(f"dd if={st['disk']} of=/dev/null bs=4k count=1 skip=7 "
                                "iflag=direct", timeout=ERROR_BOUND_S + 30, chroot=False)
                st["dd_s"] = time.time() - t0
                st["dd"] = (rc, out.strip())
                print(f"    a read after the kill: rc={rc} in {st['dd_s']:.1f}s: "
                      f"{out.strip()[-200:]}")
                assert rc != 0, "a read succeeded with the server dead"
                assert st["dd_s"] < ERROR_BOUND_S, f"the read took {st['dd_s']:.0f}s"
                deadline = time.time() + 30
                while g.run("cat /tmp/reader.done", chroot=False)[0] != 0:
                    assert time.time() < deadline, "the background reader is still blocked"
                    time.sleep(0.5)
                assert g.proc.poll() is None, "QEMU exited:\n" + open(g.qemu_log_path).read()
                msgs = new_dmesg()
                linux_host.show("guest dmesg after kill -9", msgs, tail=15)
                with open(g.qemu_log_path) as f:
                    log = f.read()
                linux_host.show("QEMU's log (first lines)", "\n".join(log.splitlines()[:4]), tail=15)
                linux_host.show("QEMU's log", log, tail=15)
                assert "blocked for more than" not in msgs, msgs

            def restart_same_socket():
                tgts.append(harness.Target(("-m", "0x1", "-c", auto, "--config-autosave", auto),
                                           env=env))
                fns = tgts[-1].result("nvmf_doca_list_functions", {"dev_name": "nvemu0"})
                assert [f["vuid"] for f in fns] == [vuid], fns
                assert os.path.exists(sock), f"{sock} is not there after the restart"
                time.sleep(3)
                # The old client does not come back by itself.
                msgs = new_dmesg()
                linux_host.show("guest dmesg 3 s after the restart", msgs or "(nothing)", tail=15)
                rc, _ = g.run(f"dd if={st['disk']} of=/dev/null bs=4k count=1 iflag=direct",
                              timeout=ERROR_BOUND_S + 30, chroot=False)
                assert rc != 0, "the old function works again: QEMU reconnected?"

            if checks.run("guest probed the function, 1 MiB written", probed_and_written):
                if checks.run("kill -9: reads fail in bound, QEMU lives, no blocked task",
                              kill_under_reads):
                    checks.run("restart from autosave: same VUID and socket, no reconnect",
                               restart_same_socket)
        if "sha" in st and len(tgts) == 2:
            # QEMU 10.2 aborts on device_del of the dead function
            # (memory_region_del_subregion assertion), so a new QEMU it is.
            with guest.Guest(qemu=qemu, memory=GUEST_MEM, extra_qemu_args=extra) as g2:
                def new_qemu_same_data():
                    c = find_controller(g2)
                    assert (c["serial"], c["wwid"]) == (st["serial"], st["wwid"]), (c, st)
                    assert sha(g2, c["disk"]) == st["sha"], "other bytes read back"
                    linux_host.fio_job(g2, c["disk"], size="8M", offset="8M", timeout=240)

                checks.run("a new QEMU on the same socket: same serial, wwid, data; fio",
                           new_qemu_same_data)
        assert tgts[-1].alive(), "nvemu-tgt died:\n" + tgts[-1].output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgts[-1].output()[-4000:])
    finally:
        for t in tgts:
            if t.alive():
                t.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed ({time.time() - t_start:.0f}s)")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
