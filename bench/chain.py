"""The chained-namespace cases of bench/run.sh (issue #15): a namespace that
lives on another NVMe-oF target.

Target A (-m 0x1) exports a 512 MiB malloc namespace over NVMe/TCP on
127.0.0.1; target B (-m 0x1, its own RPC socket) attaches it with
bdev_nvme_attach_controller (Nvme0 -> Nvme0n1) and exports Nvme0n1 in its own
subsystem over NVMe/TCP; the initiator (core 1) runs against B. Both targets
share core 0, as the issue asks: every I/O crosses it twice. nvemu->nvemu is
paired with SPDK->SPDK (SPDK's nvmf_tgt in both roles, same RPCs).

This file holds the configuration, the per-process CPU sampling and the
summary section; bench.py runs the cases beside the others. stdlib only.
"""
import threading
import time

NQN_A = "nqn.2016-06.io.spdk:cnode1"
NQN_B = "nqn.2016-06.io.spdk:cnode2"
CHAIN_CASES = [  # name, pattern, io size, queue depth
    ("chain-tcp-qd32", "randread", 4096, 32),
    ("chain-tcp-randwrite-qd32", "randwrite", 4096, 32),
]
# Issue #15: nvemu's chain at least as fast as SPDK's at QD32.
CHAIN_GOAL = 1.0
# SPDK claims each core of its mask with a lock file (/var/tmp/spdk_cpu_lock_*):
# the chain's second nvmf_tgt on core 0 would refuse to start without this,
# and so would any of the bench's while another SPDK app holds core 0.
SPDK_SHARED_CORE_ARGS = ["--disable-cpumask-locks"]


def configure_b(call, port_a, port_b):
    """Target B: attach A's namespace as Nvme0 (rpc.py bdev_nvme_attach_controller
    -b Nvme0 -t tcp -a 127.0.0.1 -s PORT_A -f ipv4 -n NQN_A) and export the
    bdev it creates in B's own subsystem. Returns the attached bdev's name."""
    names = call("bdev_nvme_attach_controller", {
        "name": "Nvme0", "trtype": "tcp", "traddr": "127.0.0.1", "adrfam": "ipv4",
        "trsvcid": str(port_a), "subnqn": NQN_A})
    if names != ["Nvme0n1"]:
        raise RuntimeError(f"bdev_nvme_attach_controller returned {names}, expected [Nvme0n1]")
    call("nvmf_create_subsystem", {"nqn": NQN_B, "allow_any_host": True,
                                   "serial_number": "SPDK00000000000002"})
    call("nvmf_subsystem_add_ns", {"nqn": NQN_B, "namespace": {"bdev_name": "Nvme0n1"}})
    call("nvmf_create_transport", {"trtype": "TCP"})
    call("nvmf_subsystem_add_listener", {"nqn": NQN_B, "listen_address": {
        "trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": str(port_b)}})
    return names[0]


def proc_ticks(pid):
    """utime + stime of PID (/proc/PID/stat fields 14 and 15), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class ProcCpu(threading.Thread):
    """CPU of each target process in the middle of a run, in % of one core,
    from /proc/PID/stat: sampled from 40 % to 90 % of the run, clear of the
    initiator's start-up and connection set-up (SPDK perf initialises DPDK
    first). A busy-polling reactor shows ~100 % whether it works or not; two
    such reactors on one core share it (~50 % each)."""

    def __init__(self, pids, seconds, hz):
        super().__init__(daemon=True)
        self.pids, self.seconds, self.hz = pids, seconds, hz
        self.pct = [float("nan")] * len(pids)

    def run(self):
        try:
            time.sleep(0.4 * self.seconds)
            t0, c0 = time.monotonic(), [proc_ticks(p) for p in self.pids]
            time.sleep(0.5 * self.seconds)
            t1, c1 = time.monotonic(), [proc_ticks(p) for p in self.pids]
            self.pct = [100.0 * (b - a) / self.hz / (t1 - t0) for a, b in zip(c0, c1)]
        except OSError:
            pass  # a target died: reported as unknown (nan)

    def result(self):
        self.join()
        return self.pct


def _cell(spread, fmt):
    if not spread or spread.get("median") != spread.get("median"):
        return "–"
    return format(spread["median"], fmt)


def chain_md(summary):
    """The chained-namespace table: IOPS of each chain, the nvemu/SPDK ratio of
    back-to-back pairs (median, min-max) against the goal, and each target's
    CPU (median % of one core)."""
    names = [c[0] for c in CHAIN_CASES]
    rows = [r for r in summary["matrix"] if r["case"] in names]
    if not rows:
        return []
    lines = ["", f"Chained namespace (initiator -> B -> A over NVMe/TCP, both targets on core 0; "
             f"goal: nvemu/SPDK >= {CHAIN_GOAL} at QD32):", "",
             "| initiator | case | nvemu->nvemu IOPS | SPDK->SPDK IOPS | nvemu/SPDK (min–max) | "
             "met? | nvemu CPU % A / B | SPDK CPU % A / B |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n, s, q = r.get("nvemu", {}), r.get("spdk", {}), r.get("ratio")
        cells = [r["initiator"], r["case"],
                 _cell(n.get("iops"), ",.0f"), _cell(s.get("iops"), ",.0f")]
        if q:
            cells += [f"{q['median']:.2f} ({q['min']:.2f}–{q['max']:.2f})",
                      "yes" if q["median"] >= CHAIN_GOAL else "no"]
        else:
            cells += ["–", "–"]
        for impl in (n, s):
            cells.append(f"{_cell(impl.get('cpu_a_pct'), '.0f')} / "
                         f"{_cell(impl.get('cpu_b_pct'), '.0f')}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines
