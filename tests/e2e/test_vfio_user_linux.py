#!/usr/bin/python3
"""A real Linux host sees nvemu's emulated NVMe PCIe function.

The record's DOCA flow, to the end: nvemu-tgt started with the record's
command line (less -s), a file-backed (io_uring) namespace, `nvmf_create_transport -t
DOCA`, a function created on the emulation manager and plugged with
`nvmf_subsystem_add_listener -t DOCA -a VUID`. QEMU (10.2, built by
build-qemu.sh) attaches the function's vfio-user socket as a PCIe device
(`vfio-user-pci`, guest RAM in a shared memfd so nvemu can DMA into it), and
Debian's kernel probes it with its own `nvme` PCI driver. The checks are on
what the guest sees (PCI IDs, identify fields, bytes read back, fio's verify,
MSI-X interrupt counts, a clean kernel log), on what reached the backing
file, and on the function's state as the DOCA RPCs report it (a held
function refuses to be destroyed, with the reason).

Prints one line per check, then "N passed, N failed"; exits 1 on failure."""
import hashlib
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

NQN = "nqn.2016-06.io.spdk:cnode1"
# The record's command line without "-s 1024": nvemu needs no hugepages, and
# a machine whose hugepage pool is configured but busy would refuse -s.
TGT_CMD = ("-m", "0x3", "--main-core", "0", "--no-pci", "--wait-for-rpc")
FILE_MB = 64
PATTERN_MB = 4
GUEST_MEM = "1G"
EBUSY = -16


def configure(tgt, backing):
    """The record's steps 6-10, then the step that failed there and the rest."""
    tgt.result("framework_start_init")
    tgt.result("bdev_uring_create", {"name": "File0", "filename": backing, "block_size": 512})
    tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                         "serial_number": "SPDK00000000000001",
                                         "model_number": "nvemu e2e"})
    assert tgt.result("nvmf_subsystem_add_ns",
                      {"nqn": NQN, "namespace": {"bdev_name": "File0"}}) == 1
    manager = tgt.result("nvmf_doca_get_managers")[0]["name"]
    assert tgt.result("nvmf_create_transport", {"trtype": "DOCA"}) is True
    vuid = tgt.result("nvmf_doca_create_function", {"dev_name": manager})
    assert tgt.result("nvmf_subsystem_add_listener",
                      {"nqn": NQN, "listen_address": {"trtype": "DOCA", "traddr": vuid}}) is True
    return manager, vuid


def function_state(tgt, manager, vuid):
    fns = [f for f in tgt.result("nvmf_doca_list_functions", {"dev_name": manager})
           if f["vuid"] == vuid]
    assert len(fns) == 1, fns
    return fns[0]


def nvme_irqs(g):
    """{irq name: total count} of the nvme lines in the guest's /proc/interrupts."""
    out = g.check("cat /proc/interrupts", chroot=False)
    irqs = {}
    for ln in out.splitlines():
        if "nvme" not in ln:
            continue
        parts = ln.split()
        counts = [int(p) for p in parts[1:] if p.isdigit()]
        irqs[parts[-1]] = (sum(counts), ln)
    return irqs


def main():
    checks = linux_host.Checks()
    t_start = time.time()
    qemu = linux_host.vfio_user_qemu_or_report()
    if qemu is None:
        return 1
    print(f"qemu: {qemu} (ready in {time.time() - t_start:.1f}s)", flush=True)

    work, backing = linux_host.scratch("nvemu-e2e-vfu-", FILE_MB)
    doca_dir = os.path.join(work, "doca")
    pattern = os.urandom(PATTERN_MB << 20)
    pattern_path = os.path.join("/tmp", f"nvemu-e2e-vfu-pattern-{os.getpid()}")
    with open(pattern_path, "wb") as f:
        f.write(pattern)
    digest = hashlib.sha256(pattern).hexdigest()

    tgt = harness.Target(TGT_CMD, env={"NVEMU_DOCA_DIR": doca_dir})
    try:
        manager, vuid = configure(tgt, backing)
        sock = function_state(tgt, manager, vuid)["socket"]
        assert sock == os.path.join(doca_dir, vuid, "cntrl") and os.path.exists(sock), sock
        print(f"function {vuid} of {manager} plugged at {sock}", flush=True)
        device = json.dumps({"driver": "vfio-user-pci", "id": "nvemu0",
                             "socket": {"path": sock, "type": "unix"}})
        extra = ["-object", f"memory-backend-memfd,id=mem,size={GUEST_MEM},share=on",
                 "-machine", "memory-backend=mem", "-device", device]
        # One vCPU, as test_tcp_linux: TCG with two vCPUs froze a guest's
        # second vCPU twice in ~350 boots (lost LAPIC timer wake-ups). More
        # queues come from the driver's write_queues parameter instead.
        with guest.Guest(qemu=qemu, memory=GUEST_MEM, extra_qemu_args=extra) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            state = {}

            def find_controller():
                """The nvme PCIe controller and its namespace, once the driver is done."""
                for _ in range(150):
                    out = g.check("for c in /sys/class/nvme/nvme*; do "
                                  "[ \"$(cat $c/transport 2>/dev/null)\" = pcie ] && "
                                  "echo ${c##*/} $(cat $c/address); done; true",
                                  chroot=False).split()
                    if out and g.run(f"test -b /dev/{out[0]}n1", chroot=False)[0] == 0:
                        state["ctrl"], state["bdf"] = out[0], out[1]
                        state["disk"] = f"/dev/{out[0]}n1"
                        return
                    time.sleep(0.2)
                raise AssertionError("no nvme PCIe controller with a namespace:\n"
                                     + g.dmesg()[-3000:])

            def expect_state(want, timeout=10.0):
                wait_until(lambda: function_state(tgt, manager, vuid)["state"] == want,
                             f"function state '{want}'", timeout)
                f = function_state(tgt, manager, vuid)
                assert f["host_pid"] == g.proc.pid, (f, g.proc.pid)

            def pattern_reads_back():
                out = g.check(f"dd if={state['disk']} bs=1M count={PATTERN_MB} iflag=direct "
                              f"status=none | sha256sum", timeout=120)
                assert out.split()[0] == digest, f"read back {out.split()[0]} != {digest}"

            def probed():
                # The kernel's nvme PCI driver bound the function: nvmeN with a
                # pcie transport, and its namespace block device.
                find_controller()
                pci = g.check(f"d=/sys/bus/pci/devices/{state['bdf']}; "
                              f"cat $d/vendor $d/device $d/class; ls -l $d/driver",
                              chroot=False)
                assert "0x010802" in pci, pci            # NVMe class code
                assert re.search(r"driver -> .*/nvme$", pci, re.M), pci

            def identify():
                disk, ctrl = state["disk"], "/dev/" + state["ctrl"]
                out = json.loads(g.check(f"nvme id-ctrl {ctrl} -o json"))
                assert out["sn"].strip() == "SPDK00000000000001", out["sn"]
                assert out["mn"].strip() == "nvemu e2e", out["mn"]
                assert out["subnqn"] == NQN, out["subnqn"]
                ns = json.loads(g.check(f"nvme id-ns {disk} -o json"))
                assert ns["nsze"] == (FILE_MB << 20) // 512, ns["nsze"]
                lbaf = ns["lbafs"][ns["flbas"] & 0xf]
                assert lbaf["ds"] == 9, lbaf
                out = g.check("nvme list")
                assert disk in out and "SPDK00000000000001" in out, out

            def function_enabled():
                expect_state("enabled", timeout=1)

            def destroy_refused(want_state):
                r = tgt.call("nvmf_doca_destroy_function", {"dev_name": manager, "vuid": vuid})
                assert "error" in r, r
                e = r["error"]
                assert e["code"] == EBUSY, e
                for part in (vuid, f"'{want_state}'", f"pid {g.proc.pid}",
                             "nvmf_subsystem_remove_listener"):
                    assert part in e["message"], e["message"]
                print(f"     refused: {e['message']}", flush=True)
                assert function_state(tgt, manager, vuid)["state"] == want_state

            def irqs_before():
                irqs = nvme_irqs(g)
                lines = "\n".join(ln for _, ln in irqs.values())
                # One vector per queue: admin + one I/O queue (one vCPU).
                assert len(irqs) == 2, lines
                # x86 shows MSI and MSI-X alike ("PCI-MSI"); sysfs tells them apart.
                kinds = g.check(f"for i in /sys/bus/pci/devices/{state['bdf']}/msi_irqs/*; do "
                                f"echo ${{i##*/}} $(cat $i); done", chroot=False).split("\n")
                kinds = dict(ln.split() for ln in kinds if ln.strip())
                assert kinds and set(kinds.values()) == {"msix"}, (kinds, lines)
                assert all(ln.split(":")[0].strip() in kinds for _, ln in irqs.values()), \
                    (kinds, lines)
                total = sum(c for c, _ in irqs.values())
                assert total > 0, lines
                state["irqs"] = total
                print(f"     {len(irqs)} MSI-X vectors ({', '.join(sorted(irqs))}), "
                      f"{total} interrupts so far", flush=True)

            def dd_roundtrip():
                disk = state["disk"]
                src = g.guest_path(pattern_path)
                g.check(f"dd if={src} of={disk} bs=1M count={PATTERN_MB} oflag=direct "
                        f"conv=fsync status=none", timeout=120)
                pattern_reads_back()
                with open(backing, "rb") as f:
                    on_disk = f.read(PATTERN_MB << 20)
                assert on_disk == pattern, "the backing file does not hold the written bytes"

            def fio_verify(offset_mb=32):
                job = linux_host.fio_job(g, state["disk"], size="16M", offset=f"{offset_mb}M",
                                         timeout=240)
                assert job["read"]["io_bytes"] > 0, job["read"]
                print(f"     fio: read {job['read']['io_bytes'] >> 10} KiB "
                      f"({job['read']['iops']:.0f} IOPS), write "
                      f"{job['write']['io_bytes'] >> 10} KiB ({job['write']['iops']:.0f} IOPS)",
                      flush=True)

            def irqs_after():
                irqs = nvme_irqs(g)
                total = sum(c for c, _ in irqs.values())
                assert total > state["irqs"], f"{total} <= {state['irqs']} after I/O"
                per = ", ".join(f"{n} {c}" for n, (c, _) in sorted(irqs.items()))
                print(f"     nvme MSI-X interrupts: {state['irqs']} -> {total} ({per})",
                      flush=True)

            def bad_dmesg_lines(allow_resets):
                bad = []
                for ln in g.dmesg().splitlines():
                    if "command line" in ln.lower():
                        continue
                    if allow_resets and "resetting controller" in ln:
                        continue
                    if re.search(r"nvme.*(timeout|reset|I/O error|failed|inaccessible)", ln,
                                 re.I):
                        bad.append(ln)
                return bad

            def clean_dmesg():
                bad = bad_dmesg_lines(allow_resets=False)
                assert not bad, "\n".join(bad[:10])

            def resets():
                # Controller reset (CC.EN 1->0->1) and PCIe Function Level Reset
                # (vfio-user DEVICE_RESET / DevCtl.IFLR), with data intact after each.
                ctrl = "/dev/" + state["ctrl"]
                g.check(f"nvme reset {ctrl}", timeout=60)
                find_controller()
                pattern_reads_back()
                method = g.check(f"cat /sys/bus/pci/devices/{state['bdf']}/reset_method",
                                 chroot=False).strip()
                assert "flr" in method.split(), method
                g.check(f"echo flr > /sys/bus/pci/devices/{state['bdf']}/reset_method && "
                        f"echo 1 > /sys/bus/pci/devices/{state['bdf']}/reset", chroot=False,
                        timeout=60)
                find_controller()
                pattern_reads_back()
                expect_state("enabled")

            def unbind_rebind():
                # The guest's driver lets go (shutdown, CC.SHN): the function is
                # still held by QEMU ("host attached") and still refuses destroy.
                bdf = state["bdf"]
                g.check(f"echo {bdf} > /sys/bus/pci/drivers/nvme/unbind", chroot=False)
                expect_state("host attached")
                destroy_refused("host attached")
                g.check(f"echo {bdf} > /sys/bus/pci/drivers/nvme/bind", chroot=False, timeout=60)
                find_controller()
                expect_state("enabled")
                pattern_reads_back()

            def two_io_queues():
                # Rebind with a separate write queue set: reads and writes go
                # to two I/O queues, each with its own CQ and MSI-X vector.
                bdf = state["bdf"]
                g.check(f"echo {bdf} > /sys/bus/pci/drivers/nvme/unbind && "
                        f"echo 1 > /sys/module/nvme/parameters/write_queues && "
                        f"echo {bdf} > /sys/bus/pci/drivers/nvme/bind", chroot=False, timeout=60)
                find_controller()
                expect_state("enabled")
                assert "1/1/0 default/read/poll" in g.dmesg().splitlines()[-1], g.dmesg()[-600:]
                before = nvme_irqs(g)
                assert len(before) == 3, before
                fio_verify(offset_mb=48)
                after = nvme_irqs(g)
                for q in ("nvme0q1", "nvme0q2"):
                    name = q.replace("nvme0", state["ctrl"])
                    assert after[name][0] > before[name][0], (q, before, after)
                pattern_reads_back()
                per = ", ".join(f"{n} {after[n][0] - before[n][0]}" for n in sorted(after))
                print(f"     interrupts during fio: {per}", flush=True)

            def remove_rescan():
                # PCI hot-remove and rescan in the guest: config space and BARs
                # are probed again, MSI-X set up again.
                g.check(f"echo 1 > /sys/bus/pci/devices/{state['bdf']}/remove", chroot=False,
                        timeout=60)
                rc, _ = g.run(f"test -e /sys/bus/pci/devices/{state['bdf']}", chroot=False)
                assert rc != 0, "the device is still there after remove"
                g.check("echo 1 > /sys/bus/pci/rescan", chroot=False, timeout=60)
                find_controller()
                expect_state("enabled")
                pattern_reads_back()
                irqs = nvme_irqs(g)
                assert len(irqs) == 3, irqs   # write_queues=1 still applies

            def clean_dmesg_after_resets():
                bad = bad_dmesg_lines(allow_resets=True)
                assert not bad, "\n".join(bad[:10])

            def clean_target_log():
                bad = [ln for ln in tgt.output().splitlines()
                       if re.search(r"\*(ERROR|WARNING)\*", ln)]
                assert not bad, "\n".join(bad[:20])

            ok = checks.run("guest nvme PCI driver probed the function, /dev/nvme0n1",
                            probed)
            if ok:
                checks.run("function state 'enabled', held by QEMU's pid", function_enabled)
                checks.run("nvme id-ctrl (sn, mn), id-ns, list", identify)
                checks.run("MSI-X interrupts, one vector per queue", irqs_before)
                checks.run("dd 4 MiB pattern O_DIRECT, read back, backing file", dd_roundtrip)
                checks.run("fio --verify=crc32c randrw", fio_verify)
                checks.run("nvme interrupt counts increased after I/O", irqs_after)
                checks.run("destroy of the held function refused (-16, reason)",
                           destroy_refused, "enabled")
                checks.run("no timeouts/resets/I/O errors in dmesg", clean_dmesg)
                checks.run("controller reset and FLR, data intact", resets)
                checks.run("driver unbind -> 'host attached', still refused; rebind",
                           unbind_rebind)
                checks.run("two I/O queues (nvme.write_queues=1): fio, each vector fires",
                           two_io_queues)
                checks.run("PCI remove + rescan in the guest", remove_rescan)
                checks.run("no timeouts/I/O errors in dmesg after the resets",
                           clean_dmesg_after_resets)
                checks.run("no errors or warnings in nvemu-tgt's log", clean_target_log)
            assert tgt.alive(), "nvemu-tgt died:\n" + tgt.output()[-3000:]

        def released():
            # QEMU is gone: the function is free again; unplug and destroy it.
            wait_until(lambda: function_state(tgt, manager, vuid)["state"] == "listening",
                         "the function to be released by QEMU")
            assert tgt.result("nvmf_subsystem_remove_listener",
                              {"nqn": NQN, "listen_address": {"trtype": "DOCA",
                                                              "traddr": vuid}}) is True
            wait_until(lambda: not os.path.exists(sock), f"{sock} to go away")
            assert tgt.result("nvmf_doca_destroy_function",
                              {"dev_name": manager, "vuid": vuid}) is True
            assert tgt.result("nvmf_doca_list_functions", {"dev_name": manager}) == []

        checks.run("guest gone: unplug + destroy the function", released)
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgt.output()[-4000:])
    finally:
        # Stop it here (not in stop(), which deletes its log) so the log
        # holds whatever it printed on the way out, e.g. a sanitizer report.
        tgt.interrupt()
        log = tgt.output()
        rc = tgt.stop()
        if rc != 0:
            checks.failed += 1
            print(f"FAIL nvemu-tgt exited {rc} on SIGINT (a crash or sanitizer report?):\n"
                  + log[-4000:])
        os.unlink(pattern_path)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{checks.passed} passed, {checks.failed} failed "
          f"({time.time() - t_start:.0f}s)")
    return 1 if checks.failed else 0


def wait_until(pred, what, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


if __name__ == "__main__":
    sys.exit(main())
