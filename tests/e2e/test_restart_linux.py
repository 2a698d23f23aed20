#!/usr/bin/python3
"""kill -9 of nvemu-tgt under a Linux host's writes, restart from the
autosaved configuration, nothing acknowledged is lost.

Debian's kernel in QEMU connects over NVMe/TCP with --ctrl-loss-tmo=-1
--reconnect-delay=1 to a uring namespace of a target started with
--config-autosave. A writer in the guest writes 4 KiB blocks with
O_DIRECT|O_SYNC (dd oflag=direct,sync: each write is followed by a FLUSH or
carries FUA), each holding its sequence number, and appends the number to a
journal on the guest's tmpfs only after dd returned. Mid-stream the target
is killed with SIGKILL and started again on the same address with
-c FILE --config-autosave FILE. The guest reconnects by itself, keeps the
namespace (dmesg has no "identifiers changed"), the writer goes on, and
every journaled block reads back intact, through the guest and in the
backing file.

Prints one line per check, then "N passed, N failed"; exits 1 on failure."""
import hashlib
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

NQN = "nqn.2016-06.io.spdk:restart"
FWD_IP, FWD_PORT = "10.0.2.100", 4420
FILE_MB = 16
BLOCKS = 120  # the writer's length; the kill comes after 30 (each dd is ~1 s in the guest)
BS = 4096


def configure(tgt, port, backing):
    tgt.result("bdev_uring_create", {"name": "File0", "filename": backing})
    tgt.result("nvmf_create_subsystem", {"nqn": NQN, "allow_any_host": True,
                                         "serial_number": "SPDK00000000000016"})
    tgt.result("nvmf_subsystem_add_ns", {"nqn": NQN, "namespace": {"bdev_name": "File0"}})
    tgt.result("nvmf_create_transport", {"trtype": "TCP"})
    addr = {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port)}
    tgt.result("nvmf_subsystem_add_listener", {"nqn": NQN, "listen_address": addr})


def block(seq):
    line = f"seq {seq:08d} nvemu restart journal\n".encode()
    return (line * (BS // len(line) + 1))[:BS]


WRITER = (
    "i=1; : > /tmp/journal; "
    f"while [ $i -le {BLOCKS} ]; do "
    "  yes \"$(printf 'seq %08d nvemu restart journal' $i)\" | head -c " + str(BS) +
    " > /tmp/blk && "
    "  dd if=/tmp/blk of=DISK bs=" + str(BS) + " seek=$i count=1 oflag=direct,sync "
    "     conv=notrunc status=none && echo $i >> /tmp/journal || echo FAIL $i >> /tmp/journal; "
    "  i=$((i+1)); sleep 0.05; "
    "done; echo done")


def main():
    checks = linux_host.Checks()
    port = guest.free_port()
    work, backing = linux_host.scratch("nvemu-e2e-restart-", FILE_MB)
    auto = os.path.join(work, "config.json")
    tgts = [harness.Target(("-m", "0x1", "--config-autosave", auto))]
    try:
        configure(tgts[0], port, backing)
        with guest.Guest(forwards=[(FWD_IP, FWD_PORT, port)]) as g:
            print(f"guest booted in {g.boot_seconds:.1f}s", flush=True)
            state = {}

            def connect():
                state["disk"] = linux_host.connect_tcp(
                    g, FWD_IP, FWD_PORT, NQN, "--ctrl-loss-tmo=-1 --reconnect-delay=1")
                state["uuid"] = g.check(f"cat /sys/block/{state['disk'][5:]}/uuid").strip()

            def journal():
                rc, out = g.run("cat /tmp/journal")
                return out.split("\n") if rc == 0 else []

            def kill_mid_stream_and_restart():
                # The guest's agent runs one command at a time: the writer runs
                # detached, and the test polls its journal.
                g.write_file("/tmp/writer.sh", WRITER.replace("DISK", state["disk"]).encode())
                g.check("setsid sh /tmp/writer.sh > /tmp/writer.log 2>&1 < /dev/null &")
                deadline = time.time() + 120
                while len([x for x in journal() if x.strip().isdigit()]) < 30:
                    assert time.time() < deadline, "the writer did not get going"
                    time.sleep(0.2)
                t = tgts[-1]
                t.proc.kill()  # SIGKILL: no shutdown path runs
                t.proc.wait()
                killed_at = len(journal())
                time.sleep(2)  # the host sees the connection die and starts reconnecting
                tgts.append(harness.Target(("-m", "0x1", "-c", auto, "--config-autosave", auto)))
                deadline = time.time() + 600
                while "done" not in g.check("cat /tmp/writer.log"):
                    assert time.time() < deadline, "the writer did not finish: " + \
                        g.check("tail -3 /tmp/journal")
                    time.sleep(1)
                entries = [x for x in journal() if x.strip()]
                fails = [x for x in entries if x.startswith("FAIL")]
                assert not fails, f"writes failed across the restart: {fails[:5]}"
                assert len(entries) == BLOCKS, f"{len(entries)} journal entries"
                assert killed_at < BLOCKS, "the kill came after the writer finished"
                state["journal"] = [int(x) for x in entries]

            def same_namespace():
                dm = g.dmesg()
                assert "identifiers changed" not in dm, \
                    [ln for ln in dm.splitlines() if "identifiers changed" in ln]
                uuid = g.check(f"cat /sys/block/{state['disk'][5:]}/uuid").strip()
                assert uuid == state["uuid"], f"{uuid} != {state['uuid']}"
                out = g.check("nvme list-subsys", timeout=30)
                assert "live" in out, out

            def journal_reads_back():
                # Every block 1..BLOCKS was journaled (checked above): one read.
                want = hashlib.sha256(b"".join(block(i) for i in range(1, BLOCKS + 1)))
                out = g.check(f"dd if={state['disk']} bs={BS} skip=1 count={BLOCKS} "
                              "iflag=direct status=none | sha256sum", timeout=120)
                assert out.split()[0] == want.hexdigest(), "the guest reads other bytes back"
                with open(backing, "rb") as f:
                    data = f.read()
                lost = [s for s in state["journal"]
                        if data[s * BS:(s + 1) * BS] != block(s)]
                assert not lost, f"{len(lost)} acknowledged blocks differ in the file: {lost[:5]}"

            ok = checks.run("nvme connect --ctrl-loss-tmo=-1 --reconnect-delay=1", connect)
            if ok:
                ok = checks.run("kill -9 mid-stream, restart from autosave, writer finishes",
                                kill_mid_stream_and_restart)
            if ok:
                checks.run("same namespace after the restart (no identifiers changed)",
                           same_namespace)
                checks.run("every journaled block reads back intact", journal_reads_back)
            print("\n".join(ln for ln in g.dmesg().splitlines() if "nvme" in ln)[-1500:])
            assert tgts[-1].alive(), "nvemu-tgt died:\n" + tgts[-1].output()[-3000:]
    except Exception as e:  # noqa: BLE001
        checks.failed += 1
        print(f"FAIL setup: {e}")
        print(tgts[-1].output()[-4000:])
    finally:
        for t in tgts:
            if t.alive():
                t.stop()
        for p in (backing, auto):
            try:
                os.unlink(p)
            except OSError:
                pass
        try:
            os.rmdir(work)
        except OSError:
            pass
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
